"""Where the heavy steps run (settings ``compute``, docs/scale.md): the training examples'
feature build and batch scoring.

``engine: pandas`` runs :func:`freightml.features.build.build_examples` in this process;
``engine: spark`` runs the same function once per shard of the series on Spark
(:mod:`freightml.compute.spark`) and gives the same rows in the same order: the features of
a series read only that series' own history and the origins come from the whole panel.
The horizons sampled per (series, origin) pair come from one random stream over all pairs
in order, so the shards build every horizon and the sample is drawn here, over the
collected pairs, exactly as the pandas build draws it (:func:`sample_like_pandas`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from freightml.compute_settings import ComputeSettings
from freightml.features.build import (
    LOOKBACK_DAYS,
    SERIES_KEY,
    build_examples,
    default_origins,
    sample_horizons,
)
from freightml.features.window import (
    HistoryUnavailable,
    HistoryWindow,
    WindowCalendar,
    WindowRules,
    recent_facts,
    window_calendar,
)
from freightml.store.forecasts import BAND_COLUMNS

# build_examples' own default, so both engines agree when the caller leaves it out
HORIZON_MAX: int = inspect.signature(build_examples).parameters["horizon_max"].default


def panel_span(facts: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last fact day: the calendar of the whole panel."""
    dates = pd.to_datetime(facts["date"])
    return dates.min().normalize(), dates.max().normalize()


def example_origins(
    facts: pd.DataFrame, origin_step_days: int = 7, train_window_days: int | None = None
) -> list[pd.Timestamp]:
    """The origins :func:`build_examples` picks by default for the whole panel."""
    start, last = panel_span(facts)
    return default_origins(last, start, origin_step_days, train_window_days)


def training_examples(
    facts: pd.DataFrame,
    compute: ComputeSettings,
    *,
    origins: Sequence[pd.Timestamp] | None = None,
    origin_step_days: int = 7,
    train_window_days: int | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`build_examples` on the configured engine (the same rows either way)."""
    if compute.engine == "pandas":
        return build_examples(
            facts,
            origins=origins,
            origin_step_days=origin_step_days,
            train_window_days=train_window_days,
            **kwargs,
        )
    try:
        from freightml.compute.spark import examples_on_spark  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(
            f"compute.engine is spark but pyspark is not installed ({exc}): install the "
            "`spark` extra (make install, or uv sync --extra spark)"
        ) from exc

    if origins is None:
        origins = example_origins(facts, origin_step_days, train_window_days)
    per_origin = kwargs.pop("horizons_per_origin", None)
    horizon_max = int(kwargs.get("horizon_max", HORIZON_MAX))
    every = examples_on_spark(
        facts, compute, origins=list(origins), horizons_per_origin=None, **kwargs
    )
    if per_origin is None or per_origin >= horizon_max:
        return every
    return sample_like_pandas(every, horizon_max, int(per_origin), int(kwargs.get("seed", 0)))


def sample_like_pandas(
    every: pd.DataFrame, horizon_max: int, per_origin: int, seed: int
) -> pd.DataFrame:
    """The rows of ``every`` (all horizons of every pair, in the build's order: origin,
    series key, horizon) that the pandas build samples with ``seed``."""
    if len(every) % horizon_max:
        raise ValueError("not every (series, origin) pair has all its horizons")
    n_pairs = len(every) // horizon_max
    pair_origin = every["origin_date"].to_numpy()[::horizon_max]
    expected = np.tile(np.arange(1, horizon_max + 1), n_pairs)
    if not np.array_equal(every["horizon"].to_numpy(), expected) or (
        n_pairs > 1 and (np.diff(pair_origin.astype("datetime64[D]").astype(np.int64)) < 0).any()
    ):
        raise ValueError("the rows are not in the build's order (origin, series key, horizon)")
    h = sample_horizons(n_pairs, horizon_max, per_origin, seed)
    rows = (np.arange(n_pairs)[:, None] * horizon_max + h - 1).ravel()
    return every.iloc[rows].reset_index(drop=True)


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
) -> BatchForecasts:
    """The window's forecasts of every series on the configured engine. On Spark each
    shard builds its series' part of the window on the whole network's calendar
    (:func:`freightml.features.window.window_calendar`), so the forecasts equal the pandas
    build's."""
    if compute.engine == "pandas":
        window = build_window(facts, None)
        return BatchForecasts(window_forecasts(window, model), window.origin_date, window.n_series)
    from freightml.compute.spark import map_shards  # noqa: PLC0415

    calendar = window_calendar(facts, rules=rules)
    facts = recent_facts(facts, LOOKBACK_DAYS, origin=calendar.cut)
    # the output's schema, from the forecasts of the series with the most recent facts
    busiest = facts.groupby(SERIES_KEY, observed=True).size().idxmax()
    one = facts.loc[(facts[SERIES_KEY] == pd.Series(busiest, index=SERIES_KEY)).all(axis=1)]
    reference = window_forecasts(build_window(one, calendar), model).iloc[:0]

    def work(shard: pd.DataFrame) -> pd.DataFrame:
        try:
            window = build_window(shard, calendar)
        except HistoryUnavailable:  # every series of the shard too young to forecast
            return reference
        return window_forecasts(window, model)

    out = map_shards(facts, compute, work, reference, [*SERIES_KEY, "horizon"])
    n_series = len(out) // max(int(out["horizon"].max()), 1) if len(out) else 0
    return BatchForecasts(out, calendar.last.date().isoformat(), n_series)
