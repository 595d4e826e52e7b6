"""The Spark engine of the refit (db/spark_refit.py) against the local engine.

The engine's tests carry the `spark` marker and are skipped without pyspark; `make test` leaves
them out and `make test-spark` (CI, after `make test`) installs pyspark, Java and the JDBC
driver and runs them. The refusals and the settings need no Spark and run in `make test`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import adjusted_rand_score
from sqlalchemy import Engine, func, select, text

from analytics import aggregates
from analytics.exports import Filters
from analytics.pipeline import EngineSettings, RefitSettings, run_refit
from config import Settings
from config.settings import get_settings
from db import refit as job
from db import snapshots
from db.importer import import_file
from db.models import Snapshot, SnapshotOrder, SnapshotStatus
from db.queries import category_breadth, load_orders, read_frame
from tests.conftest import SAMPLE, command_line_env, export_frame
from tests.refitting import refit_settings
from webapp.cli import main

needs_pyspark = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None,
    reason="pyspark is not installed (make test-spark installs it, with Java and the driver)",
)
spark = [pytest.mark.spark, needs_pyspark]

# Local mode on this machine's 2 cores; the 200-customer sample makes the final fit of all 297
# customers (from the sample's centroids) run too, as it does at any real size.
SPARK = EngineSettings(name="spark", spark_master="local[2]", spark_partitions=3)


def test_the_engine_is_a_setting_and_named_in_the_fingerprint_only_when_spark() -> None:
    s = Settings.model_construct(refit_engine="spark", spark_master="spark://h:7077")
    rs = RefitSettings.from_settings(s)
    assert rs.engine.name == "spark" and rs.engine.spark_master == "spark://h:7077"
    assert rs.as_dict()["engine"] == "spark"
    assert "engine" not in RefitSettings.from_settings(Settings.model_construct()).as_dict()
    assert Settings.model_construct().refit_engine == "local"
    assert Settings.model_construct().spark_master == "local[*]"
    with pytest.raises(ValueError, match="CUSTSEG_SPARK_JDBC_URL"):
        Settings(env="test", secret_key="x" * 40, spark_jdbc_url="postgresql://h/db")


def test_spark_on_sqlite_is_refused_in_one_line_and_records_nothing(
    sqlite_engine: Engine,
) -> None:
    import_file(sqlite_engine, SAMPLE)
    with pytest.raises(job.RefitRejected) as err:
        job.refit(sqlite_engine, refit_settings(engine=SPARK))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "CUSTSEG_REFIT_ENGINE=spark reads the transactions from PostgreSQL over JDBC; this "
        "database is sqlite: use CUSTSEG_REFIT_ENGINE=local"
    )
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Snapshot)).scalar_one() == 0


def test_the_jdbc_url_comes_from_the_database_url() -> None:
    from db.session import make_engine
    from db.spark_refit import SparkUnavailable, jdbc_of

    engine = make_engine("postgresql://shop:s3cr%40t@db.internal:6543/custseg?sslmode=require")
    jdbc = jdbc_of(engine, SPARK)
    assert jdbc.url == (
        "jdbc:postgresql://db.internal:6543/custseg?sslmode=require&reWriteBatchedInserts=true"
    )
    assert (jdbc.user, jdbc.password) == ("shop", "s3cr@t")
    assert "s3cr" not in jdbc.url  # the password goes as a property, never in the URL
    given = replace(SPARK, spark_jdbc_url="jdbc:postgresql://10.0.0.5:5432/custseg")
    assert jdbc_of(engine, given).url == "jdbc:postgresql://10.0.0.5:5432/custseg"
    with pytest.raises(SparkUnavailable, match="names no host"):
        jdbc_of(make_engine("postgresql:///custseg?host=/var/run/postgresql"), SPARK)


def test_the_command_line_says_so_in_one_line(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    command_line_env(
        monkeypatch,
        f"sqlite:///{tmp_path / 'cli.db'}",
        tmp_path / "instance",
        CUSTSEG_REFIT_ENGINE="spark",
    )
    try:
        runner = CliRunner()
        assert runner.invoke(main, ["init-db"]).exit_code == 0
        assert runner.invoke(main, ["import", str(SAMPLE)]).exit_code == 0
        result = runner.invoke(main, ["refit"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "this database is sqlite" in lines[0], result.output


def _customers(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    return snapshots.customers(engine, snapshot_id).set_index("customer_id").sort_index()


def _close(a: object, b: object) -> bool:
    """Equal, numbers to 1e-12 relative (Spark's sums add in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-12, atol=0.0))
    return a == b


def _staging_tables(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'refit\\_orders\\_%'")
            ).scalars()
        )


def _orders(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    o = SnapshotOrder
    frame = read_frame(
        engine,
        select(o.customer_id, o.segment_id, o.day, o.total).where(o.snapshot_id == snapshot_id),
        {"customer_id": str, "segment_id": "int64", "total": "float64"},
    )
    frame["day"] = pd.to_datetime(frame["day"])
    return frame.sort_values(["customer_id", "day", "total"]).reset_index(drop=True)


def _table(engine: Engine, table: str, snapshot_id: int, keys: list[str]) -> pd.DataFrame:
    frame = pd.read_sql(
        text(f"SELECT * FROM {table} WHERE snapshot_id = :s"),  # noqa: S608 - a test's own names
        engine,
        params={"s": snapshot_id},
    )
    return frame.drop(columns="snapshot_id").sort_values(keys).reset_index(drop=True)


@pytest.mark.spark
@needs_pyspark
def test_spark_engine_publishes_what_the_local_engine_does(pg_engine: Engine) -> None:
    import_file(pg_engine, SAMPLE)
    spark_settings = refit_settings(silhouette_sample=200, engine=SPARK)
    local_settings = replace(spark_settings, engine=EngineSettings())

    # The Spark engine, no previous snapshot.
    s1 = job.refit(pg_engine, spark_settings)
    assert _staging_tables(pg_engine) == []
    snap = snapshots.latest_published(pg_engine)
    assert snap is not None and snap.id == s1.snapshot_id
    assert snap.settings["engine"] == "spark"
    assert set(snap.timings) >= {"session", "load", "features", "clustering", "write", "total"}

    # The local engine on the same data, settings and (no) previous snapshot, in memory.
    orders = load_orders(pg_engine, end=s1.as_of, with_order_id=False)
    local = run_refit(orders, s1.as_of, local_settings, category_breadth(pg_engine, s1.as_of))
    assert s1.k == local.k
    # Both report the local code's Euclidean silhouette on the same sample, for the same fits
    # (MLlib's ClusteringEvaluator would give its squared-distance one).
    assert s1.silhouette == pytest.approx(local.silhouette, abs=1e-6)
    # Every k of the curve: the same silhouette and inertia on the sample.
    curve = snapshots.scores(pg_engine, s1.snapshot_id).sort_values("k")
    cols = ["k", "silhouette", "inertia", "davies_bouldin"]
    np.testing.assert_allclose(curve[cols], local.scores[cols], rtol=1e-6)
    assert snap.k_selection["sample"] == 200 and snap.k_selection["customers"] == 297

    got = _customers(pg_engine, s1.snapshot_id)
    want = local.customers.set_index("customer_id").sort_index()
    assert list(got.index) == list(want.index)
    assert adjusted_rand_score(want["segment_id"], got["segment_id"]) >= 0.99
    for col in ("frequency", "recency_days", "tenure_days", "category_breadth"):
        assert (got[col].to_numpy() == want[col].to_numpy()).all(), col
    for col in ("monetary", "aov", "return_rate"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-12, err_msg=col)
    for col in ("r_score", "f_score", "m_score", "lifecycle_stage"):
        assert (got[col].to_numpy() == want[col].to_numpy()).all(), col
    for key, value in local.data_quality.items():  # the refit's own counts (no database's)
        assert snap.data_quality[key] == value, key
    assert snap.features == local.features or _close(snap.features, local.features)

    # Per-segment tables: equal to the local code's on the same orders and Spark's assignments.
    seg_of = got["segment_id"]
    keyed = orders.assign(
        segment_id=orders["customer_id"].map(seg_of).fillna(0).astype("int64"),
        day=orders["ordered_at"].dt.normalize(),
    )
    spark_orders = _orders(pg_engine, s1.snapshot_id)
    want_orders = (
        keyed[["customer_id", "segment_id", "day", "total"]]
        .sort_values(["customer_id", "day", "total"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(
        spark_orders, want_orders, check_dtype=False, check_exact=False, rtol=1e-12
    )
    keys = ["cohort", "months_since_first", "segment_id"]
    want_ret = aggregates.retention(keyed).sort_values(keys).reset_index(drop=True)
    got_ret = _table(pg_engine, "snapshot_retention", s1.snapshot_id, keys)
    pd.testing.assert_frame_equal(
        got_ret, want_ret, check_dtype=False, check_exact=False, rtol=1e-12
    )
    segs = _table(pg_engine, "snapshot_segments", s1.snapshot_id, ["segment_id"])
    g = want.assign(segment_id=seg_of).groupby("segment_id")
    assert segs["customers"].tolist() == g.size().tolist()
    np.testing.assert_allclose(segs["gross_revenue"], g["monetary"].sum(), rtol=1e-12)
    np.testing.assert_allclose(segs["monetary"], g["monetary"].median(), rtol=1e-12)
    assert segs["recency_days"].tolist() == g["recency_days"].median().tolist()

    # A local refit after it (its previous snapshot is Spark's): the segment-free exports of the
    # two snapshots are the same.
    l2 = job.refit(pg_engine, local_settings, force=True)
    for name, filters in (
        ("kpis", Filters()),
        ("retention", Filters()),
        ("retention_trend", Filters()),
        ("kpi_comparison", Filters()),
        ("repeat_rate", Filters()),
        ("aov_distribution", Filters()),
    ):
        a, _ = export_frame(pg_engine, name, filters, s1.snapshot_id)
        b, _ = export_frame(pg_engine, name, filters, l2.snapshot_id)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, obj=name)

    # Spark again, with a previous snapshot: identities matched, migration tables written.
    s3 = job.refit(pg_engine, spark_settings, force=True)
    assert _staging_tables(pg_engine) == []
    before, after = _customers(pg_engine, l2.snapshot_id), _customers(pg_engine, s3.snapshot_id)
    assert s3.k == l2.k
    assert (before["segment_id"] == after["segment_id"]).mean() >= 0.99
    third = snapshots.latest_published(pg_engine)
    assert third is not None and third.previous_id == l2.snapshot_id
    assert third.matching["new"] == [] and not third.matching["vanished"]
    moved = _table(pg_engine, "snapshot_migration", s3.snapshot_id, ["from_segment", "to_segment"])
    assert moved["customers"].sum() == 297
    stages = _table(pg_engine, "snapshot_stage_migration", s3.snapshot_id, ["from_stage"])
    assert stages["customers"].sum() == 297
    with pg_engine.connect() as conn:
        published = conn.execute(
            select(func.count())
            .select_from(Snapshot)
            .where(Snapshot.status == SnapshotStatus.PUBLISHED)
        ).scalar_one()
    assert published == 3


@pytest.mark.spark
@needs_pyspark
def test_spark_connect_is_refused_in_one_line(pg_engine: Engine) -> None:
    connect = replace(SPARK, spark_master="sc://spark.internal:15002")
    with pytest.raises(job.RefitRejected, match="^CUSTSEG_SPARK_MASTER=sc://spark.internal:15002"):
        job.refit(pg_engine, refit_settings(engine=connect))


@pytest.mark.spark
@needs_pyspark
def test_the_prediction_stage_reads_the_same_customer_summaries_from_spark(
    pg_engine: Engine,
) -> None:
    """With the Spark engine the predict job feeds the models Spark's per-customer summaries
    (db.spark_refit.SparkHistory) instead of every order: they are the local ones."""
    from datetime import date

    from analytics.predictions import _History
    from db.spark_refit import spark_history

    import_file(pg_engine, SAMPLE)
    as_of, cutoff = date(2011, 12, 9), date(2011, 9, 10)
    local = _History.of(load_orders(pg_engine, end=as_of, with_order_id=False))
    with spark_history(pg_engine, SPARK, date(2010, 12, 1), as_of) as history:
        assert history.first_purchase_day(as_of) == local.first_purchase_day(as_of)
        assert history.first_purchase_day(date(2010, 11, 1)) is None
        for day in (as_of, cutoff):
            pd.testing.assert_frame_equal(
                history.summary(day), local.summary(day), check_exact=False, rtol=1e-9
            )
        pd.testing.assert_frame_equal(
            history.window(cutoff, as_of), local.window(cutoff, as_of), rtol=1e-12
        )
