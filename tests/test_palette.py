"""The chart colours: colour-blind safe and with AA contrast against the page.

Colour vision deficiencies are simulated with the matrices of Machado, Oliveira and Fernandes
(2009, severity 1: protanopia, deuteranopia, tritanopia) on linear sRGB; colours are compared by
their CIEDE2000 distance in CIELAB (D65). A distance under about 2 is hard to see; the palettes
here keep at least 9 (segments) between any two, in every simulation. Contrast is WCAG 2's:
graphical objects need 3:1 against what is next to them (1.4.11), here the white page.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from analytics.segmentation import (
    LEGACY_PALETTE,
    PALETTE,
    segment_color,
    segment_colors,
    shown_color,
)
from webapp import charts

VISIONS: dict[str, np.ndarray] = {
    "normal": np.eye(3),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
    "tritanopia": np.array(
        [
            [1.255528, -0.076749, -0.178779],
            [-0.078411, 0.930809, 0.147602],
            [0.004733, 0.691367, 0.303900],
        ]
    ),
}
XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
WHITE_POINT = np.array([0.95047, 1.0, 1.08883])


def _linear(color: str) -> np.ndarray:
    c = np.array([int(color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)])
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def seen(color: str, vision: str) -> tuple[float, float, float]:
    """CIELAB of `color` as someone with `vision` sees it."""
    rgb = np.clip(VISIONS[vision] @ _linear(color), 0, 1)
    t = XYZ @ rgb / WHITE_POINT
    f = np.where(t > 216 / 24389, np.cbrt(t), (24389 / 27 * t + 16) / 116)
    return float(116 * f[1] - 16), float(500 * (f[0] - f[1])), float(200 * (f[1] - f[2]))


def ciede2000(one: tuple[float, float, float], two: tuple[float, float, float]) -> float:
    (l1, a1, b1), (l2, a2, b2) = one, two
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar**7 / (c_bar**7 + 25**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360
    h2p = math.degrees(math.atan2(b2, a2p)) % 360
    dh = 0.0 if c1p * c2p == 0 else (h2p - h1p + 180) % 360 - 180
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_bar, c_bar_p = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    else:
        h_bar = (h1p + h2p + (360 if h1p + h2p < 360 else -360)) / 2
    t = (
        1
        - 0.17 * math.cos(math.radians(h_bar - 30))
        + 0.24 * math.cos(math.radians(2 * h_bar))
        + 0.32 * math.cos(math.radians(3 * h_bar + 6))
        - 0.20 * math.cos(math.radians(4 * h_bar - 63))
    )
    theta = 30 * math.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * math.sqrt(c_bar_p**7 / (c_bar_p**7 + 25**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_bar_p, 1 + 0.015 * c_bar_p * t
    r_t = -math.sin(math.radians(2 * theta)) * r_c
    return math.sqrt(
        (d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h)
    )


def closest(colors: tuple[str, ...] | list[str], vision: str) -> float:
    """The smallest distance between two of `colors` as seen with `vision`."""
    lab = [seen(c, vision) for c in colors]
    return min(ciede2000(a, b) for a, b in itertools.combinations(lab, 2))


def on_white(color: str) -> float:
    rgb = tuple(int(color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return charts.contrast_ratio(rgb, charts.WHITE)  # type: ignore[arg-type]


def test_the_distance_is_ciede2000() -> None:
    # Sharma, Wu and Dalal's test data (2005), pairs 1 and 17.
    assert ciede2000((50, 2.6772, -79.7751), (50, 0, -82.7485)) == pytest.approx(2.0425, abs=1e-4)
    assert ciede2000((50, 2.5, 0), (73, 25, -18)) == pytest.approx(27.1492, abs=1e-4)


@pytest.mark.parametrize("vision", list(VISIONS))
def test_segment_colours_stay_apart_with_every_colour_vision(vision: str) -> None:
    assert closest(PALETTE, vision) >= 9
    assert closest(PALETTE[:8], vision) >= 11
    assert closest(PALETTE[:3], vision) >= 30  # the usual k: as far apart as can be
    others = [ciede2000(seen(charts.OTHER_COLOR, vision), seen(c, vision)) for c in PALETTE]
    assert min(others) >= 10  # "no segment", new and gone customers


def test_the_palette_it_replaces_did_not() -> None:
    # Orange next to red, green next to brown: the same to a red-green colour-blind eye.
    assert closest(LEGACY_PALETTE[:5], "deuteranopia") < 2
    assert closest(LEGACY_PALETTE[:8], "protanopia") < 3
    assert not set(LEGACY_PALETTE) & set(PALETTE)  # a stored colour tells its palette


def test_chart_colours_have_3_to_1_against_the_page() -> None:
    colors = [*PALETTE, charts.OTHER_COLOR, *charts.STAGE_COLORS.values()]
    assert min(on_white(c) for c in colors) >= 3
    # Sankey links: transparent, but never below 3:1 on white.
    for color in colors:
        rgba = charts.link_color(color)
        r, g, b, alpha = (float(v) for v in rgba[5:-1].split(","))
        over_white = tuple(alpha * v + (1 - alpha) * 255 for v in (r, g, b))
        assert charts.contrast_ratio(over_white, charts.WHITE) >= 3, color  # type: ignore[arg-type]
        assert 0.45 <= alpha <= 1


def test_stage_colours_are_no_red_green_pairs() -> None:
    stages = list(charts.STAGE_COLORS.values())
    for vision in ("protanopia", "deuteranopia"):
        assert closest(stages, vision) >= 3


def test_a_segment_keeps_its_colour_and_no_two_share_one() -> None:
    assert segment_colors([1, 2, 3]) == {i: segment_color(i) for i in (1, 2, 3)}
    # Id 11 would take id 1's colour: the next free one instead.
    colors = segment_colors([1, 2, 11])
    assert colors[1] == PALETTE[0] and colors[11] == PALETTE[2]
    # Kept from the previous snapshot, even when another id would have it first.
    assert segment_colors([1, 5], {5: PALETTE[0]}) == {5: PALETTE[0], 1: PALETTE[1]}
    # A colour of the old palette is not kept: the id's colour of the new one.
    assert segment_colors([4], {4: LEGACY_PALETTE[3]}) == {4: segment_color(4)}
    # Beyond the palette, colours repeat rather than fail.
    many = segment_colors(range(1, len(PALETTE) + 3))
    assert len(set(many.values())) == len(PALETTE)


def test_snapshots_with_old_colours_are_drawn_with_the_new_palette() -> None:
    assert shown_color(2, LEGACY_PALETTE[1]) == segment_color(2)
    assert shown_color(2, LEGACY_PALETTE[1].lower()) == segment_color(2)
    assert shown_color(13, PALETTE[4]) == PALETTE[4]  # a colour given to avoid a clash stays
    assert shown_color(3, None) == segment_color(3)
    frame = pd.DataFrame(
        {"segment_id": [1, 2], "name": ["a", "b"], "color": [LEGACY_PALETTE[0], PALETTE[5]]}
    )
    pal = charts.Palette(frame)
    assert (pal.color(1), pal.color(2)) == (PALETTE[0], PALETTE[5])


def test_a_refit_keeps_each_segment_colour_of_the_previous_snapshot(  # type: ignore[no-untyped-def]
    dashboard, sqlite_engine
) -> None:
    """The two snapshots of the dashboard: one colour per segment, the same in both; then the
    latest snapshot's colours shuffled (as if given to avoid a clash): the next refit keeps them."""
    from sqlalchemy import select, update

    from db.models import SnapshotSegment
    from tests.refitting import refit

    def colors(snapshot_id: int) -> dict[int, str]:
        with sqlite_engine.connect() as conn:
            rows = conn.execute(
                select(SnapshotSegment.segment_id, SnapshotSegment.color).where(
                    SnapshotSegment.snapshot_id == snapshot_id
                )
            ).all()
        return {int(sid): color for sid, color in rows}

    first, second = (colors(o.snapshot_id) for o in dashboard)
    for got in (first, second):
        assert set(got.values()) <= set(PALETTE) and len(set(got.values())) == len(got)
    assert {sid: first[sid] for sid in first.keys() & second.keys()} == {
        sid: second[sid] for sid in first.keys() & second.keys()
    }
    shuffled = {sid: PALETTE[-1 - n] for n, sid in enumerate(sorted(second))}
    with sqlite_engine.begin() as conn:
        for sid, color in shuffled.items():
            conn.execute(
                update(SnapshotSegment)
                .where(SnapshotSegment.snapshot_id == dashboard[1].snapshot_id)
                .where(SnapshotSegment.segment_id == sid)
                .values(color=color)
            )
    third = colors(refit(sqlite_engine, k=3, force=True).snapshot_id)
    assert {sid: third[sid] for sid in third.keys() & shuffled.keys()} == {
        sid: shuffled[sid] for sid in third.keys() & shuffled.keys()
    }
    assert third.keys() & shuffled.keys()
