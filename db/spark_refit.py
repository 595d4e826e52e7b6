"""The Spark engine of the refit (CUSTSEG_REFIT_ENGINE=spark): the per-line and per-order work
in Spark, the per-customer decisions in the pipeline's own code, one publishing transaction.

What runs where, and why:

- **Spark** reads the transactions up to the as-of date from PostgreSQL over JDBC, in
  CUSTSEG_SPARK_PARTITIONS ranges of `ordered_at` (one query each), sums lines into orders
  (`GROUP BY customer_id, order_id`, as the local load does in SQL), and computes each
  customer's features as `analytics.segmentation.customer_features` defines them, the category
  breadth, the transform's statistics (exact percentiles, mean and population deviation of
  log1p values) and every customer's model-space point. MLlib's K-Means fits each k of the
  curve on the sample from the local engine's own k-means++ starts (`kmeans_seeds`: the
  starts scikit-learn draws with the same seed), so both engines run Lloyd's iterations from
  the same centroids and reach the same clusters rather than two local optima; then all
  customers from the chosen k's sample centroids, and the previous k from the previous
  snapshot's centroids. That is MLlib's RDD API (`pyspark.mllib`): the DataFrame API's K-Means
  takes no initial centroids. So executors run Python (the driver's version), and Spark
  Connect, which has no RDDs, is refused. The orders with their segment go from Spark to an
  unlogged staging table over JDBC; cohort retention is Spark SQL.
- **The driver** gets one row per customer (never a line or an order) and runs the pipeline's
  shared code on it: the silhouette sample (`sample_index`, the same positions in customer id
  order as the local engine), the choice of k (`choose_k`: silhouettes in Euclidean distance on
  that sample, not `ClusteringEvaluator`'s squared distance; range, smallest share,
  hysteresis), identity matching, RFM scores and lifecycle stages, profiles, names, actions,
  k previews and the migrations (`analytics.pipeline.segment_customers`).
- **Publishing** is `db.refit._write`, as for the local engine: one transaction writes every
  table, moves the staged orders into `snapshot_orders` (`INSERT ... SELECT`, in day order) and
  drops the staging table, then switches the snapshot to published.

A refit of a SQLite database is refused (one line): JDBC reads come from PostgreSQL.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from analytics.pipeline import (
    UNSEGMENTED,
    Clock,
    EngineSettings,
    Previous,
    RefitResult,
    RefitSettings,
    assemble,
    check_customers,
    kmeans_hints,
    refit_quality,
    segment_customers,
)
from analytics.segmentation import (
    CLIP_QUANTILES,
    MODEL_FEATURES,
    N_INIT,
    KSelection,
    SampleFit,
    Transform,
    _logged,
    choose_k,
    k_grid,
    keep_warm_start,
    kmeans_seeds,
    sample_index,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("custseg.refit.spark")

FIT_THREADS = 4
MAX_ITER = 300  # as sklearn's KMeans
TOL = 1e-4  # MLlib's epsilon: iterations stop when no centroid moves farther
STAGING_PREFIX = "refit_orders_"
LINES_SQL = (
    "SELECT customer_id, order_id, ordered_at, amount, category FROM transactions "
    "WHERE customer_id IS NOT NULL"
)
MOVE_SQL = (
    "INSERT INTO snapshot_orders (snapshot_id, customer_id, segment_id, day, total) "
    "SELECT :sid, customer_id, segment_id, day, total FROM {table} ORDER BY day"
)
INSTALL_HINT = "pip install 'customer-segmentation[spark]'"


class SparkUnavailable(ValueError):
    """The Spark engine cannot run here (one line saying what to change)."""


@dataclass(frozen=True)
class Jdbc:
    """Where Spark's JDBC reads and writes go: URL and connection properties."""

    url: str
    user: str | None
    password: str | None

    def options(self) -> dict[str, str]:
        out = {"url": self.url, "driver": "org.postgresql.Driver"}
        if self.user:
            out["user"] = self.user
        if self.password:
            out["password"] = self.password
        return out


def is_connect(master: str) -> bool:
    return master.startswith("sc://")


CONNECT_REFUSED = (
    "CUSTSEG_SPARK_MASTER={master}: Spark Connect is not supported (MLlib's K-Means from given "
    "centroids is in the RDD API, which Spark Connect lacks); use a cluster's master URL "
    "(spark://, yarn, k8s://) or spark-submit"
)


def jdbc_of(engine: Engine, options: EngineSettings) -> Jdbc:
    """The JDBC URL of the app's PostgreSQL database (CUSTSEG_SPARK_JDBC_URL, else built from
    DATABASE_URL's host, port, database and query), with DATABASE_URL's user and password."""
    u = engine.url
    if options.spark_jdbc_url:
        return Jdbc(options.spark_jdbc_url, u.username, u.password)
    if not u.host or not u.database:
        raise SparkUnavailable(
            "the Spark engine connects over TCP (JDBC): DATABASE_URL names no host and "
            "database; set them, or CUSTSEG_SPARK_JDBC_URL (jdbc:postgresql://host:5432/db)"
        )
    query = {k: v for k, v in u.query.items() if isinstance(v, str)}
    query["reWriteBatchedInserts"] = "true"  # the staging write: multi-row INSERTs
    host = f"[{u.host}]" if ":" in u.host else u.host
    return Jdbc(
        f"jdbc:postgresql://{host}:{u.port or 5432}/{u.database}?{urlencode(query)}",
        u.username,
        u.password,
    )


def check_available(engine: Engine, options: EngineSettings) -> None:
    """Raise SparkUnavailable, in one line, when the Spark engine cannot run on this database
    or machine: not PostgreSQL, pyspark missing, no Java, no JDBC driver, no host."""
    if engine.dialect.name != "postgresql":
        raise SparkUnavailable(
            "CUSTSEG_REFIT_ENGINE=spark reads the transactions from PostgreSQL over JDBC; this "
            f"database is {engine.dialect.name}: use CUSTSEG_REFIT_ENGINE=local"
        )
    if importlib.util.find_spec("pyspark") is None:
        raise SparkUnavailable(f"CUSTSEG_REFIT_ENGINE=spark needs pyspark: {INSTALL_HINT}")
    for module in ("numpy", "pyarrow"):
        if importlib.util.find_spec(module) is None:
            raise SparkUnavailable(f"the Spark engine needs {module}: {INSTALL_HINT}")
    if is_connect(options.spark_master):
        raise SparkUnavailable(CONNECT_REFUSED.format(master=options.spark_master))
    jdbc_of(engine, options)
    if _under_spark_submit():
        return  # the JVM and its jars are spark-submit's
    if not Path(options.spark_jdbc_jar).is_file():
        raise SparkUnavailable(
            f"no PostgreSQL JDBC driver at {options.spark_jdbc_jar} (CUSTSEG_SPARK_JDBC_JAR): "
            "install Debian's libpostgresql-jdbc-java, or point the setting at postgresql.jar"
        )
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and not shutil.which("java"):
        raise SparkUnavailable(
            "the Spark engine needs Java 17 or newer (java on PATH, or JAVA_HOME): install "
            "Debian's openjdk-17-jre-headless"
        )


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """A Spark frame on the driver (through Arrow)."""
    out: Any = frame.toPandas()
    return pd.DataFrame(out)


def _under_spark_submit() -> bool:
    """Whether spark-submit started this process (it then owns the JVM, master and jars)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _local(master: str) -> bool:
    return master.startswith("local")


def start_session(options: EngineSettings) -> SparkSession:
    """A Spark session for the refit: the master (unless spark-submit gave one), the JDBC
    driver in spark.jars, UTC, Arrow."""
    from pyspark.sql import SparkSession

    # pyspark warns at every pandas conversion under pandas 3; the conversions used here
    # (numbers, strings, dates through Arrow) are the ones the tests compare with the local
    # engine's.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    master = options.spark_master
    builder = SparkSession.builder.appName("custseg-refit").config(
        "spark.ui.showConsoleProgress", "false"
    )
    if is_connect(master):
        raise SparkUnavailable(CONNECT_REFUSED.format(master=master))
    if _local(master) and not _under_spark_submit():
        # Local mode: the driver on the loopback address whatever the host's name resolves
        # to, and Python workers of this interpreter (there are none by default otherwise).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.ui.enabled", "false").config(
            "spark.sql.shuffle.partitions", str(max(2, options.spark_partitions))
        )
    if not _under_spark_submit():
        builder = builder.master(master).config("spark.jars", options.spark_jdbc_jar)
    spark = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _until(as_of: date) -> datetime:
    return datetime.combine(as_of + timedelta(days=1), datetime.min.time())


def read_lines(
    spark: SparkSession, jdbc: Jdbc, data_start: date, as_of: date, partitions: int
) -> DataFrame:
    """The lines with a customer id up to `as_of`, read over JDBC in `partitions` queries, each
    a range of ordered_at (timestamps without time zone, read as such)."""
    until = _until(as_of)
    # A timestamp the refit computed from a date, not input: JDBC's dbtable takes no parameter.
    query = f"({LINES_SQL} AND ordered_at < '{until:%Y-%m-%d %H:%M:%S}') AS lines"
    reader = (
        spark.read.format("jdbc")
        .options(**jdbc.options())
        .option("dbtable", query)
        .option("fetchsize", "10000")
        .option("preferTimestampNTZ", "true")
    )
    if partitions > 1:
        start = datetime.combine(data_start, datetime.min.time())
        reader = (
            reader.option("partitionColumn", "ordered_at")
            .option("lowerBound", f"{start:%Y-%m-%d %H:%M:%S}")
            .option("upperBound", f"{until:%Y-%m-%d %H:%M:%S}")
            .option("numPartitions", str(partitions))
        )
    return reader.load()


@dataclass
class SparkFeatures:
    """The Spark side of a refit's features: orders (persisted), per-customer features
    (persisted) and the counts the data-quality report takes."""

    orders: DataFrame  # customer_id, ordered_at, total
    feats: DataFrame  # customer_id and the columns of customer_features
    customers_with_orders: int
    segmented: int
    returns_orders: int
    zero_total_orders: int


def spark_features(lines: DataFrame, as_of: date) -> SparkFeatures:
    """Orders and per-customer features, as `customer_features` (local) computes them: of
    positive orders the count, sum, first and last day; recency and tenure in days up to
    `as_of`; AOV; the share of orders that are returns; distinct categories of all lines."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    lines = lines.persist(StorageLevel.MEMORY_AND_DISK)
    orders = (
        lines.groupBy("customer_id", "order_id")
        .agg(F.min("ordered_at").alias("ordered_at"), F.sum("amount").alias("total"))
        .drop("order_id")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    breadth = lines.groupBy("customer_id").agg(
        F.countDistinct("category").alias("category_breadth")
    )
    positive = F.col("total") > 0
    day = F.to_date("ordered_at")
    per = orders.groupBy("customer_id").agg(
        F.count(F.lit(1)).alias("all_orders"),
        F.sum(F.when(~positive, 1).otherwise(0)).alias("returns"),
        F.sum(F.when(F.col("total") == 0, 1).otherwise(0)).alias("zeros"),
        F.count(F.when(positive, 1)).alias("frequency"),
        F.sum(F.when(positive, F.col("total"))).alias("monetary"),
        F.min(F.when(positive, day)).alias("first_order_day"),
        F.max(F.when(positive, day)).alias("last_order_day"),
    )
    asof = F.lit(as_of)
    feats = (
        per.where(F.col("frequency") > 0)
        .join(breadth, "customer_id", "left")
        .select(
            "customer_id",
            F.col("frequency").cast("long").alias("frequency"),
            F.col("monetary").cast("double").alias("monetary"),
            "first_order_day",
            "last_order_day",
            F.datediff(asof, "last_order_day").cast("long").alias("recency_days"),
            F.datediff(asof, "first_order_day").cast("long").alias("tenure_days"),
            (F.col("monetary") / F.col("frequency")).alias("aov"),
            (F.col("returns") / F.col("all_orders")).cast("double").alias("return_rate"),
            F.coalesce(F.col("category_breadth"), F.lit(0)).cast("long").alias("category_breadth"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    counts = per.agg(
        F.count(F.lit(1)).alias("customers"),
        F.count(F.when(F.col("frequency") > 0, 1)).alias("segmented"),
        F.sum("returns").alias("returns"),
        F.sum("zeros").alias("zeros"),
    ).first()
    assert counts is not None
    feats.count()  # materialized while the lines are still cached
    lines.unpersist()
    return SparkFeatures(
        orders,
        feats,
        int(counts["customers"]),
        int(counts["segmented"]),
        int(counts["returns"] or 0),
        int(counts["zeros"] or 0),
    )


def _logged_columns() -> list[Any]:
    from pyspark.sql import functions as F

    return [F.log1p(F.greatest(F.col(c).cast("double"), F.lit(0.0))) for c in MODEL_FEATURES]


def spark_transform(feats: DataFrame) -> Transform:
    """`Transform.fit` computed in Spark: exact percentiles (linear interpolation, as
    numpy's) of the log1p features, then the mean and population deviation of the clipped
    values. A value that is not a finite number is refused naming its customer, as locally."""
    from pyspark.sql import functions as F

    bad = feats.where(~F.col("monetary").between(-sys.float_info.max, sys.float_info.max))
    offenders = to_pandas(bad.select("customer_id", *MODEL_FEATURES).limit(10_000))
    if len(offenders):
        offenders = offenders.set_index("customer_id")
        _logged(offenders[list(MODEL_FEATURES)].to_numpy(dtype=np.float64), offenders.index)
    logged = feats.select(*[c.alias(f"l{i}") for i, c in enumerate(_logged_columns())])
    quantiles = list(CLIP_QUANTILES)
    row = logged.agg(
        *[F.percentile(f"l{i}", quantiles).alias(f"q{i}") for i in range(len(MODEL_FEATURES))]
    ).first()
    assert row is not None
    lower = np.array([row[f"q{i}"][0] for i in range(len(MODEL_FEATURES))], dtype=np.float64)
    upper = np.array([row[f"q{i}"][1] for i in range(len(MODEL_FEATURES))], dtype=np.float64)
    aggs = []
    for i in range(len(MODEL_FEATURES)):
        col = F.col(f"l{i}")
        clipped = F.least(F.greatest(col, F.lit(float(lower[i]))), F.lit(float(upper[i])))
        aggs += [
            F.avg(clipped).alias(f"m{i}"),
            F.stddev_pop(clipped).alias(f"s{i}"),
            F.count(F.when((col < float(lower[i])) | (col > float(upper[i])), 1)).alias(f"c{i}"),
        ]
    stats = logged.agg(*aggs).first()
    assert stats is not None
    mean = np.array([stats[f"m{i}"] for i in range(len(MODEL_FEATURES))], dtype=np.float64)
    scale = np.array([stats[f"s{i}"] for i in range(len(MODEL_FEATURES))], dtype=np.float64)
    scale[scale == 0] = 1.0
    clipped_counts = {name: int(stats[f"c{i}"]) for i, name in enumerate(MODEL_FEATURES)}
    return Transform(lower, upper, mean, scale, clipped_counts)


def model_points(feats: DataFrame, transform: Transform) -> DataFrame:
    """customer_id and x0..x2: each customer's point in model space (Transform.apply)."""
    from pyspark.sql import functions as F

    cols = []
    for i, logged in enumerate(_logged_columns()):
        clipped = F.least(
            F.greatest(logged, F.lit(float(transform.lower[i]))), F.lit(float(transform.upper[i]))
        )
        cols.append(
            ((clipped - float(transform.mean[i])) / float(transform.scale[i])).alias(f"x{i}")
        )
    return feats.select("customer_id", *cols)


def _distances(centers: np.ndarray) -> list[Any]:
    from pyspark.sql import functions as F

    out = []
    for c in centers:
        d2 = sum(
            ((F.col(f"x{i}") - float(c[i])) ** 2 for i in range(len(MODEL_FEATURES))),
            F.lit(0.0),
        )
        out.append(d2)
    return out


def assign(points: DataFrame, centers: np.ndarray) -> DataFrame:
    """`points` with `label` (the nearest centroid, the first of equals) and `d2` (its squared
    distance)."""
    from pyspark.sql import functions as F

    d = F.array(*_distances(centers))
    return (
        points.withColumn("_d", d)
        .select(
            "*",
            (F.array_position(F.col("_d"), F.array_min(F.col("_d"))) - 1)
            .cast("int")
            .alias("label"),
            F.array_min(F.col("_d")).alias("d2"),
        )
        .drop("_d")
    )


def _vectors(spark: SparkSession, points: np.ndarray) -> Any:
    """Points on the driver as an RDD of MLlib vectors (one partition: a sample is small)."""
    from pyspark.mllib.linalg import Vectors

    rdd = spark.sparkContext.parallelize([Vectors.dense(p) for p in points.tolist()], 1)
    return rdd.cache()


def mllib_kmeans(data: Any, centers: np.ndarray) -> np.ndarray:
    """MLlib's K-Means on `data` (an RDD of vectors) from the given centroids: Lloyd's
    iterations until every centroid moves less than TOL, or MAX_ITER. The centroids."""
    from pyspark.mllib.clustering import KMeans, KMeansModel

    model = KMeans.train(
        data,
        len(centers),
        maxIterations=MAX_ITER,
        epsilon=TOL,
        initialModel=KMeansModel([np.asarray(c, dtype=np.float64) for c in centers]),
    )
    return np.array(model.clusterCenters, dtype=np.float64)


def nearest(points: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, float]:
    """Each point's nearest centroid (the first of equals) and the inertia."""
    d2 = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    labels = d2.argmin(axis=1)
    return labels.astype(np.int64), float(d2[np.arange(len(points)), labels].sum())


def sample_fits(
    spark: SparkSession,
    xs: np.ndarray,
    ks: list[int],
    seed: int,
    warm_k: int | None,
    warm_centers: np.ndarray | None,
) -> dict[int, SampleFit]:
    """MLlib's K-Means of every k on the sample, from each of the local engine's N_INIT
    k-means++ starts (`kmeans_seeds`), the lowest inertia kept (the first of equals, as
    scikit-learn); for the previous k also from the previous centroids, kept unless clearly
    worse. Labels and inertia on the sample are computed here, on the driver.

    The fits are small Spark jobs, mostly scheduling: FIT_THREADS of them are submitted at once
    (Spark runs several threads' jobs side by side); the result does not depend on the order
    they finish in."""
    data = _vectors(spark, xs)
    starts = [(kk, r, c) for kk in ks for r, c in enumerate(kmeans_seeds(xs, kk, seed, N_INIT))]

    def fit(start: tuple[int, int, np.ndarray]) -> tuple[int, int, np.ndarray]:
        kk, r, init = start
        return kk, r, mllib_kmeans(data, init)

    fits: dict[int, SampleFit] = {}
    best: dict[int, tuple[float, int]] = {}
    with ThreadPoolExecutor(FIT_THREADS, thread_name_prefix="kmeans") as pool:
        for kk, r, centers in pool.map(fit, starts):
            labels, inertia = nearest(xs, centers)
            if kk not in best or (inertia, r) < best[kk]:
                best[kk] = (inertia, r)
                fits[kk] = SampleFit(labels, centers, inertia, "k-means++")
    if warm_k in fits and warm_centers is not None:
        centers = mllib_kmeans(data, warm_centers)
        labels, inertia = nearest(xs, centers)
        if keep_warm_start(inertia, fits[warm_k].inertia):
            fits[warm_k] = SampleFit(labels, centers, inertia, "previous centroids")
    data.unpersist()
    return fits


def _to_local(frame: pd.DataFrame) -> pd.DataFrame:
    """The Spark features as `customer_features` gives them: indexed by customer id in id
    order, days as datetimes, the same dtypes."""
    out = frame.set_index("customer_id").sort_index()
    out.index.name = "customer_id"
    for col in ("first_order_day", "last_order_day"):
        out[col] = pd.to_datetime(out[col])
    for col in ("frequency", "recency_days", "tenure_days", "category_breadth"):
        out[col] = out[col].astype(np.int64)
    for col in ("monetary", "aov", "return_rate"):
        out[col] = out[col].astype(np.float64)
    columns = [
        "frequency",
        "monetary",
        "first_order_day",
        "last_order_day",
        "recency_days",
        "tenure_days",
        "aov",
        "return_rate",
        "category_breadth",
    ]
    return out[columns]


def retention(orders: DataFrame) -> pd.DataFrame:
    """`analytics.aggregates.retention` in Spark SQL, from orders with segment_id: per cohort
    month (of the first positive order) x months since x segment, the cohort's size, active
    customers and revenue, every month to the data end (returns included) with zeros."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cols = ["cohort", "months_since_first", "segment_id", "cohort_size", "customers", "revenue"]
    keys = ["cohort", "months_since_first", "segment_id"]
    month = F.trunc(F.to_date("ordered_at"), "month")
    end_row = orders.agg(F.max(month)).first()
    if end_row is None or end_row[0] is None:
        return pd.DataFrame(columns=cols)
    end: date = end_row[0]
    pos = (
        orders.where(F.col("total") > 0)
        .withColumn("month", month)
        .withColumn("cohort", F.min("month").over(Window.partitionBy("customer_id")))
    )
    since = (F.year("month") - F.year("cohort")) * 12 + (F.month("month") - F.month("cohort"))
    pos = pos.withColumn("months_since_first", since)
    active = pos.groupBy(*keys).agg(
        F.countDistinct("customer_id").alias("customers"), F.sum("total").alias("revenue")
    )
    sizes = pos.groupBy("cohort", "segment_id").agg(
        F.countDistinct("customer_id").alias("cohort_size")
    )
    span = (end.year - F.year("cohort")) * 12 + (end.month - F.month("cohort"))
    grid = sizes.withColumn("months_since_first", F.explode(F.sequence(F.lit(0), span)))
    out = to_pandas(
        grid.join(active, keys, "left").select(
            "cohort",
            "months_since_first",
            "segment_id",
            "cohort_size",
            F.coalesce("customers", F.lit(0)).alias("customers"),
            F.coalesce("revenue", F.lit(0.0)).alias("revenue"),
        )
    )
    if out.empty:
        return pd.DataFrame(columns=cols)
    for col in ("months_since_first", "segment_id", "cohort_size", "customers"):
        out[col] = out[col].astype(np.int64)
    out["revenue"] = out["revenue"].astype(np.float64)
    out["cohort"] = pd.to_datetime(out["cohort"]).dt.date
    return out[cols].sort_values(keys).reset_index(drop=True)


def staging_table(snapshot_id: int) -> str:
    return f"{STAGING_PREFIX}{int(snapshot_id)}"


def drop_staging(engine: Engine, snapshot_id: int | None = None) -> None:
    """Drop the staging table of run `snapshot_id`; without an id, every one left by a dead
    run (the caller holds the refit lock)."""
    with engine.begin() as conn:
        if snapshot_id is not None:
            names = [staging_table(snapshot_id)]
        else:
            names = list(
                conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                        "AND tablename LIKE :p"
                    ),
                    {"p": STAGING_PREFIX.replace("_", r"\_") + "%"},
                ).scalars()
            )
        for name in names:
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))


def _create_staging(engine: Engine, snapshot_id: int) -> str:
    name = staging_table(snapshot_id)
    with engine.begin() as conn:
        conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
        conn.execute(
            text(
                f'CREATE UNLOGGED TABLE "{name}" (customer_id varchar(64) NOT NULL, '
                "segment_id integer NOT NULL, day date NOT NULL, total double precision NOT NULL)"
            )
        )
    return name


def publish_staged(conn: Connection, snapshot_id: int) -> None:
    """Inside the publishing transaction: the staged orders into snapshot_orders, in day order
    (PostgreSQL then appends to its (snapshot_id, day) index), and the staging table gone."""
    name = staging_table(snapshot_id)
    conn.execute(text(MOVE_SQL.format(table=f'"{name}"')), {"sid": snapshot_id})
    conn.execute(text(f'DROP TABLE "{name}"'))


def run_spark_refit(
    engine: Engine,
    settings: RefitSettings,
    snapshot_id: int,
    data_start: date,
    as_of: date,
    previous: Previous | None,
    data_quality: dict[str, Any],
    stage: Callable[[str], None],
    next_segment_id: int,
) -> RefitResult:
    """The refit of `run_refit`, on Spark; its orders wait in the staging table of
    `snapshot_id` for `publish_staged`. Drops that table itself if it fails."""
    options = settings.engine
    jdbc = jdbc_of(engine, options)
    clock = Clock()
    stage("loading")
    spark = start_session(options)
    clock.lap("session")
    own_session = not _under_spark_submit()
    try:
        lines = read_lines(spark, jdbc, data_start, as_of, options.spark_partitions)
        sf = spark_features(lines, as_of)
        clock.lap("load")

        stage("features")
        transform = spark_transform(sf.feats)
        feats = _to_local(to_pandas(sf.feats))
        check_customers(feats, as_of)
        left_out = {"only_returns_or_zero_orders": sf.customers_with_orders - len(feats)}
        clock.lap("features")

        stage("clustering")
        sel = _cluster(spark, sf.feats, feats, transform, settings, previous)
        clock.lap("clustering")

        stage("profiles")
        seg = segment_customers(feats, transform, sel, previous, next_segment_id)
        clock.lap("profiles")

        stage("aggregates")
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        segments = spark.createDataFrame(seg.feats[["segment_id"]].astype(np.int64).reset_index())
        with_seg = (
            sf.orders.join(segments, "customer_id", "left")
            .fillna(UNSEGMENTED, subset=["segment_id"])
            .persist(StorageLevel.MEMORY_AND_DISK)  # written, then read for retention
        )
        table = _create_staging(engine, snapshot_id)
        try:
            (
                with_seg.select(
                    "customer_id",
                    F.col("segment_id").cast("int").alias("segment_id"),
                    F.to_date("ordered_at").alias("day"),
                    "total",
                )
                .write.format("jdbc")
                .options(**jdbc.options())
                .option("dbtable", table)
                .option("batchsize", "10000")
                .option("numPartitions", str(options.spark_partitions))
                .mode("append")  # into the table made above; "overwrite" would drop it
                .save()
            )
            ret = retention(with_seg)
        except BaseException:
            drop_staging(engine, snapshot_id)
            raise
        clock.lap("aggregates")
        with_seg.unpersist()
        sf.orders.unpersist()
        sf.feats.unpersist()
    finally:
        if own_session:
            spark.stop()
    quality = refit_quality(
        data_quality,
        left_out,
        len(feats),
        sf.returns_orders,
        sf.zero_total_orders,
        transform,
    )
    result = assemble(sel, transform, seg, pd.DataFrame(), ret, quality, clock)
    return result


def _cluster(
    spark: SparkSession,
    spark_feats: DataFrame,
    feats: pd.DataFrame,
    transform: Transform,
    settings: RefitSettings,
    previous: Previous | None,
) -> KSelection:
    """`fit_kmeans` with MLlib: the same sample, starts and choice; MLlib's iterations."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    n = len(feats)
    grid = k_grid(n, (settings.k_min, settings.k_max), settings.k)
    idx = sample_index(n, settings.silhouette_sample, settings.seed)
    xs = transform.apply(feats[list(MODEL_FEATURES)].to_numpy()[idx], feats.index[idx])
    previous_k, previous_centers = kmeans_hints(previous, transform)
    warm_k = len(previous_centers) if previous_centers is not None else None
    fits = sample_fits(spark, xs, grid.ks, settings.seed, warm_k, previous_centers)
    made = choose_k(
        xs,
        fits,
        grid,
        (settings.k_min, settings.k_max),
        n,
        settings.k,
        margin=settings.k_margin,
        previous_k=previous_k,
    )
    chosen = made.k
    labels, centers = fits[chosen].labels, fits[chosen].centers
    if len(idx) < n:  # all customers, from the sample's centroids
        points = model_points(spark_feats, transform).persist(StorageLevel.MEMORY_AND_DISK)
        dims = [f"x{i}" for i in range(len(MODEL_FEATURES))]
        data = points.select(F.array(*dims).alias("x")).rdd.map(lambda row: row[0])
        centers = mllib_kmeans(data, centers)
        got = to_pandas(assign(points, centers).select("customer_id", "label"))
        labels = got.set_index("customer_id")["label"].reindex(feats.index).to_numpy(np.int64)
        points.unpersist()
    made.reason["source"] = settings.k_source
    return KSelection.of(made, fits, labels, centers, idx)


# --- predictions --------------------------------------------------------------------------


class SparkHistory:
    """`analytics.predictions.History` in Spark: each customer's summary as of a day (repeat
    purchases, recency, age, mean repeat spend), a window's positive orders and the first
    purchase day, from the orders read over JDBC, so the prediction job of a Spark deployment
    never loads the orders into one process either. Customers are numbered (`code`) in customer
    id order, as `analytics.predictions._History` numbers them; the first purchase of a customer
    is the earliest order, of equal times the smaller total, as there."""

    def __init__(self, orders: DataFrame) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        stamp = F.unix_micros(F.col("ordered_at").cast("timestamp"))
        self.orders = orders.select("customer_id", stamp.alias("stamp"), "total").persist(
            StorageLevel.MEMORY_AND_DISK
        )
        ids = to_pandas(self.orders.select("customer_id").distinct())["customer_id"]
        self.ids = pd.Index(sorted(ids.tolist()), name="customer_id")  # as factorize's dtype
        self.codes = pd.Series(np.arange(len(self.ids), dtype=np.int64), index=self.ids)

    @staticmethod
    def _end(day: date) -> int:
        return int((pd.Timestamp(day) + pd.Timedelta(days=1)).value // 1000)

    def first_purchase_day(self, as_of: date) -> date | None:
        from pyspark.sql import functions as F

        row = (
            self.orders.where((F.col("total") > 0) & (F.col("stamp") < self._end(as_of)))
            .agg(F.min("stamp"))
            .first()
        )
        if row is None or row[0] is None:
            return None
        return pd.Timestamp(int(row[0]), unit="us").date()

    def summary(self, as_of: date) -> pd.DataFrame:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        from analytics.predictions import _DAY_US, NO_POSITIVE_ORDER

        end = self._end(as_of)
        past = self.orders.where(F.col("stamp") < end)
        first = Window.partitionBy("customer_id").orderBy("stamp", "total")
        buys = past.where(F.col("total") > 0).withColumn("n", F.row_number().over(first))
        per = buys.groupBy("customer_id").agg(
            F.count(F.lit(1)).alias("count"),
            F.min("stamp").alias("first"),
            F.max("stamp").alias("last"),
            F.sum(F.when(F.col("n") > 1, F.col("total")).otherwise(0.0)).alias("repeat"),
        )
        seen = past.select("customer_id").distinct().join(per, "customer_id", "left")
        frame = to_pandas(seen)
        frame["code"] = self.codes.reindex(frame["customer_id"]).to_numpy()
        frame = frame.sort_values("code").reset_index(drop=True)
        count = frame["count"].astype(float)
        out = pd.DataFrame(
            {
                "customer_id": self.ids.take(frame["code"].to_numpy(dtype=np.int64)),
                "code": frame["code"].astype(np.int64),
                "frequency": count - 1,
                "recency": (frame["last"] - frame["first"]).astype(float) / _DAY_US,
                "T": (end - frame["first"]).astype(float) / _DAY_US,
                "monetary_value": np.where(
                    count > 1, frame["repeat"].astype(float) / np.maximum(count - 1, 1), 0.0
                ),
            }
        )
        out.loc[count.isna(), "monetary_value"] = np.nan
        reason = pd.Series(None, index=out.index, dtype=object)
        reason[out["frequency"].isna()] = NO_POSITIVE_ORDER
        out["unscored_reason"] = reason
        return out

    def window(self, after: date, as_of: date) -> pd.DataFrame:
        from pyspark.sql import functions as F

        lo, hi = self._end(after), self._end(as_of)
        inside = (F.col("stamp") >= lo) & (F.col("stamp") < hi) & (F.col("total") > 0)
        per = self.orders.where(inside).groupBy("customer_id")
        frame = to_pandas(
            per.agg(F.count(F.lit(1)).alias("orders"), F.sum("total").alias("revenue"))
        )
        frame["code"] = self.codes.reindex(frame["customer_id"]).to_numpy()
        frame = frame.sort_values("code").reset_index(drop=True)
        return pd.DataFrame(
            {
                "code": frame["code"].astype(np.int64),
                "orders": frame["orders"].astype(float),
                "revenue": frame["revenue"].astype(float),
            }
        )


@contextmanager
def spark_history(
    engine: Engine, options: EngineSettings, data_start: date, as_of: date
) -> Iterator[SparkHistory]:
    """The orders up to `as_of` as a SparkHistory, in a Spark session of its own (stopped on
    exit); SparkUnavailable, in one line, where the Spark engine cannot run."""
    from pyspark.sql import functions as F

    check_available(engine, options)
    jdbc = jdbc_of(engine, options)
    spark = start_session(options)
    try:
        lines = read_lines(spark, jdbc, data_start, as_of, options.spark_partitions)
        orders = lines.groupBy("customer_id", "order_id").agg(
            F.min("ordered_at").alias("ordered_at"), F.sum("amount").alias("total")
        )
        yield SparkHistory(orders)
    finally:
        if not _under_spark_submit():
            spark.stop()
