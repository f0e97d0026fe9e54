"""Where the heavy steps run (settings ``compute``, docs/scale.md): the training examples'
feature build and batch scoring.

``engine: pandas`` runs :func:`freightml.features.build.build_examples` in this process;
``engine: spark`` runs the same function once per shard of the series on Spark
(:mod:`freightml.compute.spark`) and gives the same rows in the same order: the features of
a series read only that series' own history and the origins come from the whole panel.
The horizons sampled per (series, origin) pair come from one random stream over all pairs
in order: the driver draws it from one row per series
(:class:`freightml.features.draw.HorizonDraw`) and every shard samples its own rows with it.
On Spark each task reads its shard of the facts (:mod:`.layout`) and writes its examples
(:func:`write_training_examples`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from freightml.compute.layout import filesystem_of, shard_dataset
from freightml.compute_settings import ComputeSettings
from freightml.features.build import (
    LOOKBACK_DAYS,
    SERIES_KEY,
    build_examples,
)
from freightml.features.levels import LevelAdjustment, adjust_levels
from freightml.features.window import (
    HistoryUnavailable,
    HistoryWindow,
    WindowCalendar,
    WindowRules,
    recent_facts,
    window_calendar,
)
from freightml.store.forecasts import BAND_COLUMNS


def _spark() -> Any:
    try:
        from freightml.compute import spark  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(
            f"compute.engine is spark but pyspark is not installed ({exc}): install the "
            "`spark` extra (make install, or uv sync --extra spark)"
        ) from exc
    return spark


def training_examples(facts: pd.DataFrame, compute: ComputeSettings, **kwargs: Any) -> pd.DataFrame:
    """:func:`build_examples` on the configured engine: the same rows in the same order."""
    if compute.engine == "pandas":
        return build_examples(facts, **kwargs)
    with tempfile.TemporaryDirectory(prefix="freightml-examples-") as tmp:
        shard_dataset(facts, Path(tmp) / "facts", compute.shards)
        _spark().examples_on_spark(Path(tmp) / "facts", Path(tmp) / "examples", compute, **kwargs)
        return read_examples(Path(tmp) / "examples")


def write_training_examples(
    facts_path: str | Path,
    out_path: str | Path,
    compute: ComputeSettings,
    *,
    adjustments: Sequence[LevelAdjustment] = (),
    staging_dir: str | None = None,
    **kwargs: Any,
) -> int:
    """The training examples of the facts at ``facts_path`` (restated by
    ``adjustments``) written to ``out_path``: one Parquet file on pandas, a directory of
    Parquet files written by the Spark tasks (nothing is collected to the driver; the
    facts are split into shards under ``staging_dir`` by one task per row group of the
    file, a temporary directory unless given: on a cluster an object store URI every
    executor reads, :func:`.layout.shard_row_group`).
    :func:`read_examples` reads either. Returns the number of rows."""
    if compute.engine == "pandas":
        facts = adjust_levels(pd.read_parquet(facts_path), adjustments)
        examples = build_examples(facts, **kwargs)
        examples.to_parquet(out_path, index=False)
        return len(examples)
    spark = _spark()
    with tempfile.TemporaryDirectory(prefix="freightml-facts-") as tmp:
        staging = staging_dir or Path(tmp) / "facts"
        spark.shard_on_spark(compute, facts_path, staging)
        try:
            return int(
                spark.examples_on_spark(
                    staging, out_path, compute, adjustments=adjustments, **kwargs
                )
            )
        finally:
            if staging_dir:  # the shards are a copy of the facts: gone with the run
                _remove(staging_dir)


def _remove(directory: str) -> None:
    """Delete ``directory`` (a path or an object store URI) and what it holds."""
    filesystem, path = filesystem_of(directory)
    filesystem.delete_dir_contents(path, missing_dir_ok=True)
    filesystem.delete_dir(path)


BUILD_ORDER = ["origin_date", *SERIES_KEY, "horizon"]


def read_examples(path: str | Path) -> pd.DataFrame:
    """Examples written by :func:`write_training_examples`: a file as it is; a directory
    (Spark's executors' files) in the build's order (origin, series key, horizon), with
    pandas' datetime64[ns] dates, so both engines give the same frame."""
    frame = pd.read_parquet(path)
    if not Path(path).is_dir():
        return frame
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].astype("datetime64[ns]")
    return frame.sort_values(BUILD_ORDER, kind="stable").reset_index(drop=True)


# -- batch scoring -----------------------------------------------------------------------
FORECAST_COLUMNS = [*SERIES_KEY, "origin_date", "target_date", "horizon"]
BuildWindow = Callable[[pd.DataFrame, WindowCalendar | None], HistoryWindow]


def window_forecasts(window: HistoryWindow, model: Any) -> pd.DataFrame:
    """Every series of ``window`` forecast 1..horizon_max days ahead by ``model``: tonnes,
    wagons, and the 80% interval when the model has one."""
    from freightml.models.wagons import wagons_for  # noqa: PLC0415

    tonnes = model.predict(window.features)
    forecasts = window.features[FORECAST_COLUMNS].copy()
    forecasts["tonnes"] = tonnes
    forecasts["wagons"] = wagons_for(tonnes, window.capacity.repeat(window.horizon_max))
    if getattr(model, "interval_table", None) is not None:
        bands = model.predict_quantiles(window.features, tonnes)
        for column in BAND_COLUMNS:
            forecasts[column] = bands[column].to_numpy()
    return forecasts.reset_index(drop=True)


@dataclass(frozen=True)
class BatchForecasts:
    forecasts: pd.DataFrame
    origin_date: str
    n_series: int


def batch_forecasts(
    facts: pd.DataFrame,
    model: Any,
    compute: ComputeSettings,
    build_window: BuildWindow,
    rules: WindowRules,
    *,
    staging_dir: str | None = None,
) -> BatchForecasts:
    """The window's forecasts of every series on the configured engine. On Spark each
    shard builds its series' part of the window on the whole network's calendar
    (:func:`freightml.features.window.window_calendar`), so the forecasts equal the pandas
    build's; the shards of the facts go under ``staging_dir`` (a temporary directory
    unless given: on a cluster an object store URI every executor reads)."""
    if compute.engine == "pandas":
        window = build_window(facts, None)
        return BatchForecasts(window_forecasts(window, model), window.origin_date, window.n_series)
    spark = _spark()
    calendar = window_calendar(facts, rules=rules)
    facts = recent_facts(facts, LOOKBACK_DAYS, origin=calendar.cut)

    def work(shard: pd.DataFrame) -> pd.DataFrame | None:
        try:
            window = build_window(shard, calendar)
        except HistoryUnavailable:  # every series of the shard too young to forecast
            return None
        return window_forecasts(window, model)

    with tempfile.TemporaryDirectory(prefix="freightml-window-") as tmp:
        staging = staging_dir or Path(tmp) / "facts"
        shard_dataset(facts, staging, compute.shards)
        try:
            out = spark.forecasts_on_spark(staging, compute, work)
        finally:
            if staging_dir:
                _remove(staging_dir)
    n_series = len(out) // max(int(out["horizon"].max()), 1) if len(out) else 0
    return BatchForecasts(out, calendar.last.date().isoformat(), n_series)
