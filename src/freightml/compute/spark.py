"""The heavy steps on Spark: the pandas code is the unit of work, one task per shard.

The driver splits the facts into shards of the series
(:func:`freightml.compute.layout.shard_dataset`: a hash of the series key, every fact of a
series in one shard) on a directory or object store both reach; one Spark task per shard
reads its shard with pyarrow and runs the pandas code on it
(:func:`freightml.features.build.build_examples` with the whole panel's calendar and
origins, or the predictor's window and the champion), so no facts pass through the JVM or
a shuffle. The examples are written by the tasks; the forecasts come back to the driver.
The results equal the pandas path's for any number of shards
(tests/integration/test_compute_spark.py checks 1, 4 and 16). pyspark is the ``spark``
extra (``make install`` adds it); a local session runs on ``compute.spark_master``
(``local[*]``) with OpenJDK 17; in a SparkApplication (``compute.submit: operator``) the
session is the one spark-submit set up.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from freightml.compute.layout import filesystem_of, read_shard, row_groups, shard_row_group
from freightml.compute_settings import ComputeSettings
from freightml.features.build import SERIES_KEY, SeriesPanel, build_examples, default_origins
from freightml.features.draw import HorizonDraw, series_days
from freightml.features.levels import LevelAdjustment, adjust_levels

log = logging.getLogger("freightml")
T = TypeVar("T")


class SparkUnavailable(RuntimeError):
    """Spark cannot start here; the message says what is missing."""


def session(compute: ComputeSettings) -> SparkSession:
    """The Spark session of ``compute`` (one per process, reused)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise SparkUnavailable(
            "compute.engine is spark but no Java runtime was found (java on PATH or "
            "JAVA_HOME): install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
        )
    if compute.submit == "operator":  # spark-submit set the master and the resources
        return SparkSession.builder.appName("freightml").getOrCreate()
    return (
        SparkSession.builder.master(compute.spark_master)
        .appName("freightml")
        .config("spark.driver.memory", compute.spark_driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )


def run_shards(
    compute: ComputeSettings, root: str | Path, work: Callable[[int, pd.DataFrame], T | None]
) -> list[T]:
    """``work(k, facts of shard k)`` for every shard of the dataset at ``root``
    (:func:`freightml.compute.layout.shard_dataset`), one Spark task per shard: the task
    reads its shard's facts itself (pyarrow, from a directory or an object store) and only
    ``work``'s answer comes back to the driver. Shards without facts and answers of None
    are left out."""
    spark = session(compute)
    root = str(root)

    def task(shard: int) -> T | None:
        facts = read_shard(root, shard)
        return None if facts.empty else work(shard, facts)

    tasks = spark.sparkContext.parallelize(range(compute.shards), compute.shards)
    answers = tasks.map(task).collect()
    return [a for a in answers if a is not None]


def shard_on_spark(compute: ComputeSettings, source: str | Path, root: str | Path) -> int:
    """:func:`freightml.compute.layout.shard_dataset` of the facts file at ``source`` as a
    Spark job: one task per row group of the file splits it into the shards under ``root``
    (the same shards), so the pass runs on every executor instead of the driver alone.
    Returns the number of facts."""
    spark = session(compute)
    filesystem, path = filesystem_of(root)
    filesystem.delete_dir_contents(path, missing_dir_ok=True)
    groups = row_groups(source)
    source, root, shards = str(source), str(root), compute.shards
    tasks = spark.sparkContext.parallelize(range(groups), max(groups, 1))
    rows = sum(tasks.map(lambda g: shard_row_group(source, root, shards, g)).collect())
    if rows == 0:
        raise ValueError(f"no facts in {source}")
    return int(rows)


def _writer(out_path: str | Path) -> Callable[[int, pd.DataFrame], None]:
    """Writes a shard's rows as one Parquet file under ``out_path`` (a local directory or
    an object store URI), from the task itself; a rerun replaces what was there."""
    filesystem, root = filesystem_of(out_path)
    filesystem.delete_dir_contents(root, missing_dir_ok=True)
    filesystem.create_dir(root, recursive=True)

    def write(shard: int, rows: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(rows, preserve_index=False)
        pq.write_table(table, f"{root}/part-{shard:05d}.parquet", filesystem=filesystem)

    return write


def examples_on_spark(
    shards_root: str | Path,
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
    """``build_examples`` of the sharded facts at ``shards_root`` (``adjust_levels``
    first), one Spark task per shard, each writing its rows as Parquet under ``out_path``:
    the rows of the pandas build, in no particular order
    (:func:`freightml.compute.read_examples` puts them in the build's order). The driver
    only gathers one row per series (its first observed day) to make the origins and the
    horizon draw. Returns the number of rows."""
    spark = session(compute)
    days = pd.concat(run_shards(compute, shards_root, lambda _, facts: series_days(facts)))
    span = (days["first_date"].min().normalize(), days["last_date"].max().normalize())
    if origins is None:
        origins = default_origins(span[1], span[0], origin_step_days, train_window_days)
    origins = [pd.Timestamp(o) for o in origins]
    options = {"horizon_max": horizon_max, "min_history_days": min_history_days, **kwargs}
    draw = None
    if horizons_per_origin is not None and horizons_per_origin < horizon_max:
        draw = HorizonDraw.of(
            days,
            origins,
            last=span[1],
            horizon_max=horizon_max,
            per_origin=horizons_per_origin,
            min_history_days=min_history_days,
            seed=seed,
        )
    shared = spark.sparkContext.broadcast(draw)
    write = _writer(out_path)

    def build_and_write(shard: int, facts: pd.DataFrame) -> int:
        panel = SeriesPanel.from_facts(adjust_levels(facts, adjustments), span=span)
        if shared.value is None:
            rows = build_examples(
                panel, origins=origins, horizons_per_origin=horizons_per_origin, **options
            )
        else:
            rows = build_examples(panel, origins=origins, horizon_draw=shared.value, **options)
        write(shard, rows)
        return len(rows)

    rows = sum(run_shards(compute, shards_root, build_and_write))
    log.info(
        "%d examples from %d shards on Spark (%s) in %s",
        rows,
        compute.shards,
        compute.spark_master,
        out_path,
    )
    return int(rows)


def forecasts_on_spark(
    shards_root: str | Path,
    compute: ComputeSettings,
    work: Callable[[pd.DataFrame], pd.DataFrame | None],
) -> pd.DataFrame:
    """``work`` (a shard's facts -> its forecasts, or None) on every shard, the answers
    concatenated in the pandas window's order (series key, horizon)."""
    parts = run_shards(compute, shards_root, lambda _, facts: work(facts))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values([*SERIES_KEY, "horizon"], kind="stable").reset_index(drop=True)
