"""The feature build on Spark: the pandas code is the unit of work, one call per shard.

The facts become a Spark DataFrame, each row gets a shard (``pmod(xxhash64(series key),
shards)``: every fact of a series lands in one shard), and ``applyInPandas`` runs
:func:`freightml.features.build.build_examples` on each shard's facts with the whole panel's
calendar (``span``) and origins. The rows come back sorted as the pandas build orders them
(origin, series key, horizon) and with its dtypes, so the result equals the pandas build's
for any number of shards (tests/integration/test_compute_spark.py checks 1, 4 and 16).
pyspark is the ``spark`` extra (``make install`` adds it); a local session runs on
``compute.spark_master`` (``local[*]``) with OpenJDK 17.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from freightml.compute_settings import ComputeSettings
from freightml.features.build import (
    FEATURE_INPUT_COLUMNS,
    SERIES_KEY,
    SeriesPanel,
    build_examples,
    default_origins,
)
from freightml.features.draw import SERIES_DAYS_COLUMNS, HorizonDraw
from freightml.features.levels import LevelAdjustment, adjust_levels

log = logging.getLogger("freightml")
SHARD = "_freightml_shard"


class SparkUnavailable(RuntimeError):
    """Spark cannot start here; the message says what is missing."""


def session(compute: ComputeSettings) -> SparkSession:
    """The Spark session of ``compute`` (one per process, reused)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise SparkUnavailable(
            "compute.engine is spark but no Java runtime was found (java on PATH or "
            "JAVA_HOME): install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
        )
    return (
        SparkSession.builder.master(compute.spark_master)
        .appName("freightml")
        .config("spark.driver.memory", compute.spark_driver_memory)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(compute.shards))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .getOrCreate()
    )


_SPARK_TYPES: dict[str, T.DataType] = {
    "object": T.StringType(),
    "string": T.StringType(),
    "float32": T.FloatType(),
    "float64": T.DoubleType(),
    "int64": T.LongType(),
    "Int64": T.LongType(),
    "int32": T.IntegerType(),
    "int16": T.ShortType(),
    "int8": T.ByteType(),
    "bool": T.BooleanType(),
    "datetime64[ns]": T.TimestampNTZType(),
}


def _schema(reference: pd.DataFrame) -> T.StructType:
    fields = []
    for name, dtype in reference.dtypes.items():
        spark_type = _SPARK_TYPES.get(str(dtype))
        if spark_type is None:
            raise TypeError(f"no Spark type for example column {name} of dtype {dtype}")
        fields.append(T.StructField(str(name), spark_type, nullable=True))
    return T.StructType(fields)


def shard_column(compute: ComputeSettings) -> Column:
    """The shard of a fact: a hash of its series key (every fact of a series in one)."""
    return F.pmod(F.xxhash64(*SERIES_KEY), F.lit(compute.shards))


def read_facts(spark: SparkSession, root: str | Path, columns: Sequence[str]) -> DataFrame:
    """The facts at ``root`` (a file or dataset of :mod:`freightml.compute.layout`) with
    ``columns``, the date as a timestamp without time zone (pandas' datetime64)."""
    frame = spark.read.parquet(str(root))
    return frame.select(*columns).withColumn("date", F.col("date").cast("timestamp_ntz"))


def map_shards(
    frame: DataFrame,
    compute: ComputeSettings,
    work: Callable[[pd.DataFrame], pd.DataFrame],
    reference: pd.DataFrame,
) -> DataFrame:
    """``work`` on every shard of the series of ``frame`` (a shard's facts, as pandas),
    its rows given ``reference``'s columns and dtypes (only its schema counts)."""
    schema = _schema(reference)
    dtypes = reference.dtypes.to_dict()

    def per_shard(shard: pd.DataFrame) -> pd.DataFrame:
        return work(shard.drop(columns=[SHARD])).astype(dtypes)[list(reference.columns)]

    sharded = frame.withColumn(SHARD, shard_column(compute))
    return sharded.groupBy(SHARD).applyInPandas(per_shard, schema)


def collect(frame: DataFrame, reference: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """The rows of ``frame`` on the driver, sorted by ``order``, with ``reference``'s
    dtypes."""
    result = cast(pd.DataFrame, frame.toPandas())
    result = result.sort_values(order, kind="stable").reset_index(drop=True)
    return result.astype(reference.dtypes.to_dict())[list(reference.columns)]


def _series_days(frame: DataFrame) -> pd.DataFrame:
    """:func:`freightml.features.draw.series_days` in Spark SQL (no Python worker): a
    volume is observed when it is neither null, NaN nor negative as a float32."""
    volume = F.col("volume_tonnes")
    observed = volume.isNotNull() & ~F.isnan(volume) & ~(volume.cast("float") < 0)
    day = F.date_trunc("day", F.col("date"))
    days = frame.groupBy(*SERIES_KEY).agg(
        F.min(F.when(observed, day)).alias("first_observed"),
        F.min(day).alias("first_date"),
        F.max(day).alias("last_date"),
    )
    out = cast(pd.DataFrame, days.toPandas())
    for column in SERIES_DAYS_COLUMNS[len(SERIES_KEY) :]:
        out[column] = pd.to_datetime(out[column]).astype("datetime64[ns]")
    return out[SERIES_DAYS_COLUMNS]


def _writer(out_path: str | Path) -> Callable[[int, pd.DataFrame], None]:
    """Writes a shard's rows as one Parquet file under ``out_path`` (a local directory or
    an object store URI pyarrow opens: s3://...), from the Python worker itself."""
    uri = str(out_path)
    if "://" not in uri:
        uri = str(Path(uri).resolve())
    filesystem, root = pafs.FileSystem.from_uri(uri)
    filesystem.delete_dir_contents(root, missing_dir_ok=True)  # a rerun overwrites
    filesystem.create_dir(root, recursive=True)

    def write(shard: int, rows: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(rows, preserve_index=False)
        pq.write_table(table, f"{root}/part-{shard:05d}.parquet", filesystem=filesystem)

    return write


def examples_on_spark(
    facts_root: str | Path,
    out_path: str | Path,
    compute: ComputeSettings,
    *,
    origins: Sequence[pd.Timestamp] | None = None,
    origin_step_days: int = 7,
    train_window_days: int | None = None,
    horizons_per_origin: int | None = None,
    horizon_max: int = 28,
    min_history_days: int = 91,
    seed: int = 0,
    adjustments: Sequence[LevelAdjustment] = (),
    **kwargs: Any,
) -> int:
    """``build_examples`` of the facts at ``facts_root`` (a file or dataset, :mod:`.layout`),
    computed per shard on Spark and written by the executors as Parquet under
    ``out_path``: the rows of the pandas build (``adjust_levels`` applied first), in no
    particular order (:func:`freightml.compute.read_examples` puts them in the build's
    order). Returns the number of rows."""
    spark = session(compute)
    columns = list(dict.fromkeys([*FEATURE_INPUT_COLUMNS, *(a.column for a in adjustments)]))
    frame = read_facts(spark, facts_root, columns)
    days = _series_days(frame)
    if days.empty:
        raise ValueError(f"no facts under {facts_root}: cannot build features")
    span = (days["first_date"].min().normalize(), days["last_date"].max().normalize())
    if origins is None:
        origins = default_origins(span[1], span[0], origin_step_days, train_window_days)
    origins = [pd.Timestamp(o) for o in origins]
    options = {"horizon_max": horizon_max, "min_history_days": min_history_days, **kwargs}
    sampled = horizons_per_origin is not None and horizons_per_origin < horizon_max
    draw = (
        HorizonDraw.of(
            days,
            origins,
            last=span[1],
            horizon_max=horizon_max,
            per_origin=int(horizons_per_origin),  # type: ignore[arg-type]
            min_history_days=min_history_days,
            seed=seed,
        )
        if sampled
        else None
    )
    shared = spark.sparkContext.broadcast(draw)
    # the columns and dtypes of a build, from the series with the longest history
    first = days.loc[days["first_date"].idxmin(), SERIES_KEY]
    match = [F.col(c) == first[c] for c in SERIES_KEY]
    one = cast(pd.DataFrame, frame.where(match[0] & match[1] & match[2]).toPandas())
    reference = build_examples(
        SeriesPanel.from_facts(one, span=span), origins=origins, **options
    ).iloc[:0]

    def work(shard: pd.DataFrame) -> pd.DataFrame:
        panel = SeriesPanel.from_facts(adjust_levels(shard, adjustments), span=span)
        if shared.value is None:
            return build_examples(
                panel, origins=origins, horizons_per_origin=horizons_per_origin, **options
            )
        return build_examples(panel, origins=origins, horizon_draw=shared.value, **options)

    write = _writer(out_path)
    tally = pd.DataFrame({"shard": pd.Series(dtype="int64"), "rows": pd.Series(dtype="int64")})

    def build_and_write(shard: pd.DataFrame) -> pd.DataFrame:
        number = int(shard[SHARD].iloc[0])
        rows = work(shard.drop(columns=[SHARD])).astype(reference.dtypes.to_dict())
        write(number, rows[list(reference.columns)])
        return pd.DataFrame({"shard": [number], "rows": [len(rows)]})

    sharded = frame.withColumn(SHARD, shard_column(compute))
    written = sharded.groupBy(SHARD).applyInPandas(build_and_write, _schema(tally))
    rows = int(cast(pd.DataFrame, written.toPandas())["rows"].sum())
    log.info(
        "%d examples from %d shards on Spark (%s) in %s",
        rows,
        compute.shards,
        compute.spark_master,
        out_path,
    )
    return int(rows)
