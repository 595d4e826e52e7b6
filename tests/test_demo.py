"""Demo data: deterministic, planted segments recoverable, importable."""

from __future__ import annotations

from sqlalchemy import Engine

from analytics.demo import PLANTED, generate, write_demo_csv
from db.importer import import_file


def test_same_seed_same_shop_other_seed_other_shop() -> None:
    a, pa = generate(2_000, seed=7)
    b, pb = generate(2_000, seed=7)
    c, _ = generate(2_000, seed=8)
    assert a.equals(b) and pa.equals(pb)
    assert not a.equals(c)


def test_every_planted_segment_is_present_with_returns_and_categories() -> None:
    lines, planted = generate(5_000, seed=1)
    shares = planted["planted_segment"].value_counts(normalize=True)
    for seg in PLANTED:
        assert abs(shares[seg.name] - seg.share) < 0.03
    assert (lines["amount"] < 0).any()
    assert lines["category"].nunique() > 3 and lines["country"].nunique() > 3
    assert set(planted["customer_id"]) == set(lines["customer_id"])


def test_demo_csv_imports(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "demo.csv"
    stats = write_demo_csv(path, 500, seed=2)
    report = import_file(engine, path)
    assert report.lines_imported == stats["lines"]
    assert report.customers == 500
