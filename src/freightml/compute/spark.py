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
from freightml.features.draw import SERIES_DAYS_COLUMNS, HorizonDraw, series_days
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
    """The facts dataset at ``root`` (:func:`freightml.compute.layout.facts_dataset`) with
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


def _series_days(frame: DataFrame, compute: ComputeSettings) -> pd.DataFrame:
    reference = pd.DataFrame({c: pd.Series(dtype=object) for c in SERIES_KEY}).assign(
        **{c: pd.Series(dtype="datetime64[ns]") for c in SERIES_DAYS_COLUMNS[len(SERIES_KEY) :]}
    )
    days = map_shards(frame.select(*FEATURE_INPUT_COLUMNS), compute, series_days, reference)
    return cast(pd.DataFrame, days.toPandas())


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
    """``build_examples`` of the facts dataset at ``facts_root`` (:mod:`.layout`),
    computed per shard on Spark and written by the executors as Parquet under
    ``out_path``: the rows of the pandas build (``adjust_levels`` applied first), in no
    particular order (:func:`freightml.compute.read_examples` puts them in the build's
    order). Returns the number of rows."""
    spark = session(compute)
    columns = list(dict.fromkeys([*FEATURE_INPUT_COLUMNS, *(a.column for a in adjustments)]))
    frame = read_facts(spark, facts_root, columns)
    days = _series_days(frame, compute)
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

    out = map_shards(frame, compute, work, reference)
    out.write.mode("overwrite").parquet(str(out_path))
    rows = spark.read.parquet(str(out_path)).count()
    log.info(
        "%d examples from %d shards on Spark (%s) in %s",
        rows,
        compute.shards,
        compute.spark_master,
        out_path,
    )
    return int(rows)
