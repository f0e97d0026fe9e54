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
from typing import Any, cast

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from freightml.compute_settings import ComputeSettings
from freightml.features.build import (
    FEATURE_INPUT_COLUMNS,
    SERIES_KEY,
    SeriesPanel,
    build_examples,
)

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


def map_shards(
    facts: pd.DataFrame,
    compute: ComputeSettings,
    work: Callable[[pd.DataFrame], pd.DataFrame],
    reference: pd.DataFrame,
    order: list[str],
) -> pd.DataFrame:
    """``work`` on every shard of the series of ``facts`` on Spark (each series' facts in
    one shard), the results collected, sorted by ``order`` and given ``reference``'s
    columns and dtypes (``reference`` may be empty: only its schema counts)."""
    facts = facts.copy()
    facts["date"] = pd.to_datetime(facts["date"]).astype("datetime64[ns]")
    schema = _schema(reference)
    dtypes = reference.dtypes.to_dict()

    def per_shard(shard: pd.DataFrame) -> pd.DataFrame:
        return work(shard.drop(columns=[SHARD])).astype(dtypes)

    spark = session(compute)
    frame = spark.createDataFrame(facts)
    shard_of = F.pmod(F.xxhash64(*SERIES_KEY), F.lit(compute.shards))
    out = frame.withColumn(SHARD, shard_of).groupBy(SHARD).applyInPandas(per_shard, schema)
    result = cast(pd.DataFrame, out.toPandas())
    log.info(
        "%d rows from %d shards on Spark (%s)", len(result), compute.shards, compute.spark_master
    )
    result = result.sort_values(order, kind="stable").reset_index(drop=True)
    return result.astype(dtypes)[list(reference.columns)]


def examples_on_spark(
    facts: pd.DataFrame,
    compute: ComputeSettings,
    *,
    origins: Sequence[pd.Timestamp],
    **kwargs: Any,
) -> pd.DataFrame:
    """``build_examples(facts, origins=origins, **kwargs)``, computed per shard on Spark."""
    facts = facts[FEATURE_INPUT_COLUMNS].copy()
    dates = pd.to_datetime(facts["date"])
    span = (dates.min().normalize(), dates.max().normalize())
    origins = [pd.Timestamp(o) for o in origins]
    # the columns and dtypes of a build, from the series with the longest history
    first = facts.loc[dates.idxmin()]
    one = facts.loc[(facts[SERIES_KEY] == first[SERIES_KEY]).all(axis=1)]
    reference = build_examples(
        SeriesPanel.from_facts(one, span=span), origins=origins, **kwargs
    ).iloc[:0]

    def work(shard: pd.DataFrame) -> pd.DataFrame:
        return build_examples(SeriesPanel.from_facts(shard, span=span), origins=origins, **kwargs)

    return map_shards(facts, compute, work, reference, ["origin_date", *SERIES_KEY, "horizon"])
