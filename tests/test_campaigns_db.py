"""Campaigns in the database (db/campaigns.py): frozen audiences, their export, the log, the
measurement job after imports, and the planted effect of a demo shop found again."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from analytics.campaigns import RuleError
from analytics.exports import Filters
from config.settings import get_settings
from db import campaigns, jobs
from db.batches import remove_batch
from db.exporter import Exporter, Forbidden
from db.importer import import_file
from db.migrate import upgrade
from db.models import (
    Campaign,
    CampaignMember,
    JobStatus,
    Snapshot,
    SnapshotCustomer,
    Trigger,
)
from db.scheduler import KINDS, SCHEDULE, Scheduler
from db.session import make_engine
from db.snapshot_cache import SnapshotCache
from tests.conftest import SAMPLE, bare_settings, command_line_env
from tests.refitting import refit
from webapp.cli import main


def _create(engine: Engine, **kw: object) -> Campaign:
    """A campaign drawn from the latest snapshot (or `snapshot_id`), as the page makes one."""
    src = Exporter(engine, SnapshotCache()).sources(kw.pop("snapshot_id", None))  # type: ignore[arg-type]
    args: dict[str, object] = dict(
        name="Win-back",
        rule={},
        snapshot=src.snap,
        customers=src.customers,
        segments=src.segments,
        start=date(2011, 10, 1),
        end=date(2011, 10, 31),
        seed=7,
        created_by="analyst@example.com",
    )
    args.update(kw)
    return campaigns.create(engine, **args)  # type: ignore[arg-type]


def _treatment_file(engine: Engine, campaign_id: int) -> tuple[pd.DataFrame, str]:
    data, name, _ = campaigns.export_treatment(
        engine, Exporter(engine, SnapshotCache()), campaign_id, "csv", row_cap=1_000, by="a@b.c"
    )
    text = data.decode("utf-8")
    return pd.read_csv(pd.io.common.StringIO(text), comment="#", dtype={"customer_id": str}), text


def test_frozen_membership_survives_two_refits_and_the_pruning_of_its_snapshot(
    engine: Engine,
) -> None:
    import_file(engine, SAMPLE)
    first = refit(engine, k=3, as_of=date(2011, 9, 30), keep=1, keep_monthly=0)
    top = first.segments[0]["segment_id"]
    made = _create(engine, rule={"segment": [top], "recency_days": [None, 200]})
    frozen = campaigns.members(engine, made.id)
    assert len(frozen) == made.treatment_size + made.holdout_size > 20
    assert set(frozen["segment_id"]) == {top} and frozen["recency_days"].max() <= 200
    assert frozen["lifecycle_stage"].notna().all()
    for _ in range(2):
        refit(engine, k=3, keep=1, keep_monthly=0, force=True)
    with engine.connect() as conn:
        kept = conn.scalars(select(Snapshot.id)).all()
        rows = conn.scalar(
            select(func.count()).where(SnapshotCustomer.snapshot_id == first.snapshot_id)
        )
    assert first.snapshot_id not in kept and rows == 0  # pruned, with its customers
    after = campaigns.members(engine, made.id)
    pd.testing.assert_frame_equal(after, frozen)
    got, text = _treatment_file(engine, made.id)
    assert sorted(got["customer_id"]) == sorted(frozen.loc[~frozen["holdout"], "customer_id"])
    assert not set(got["customer_id"]) & set(frozen.loc[frozen["holdout"], "customer_id"])
    assert list(got.columns) == [
        "customer_id",
        "segment_id",
        "segment",
        "lifecycle_stage",
        "recency_days",
    ]
    assert f"# snapshot_id: {first.snapshot_id}\r\n" in text
    assert "# as_of: 2011-09-30\r\n" in text and f"# campaign_id: {made.id}\r\n" in text
    assert campaigns.measure(engine, made.id) is not None  # still measured from transactions


def test_creating_checks_everything_and_writes_nothing_when_refused(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k=3)
    for kw, message in (
        ({"name": " "}, "name"),
        ({"rule": {"segment": [999]}}, r"Segment\(s\) \[999\]"),
        ({"rule": {"monetary": [10**9, None]}}, "No customer of snapshot"),
        ({"holdout_share": 0.7}, "between 1% and 50%"),
        ({"end": date(2011, 9, 1)}, "before the start date"),
        ({"rule": {"country": ["France"]}}, "custseg campaign create"),
    ):
        with pytest.raises(RuleError, match=message):
            _create(sqlite_engine, **kw)
    with pytest.raises(RuleError, match="no holdout"):  # 2 customers x 10%
        src = Exporter(sqlite_engine, SnapshotCache()).sources()
        _create(sqlite_engine, customers=src.customers.head(2))
    with sqlite_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Campaign)) == 0
        assert conn.scalar(select(func.count()).select_from(CampaignMember)) == 0
    assert campaigns.events(sqlite_engine).empty


def test_every_create_export_and_delete_is_logged_and_the_log_outlives_the_campaign(
    sqlite_engine: Engine,
) -> None:
    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k=3)
    made = _create(sqlite_engine, holdout_share=0.2)
    assert made.holdout_size == round(0.2 * (made.treatment_size + made.holdout_size))
    _treatment_file(sqlite_engine, made.id)
    with pytest.raises(Forbidden):  # a viewer never gets the list, whoever asks
        campaigns.export_treatment(
            sqlite_engine,
            Exporter(sqlite_engine, SnapshotCache()),
            made.id,
            "csv",
            row_cap=1_000,
            by="viewer@example.com",
            role="viewer",
        )
    gone = campaigns.delete_campaign(sqlite_engine, made.id, by="admin@example.com")
    assert gone.name == "Win-back"
    with pytest.raises(campaigns.UnknownCampaign):
        campaigns.get(sqlite_engine, made.id)
    with sqlite_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(CampaignMember)) == 0
    log = campaigns.events(sqlite_engine)
    assert log["action"].tolist() == ["delete", "export", "create"]  # newest first
    assert log["actor"].tolist() == ["admin@example.com", "a@b.c", "analyst@example.com"]
    assert set(log["treatment"]) == {made.treatment_size}
    assert set(log["holdout"]) == {made.holdout_size}
    assert log.loc[1, "details"] == {"format": "csv", "rows": made.treatment_size}
    created = log.loc[2, "details"]
    assert created["seed"] == 7 and created["holdout_share"] == 0.2
    assert sum(s["holdout"] for s in created["by_segment"].values()) == made.holdout_size


def test_the_treatment_export_needs_a_campaign_and_is_not_in_chart_downloads(
    sqlite_engine: Engine,
) -> None:
    from webapp.filters import view_from_params

    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k=3)
    exporter = Exporter(sqlite_engine, SnapshotCache())
    with pytest.raises(ValueError, match="needs a campaign"):
        exporter.export("campaign_treatment", Filters())
    with pytest.raises(campaigns.UnknownCampaign):
        exporter.export("campaign_treatment", Filters(campaign=5))
    # A chart's stored params cannot name a campaign: the unlogged download path has none.
    _, view = view_from_params(
        {"export": "campaign_treatment", "campaign": 5}, ("campaign_treatment",)
    )
    assert view.filters.campaign is None


def test_an_import_queues_the_measurement_when_there_are_campaigns(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    import_file(sqlite_engine, SAMPLE)
    assert jobs.recent(sqlite_engine) == []  # no campaign, nothing to measure
    refit(sqlite_engine, k=3)
    made = _create(sqlite_engine)
    lines = pd.read_csv(SAMPLE, dtype=str).head(50)
    lines["order_id"] = "X" + lines["order_id"]
    lines.to_csv(tmp_path / "more.csv", index=False)
    (first,) = jobs.recent(sqlite_engine)  # creating queued its first measurement
    assert (first.kind, first.trigger, first.params) == (
        "campaign_results",
        Trigger.CLI,
        {"campaign_id": made.id},
    )
    import_file(sqlite_engine, tmp_path / "more.csv")
    job = jobs.recent(sqlite_engine)[0]
    assert (job.kind, job.trigger, job.params, job.status) == (
        "campaign_results",
        Trigger.IMPORT,
        {},
        JobStatus.QUEUED,
    )
    ran = Scheduler(sqlite_engine, bare_settings()).drain()
    assert [j.status for j in ran] == [JobStatus.DONE, JobStatus.DONE], ran[-1].error
    assert ran[-1].message == "1 campaign(s) measured through 2011-12-09"
    measured = campaigns.get(sqlite_engine, made.id)
    assert measured.results_through == date(2011, 10, 31) and measured.results_at is not None
    # "Refresh results" queues one campaign; a second press reuses the waiting job.
    one = campaigns.queue_results(sqlite_engine, Trigger.WEB, made.id, "analyst@example.com")
    again = campaigns.queue_results(sqlite_engine, Trigger.WEB, made.id, "analyst@example.com")
    assert one is not None and again is not None and one.id == again.id
    assert one.params == {"campaign_id": made.id}


def test_a_campaign_waits_for_orders_after_its_start(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k=3)
    made = _create(sqlite_engine, start=date(2012, 1, 1), end=None)
    assert campaigns.measure(sqlite_engine, made.id) is None
    got = campaigns.report(sqlite_engine, made.id, on=date(2011, 12, 31))
    assert got.status == "draft" and got.groups.empty
    assert got.campaign.results_note == (
        "No orders on or after the start date yet (the data ends on 2011-12-09)."
    )


def test_the_schedule_measures_campaigns_daily() -> None:
    assert KINDS["campaign_results"] is campaigns.campaign_results_job
    (periodic,) = [p for p in SCHEDULE if p.kind == "campaign_results"]
    assert periodic.cron_setting == "campaign_results_cron"
    assert bare_settings().campaign_results_cron == "30 3 * * *"


# --- the planted effect ------------------------------------------------------------------------

PLANTED_SHARE = 0.2  # of the treatment group: one extra order each
PLANTED_VALUE = 35.0
ORGANIC_SHARE = 0.1  # of every customer: an order in January whatever the campaign


def _january(customers: pd.Series, treatment: set[str], seed: int, planted: bool) -> pd.DataFrame:
    """Orders of January 2026: ORGANIC_SHARE of everyone, and (planted) PLANTED_SHARE of the
    treatment group drawn among those who would not have bought anyway, for PLANTED_VALUE."""
    rng = np.random.default_rng(seed)
    ids = customers.sort_values().to_numpy()
    organic = rng.random(len(ids)) < ORGANIC_SHARE
    rows = [(i, rng.lognormal(4.0, 0.5)) for i in ids[organic]]
    if planted:
        quiet = np.array([i for i in ids[~organic] if i in treatment])
        chosen = rng.choice(quiet, size=round(PLANTED_SHARE * len(treatment)), replace=False)
        rows += [(i, PLANTED_VALUE) for i in chosen]
    days = rng.integers(1, 32, len(rows))
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "order_id": [f"J{n:06d}" for n in range(len(rows))],
            "ordered_at": [f"2026-01-{d:02d}T12:00:00" for d in days],
            "amount": [round(float(r[1]), 2) for r in rows],
            "category": "home",
            "country": "Germany",
        }
    )


@pytest.mark.parametrize("planted", [True, False])
def test_on_a_demo_shop_the_lifts_intervals_contain_the_planted_effects(
    sqlite_engine: Engine, tmp_path: Path, planted: bool
) -> None:
    from analytics.demo import write_demo_csv

    shop = tmp_path / "shop.csv"
    write_demo_csv(shop, 3_000, seed=5)  # history up to 2025-12-31
    first = import_file(sqlite_engine, shop)
    refit(sqlite_engine, k=5)
    src = Exporter(sqlite_engine, SnapshotCache()).sources()
    made = _create(
        sqlite_engine,
        name="January",
        holdout_share=0.2,
        start=date(2026, 1, 1),
        end=date(2026, 1, 31),
        seed=2026,
    )
    assert made.treatment_size + made.holdout_size == len(src.customers)
    members = campaigns.members(sqlite_engine, made.id)
    treatment = set(members.loc[~members["holdout"], "customer_id"])
    _january(src.customers["customer_id"], treatment, 3, planted).to_csv(
        tmp_path / "january.csv", index=False
    )
    import_file(sqlite_engine, tmp_path / "january.csv")  # queues the measurement
    *_, done = Scheduler(sqlite_engine, bare_settings()).drain()
    assert done.kind == "campaign_results" and done.status == JobStatus.DONE, done.error
    assert done.trigger == Trigger.IMPORT
    got = campaigns.report(sqlite_engine, made.id)
    lifts = got.lifts.set_index("metric")
    conversion, revenue = lifts.loc["conversion"], lifts.loc["revenue_per_customer"]
    effect = (PLANTED_SHARE, PLANTED_SHARE * PLANTED_VALUE) if planted else (0.0, 0.0)
    assert conversion.low <= effect[0] <= conversion.high, conversion.to_dict()
    assert revenue.low <= effect[1] <= revenue.high, revenue.to_dict()
    if planted:
        assert conversion.low > 0 and revenue.low > 0
        assert conversion.verdict.startswith("The campaign raised conversion by +2")
    else:
        assert conversion.verdict.startswith("No detectable effect yet")
    assert len(got.daily) == 2 * 31
    # The demo's December is the period before: every member bought before the window or not.
    window = got.groups.set_index(["group", "period"])
    assert window.loc[("treatment", "before"), "last_day"] == date(2025, 12, 31)
    # Customers whose orders are deleted still count, as non-buyers: the history goes.
    assert first.batch_id is not None
    remove_batch(sqlite_engine, first.batch_id)
    campaigns.measure(sqlite_engine, made.id)
    again = campaigns.report(sqlite_engine, made.id).groups.set_index(["group", "period"])
    assert (again["customers"] == window["customers"]).all()
    assert again.loc[("treatment", "before"), "buyers"] == 0
    assert (
        again.loc[("treatment", "window"), "buyers"]
        == window.loc[("treatment", "window"), "buyers"]
    )


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command_line_env(monkeypatch, url, tmp_path / "instance")
    engine = make_engine(url)
    upgrade(engine)
    import_file(engine, SAMPLE)
    refit(engine, k=3)
    yield engine
    engine.dispose()
    get_settings.cache_clear()


def test_the_campaign_commands_create_list_export_and_report(
    cli_db: Engine, tmp_path: Path
) -> None:
    run = CliRunner().invoke
    made = run(
        main,
        [
            "campaign", "create", "UK win-back",
            "--where", "recency_days=60:",
            "--where", "monetary=300:",
            "--country", "United Kingdom",
            "--holdout", "20%",
            "--start", "2011-10-01",
            "--end", "2011-11-30",
            "--seed", "42",
        ],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.output.startswith("campaign 1 created: ")
    assert "Recency (days) ≥ 60; Spend ≥ 300; Country: United Kingdom" in made.output
    listed = run(main, ["campaign", "list"])
    assert listed.exit_code == 0 and "UK win-back" in listed.output and "ended" in listed.output
    out = tmp_path / "list.csv"
    exported = run(main, ["campaign", "export", "1", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    got = pd.read_csv(out, comment="#", dtype={"customer_id": str})
    members = campaigns.members(cli_db, 1)
    assert set(got["customer_id"]) == set(members.loc[~members["holdout"], "customer_id"])
    assert (got["country"] == "United Kingdom").all() and (got["monetary"] >= 300).all()
    assert "# exported_by: cli" in out.read_text()
    report = run(main, ["campaign", "report", "1", "--measure"])
    assert report.exit_code == 0, report.output
    assert "window 2011-10-01..2011-11-30 treatment" in report.output
    assert "conversion: " in report.output and "95% CI" in report.output
    as_json = run(main, ["campaign", "report", "1", "--json"])
    assert '"status": "ended"' in as_json.output
    for argv, message in (
        (["campaign", "export", "9", "--out", str(out)], "error: no campaign 9"),
        (
            ["campaign", "create", "x", "--start", "2011-01-01", "--segment", "77"],
            "not in snapshot",
        ),
        (["campaign", "create", "x", "--start", "2011-01-01", "--where", "aov=5"], "LOW:HIGH"),
        (["campaign", "create", "x", "--start", "2011-01-01", "--holdout", "0.9"], "between 1%"),
    ):
        failed = run(main, argv)
        assert failed.exit_code != 0 and message in failed.output, (argv, failed.output)
    log = campaigns.events(cli_db)
    assert log["action"].tolist() == ["export", "create"] and set(log["actor"]) == {"cli"}


def test_a_rule_on_predictions_reads_those_of_the_snapshot(sqlite_engine: Engine) -> None:
    from analytics.campaigns import parse_rule

    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k=3)
    src = Exporter(sqlite_engine, SnapshotCache()).sources()
    rule = parse_rule({"churn_risk": [0.5, None], "predicted_value": [None, 100]})
    plain = campaigns.rule_frame(src, rule)
    assert plain is src.customers  # no prediction here: nothing joined, nothing copied
    with pytest.raises(RuleError, match="does not hold it"):
        campaigns.preview(rule, plain, src.segments, src.snap.id, 0.1)
    ids = src.customers["customer_id"].head(40).tolist()

    class WithPredictions:  # a snapshot's sources once it stores predictions
        customers = src.customers
        predictions = pd.DataFrame(
            {
                "customer_id": ids,
                "churn_risk": [0.9 if i % 2 else 0.1 for i in range(40)],
                "clv_12m": [50.0 if i % 4 == 1 else 500.0 for i in range(40)],
            }
        )

    got = campaigns.preview(
        rule, campaigns.rule_frame(WithPredictions(), rule), src.segments, src.snap.id, 0.1
    )
    assert got.audience["customer_id"].tolist() == sorted(ids[1::4])
    assert got.audience["churn_risk"].tolist() == [0.9] * 10
    assert {"lifecycle_stage", "recency_days"} <= campaigns.rule_columns()
