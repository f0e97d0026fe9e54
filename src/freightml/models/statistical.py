"""Forecasts fitted at one forecast origin: statsforecast's per-series models and
mlforecast's recursive LightGBM.

These candidates of the portfolio (freightml.models.portfolio) do not learn from feature
rows: they are fitted on the series' history up to the origin and forecast 1..H days ahead.
The statistical ones (``STATISTICAL_MODELS``) give each series its own model, fitted by
statsforecast in its own vectorised, compiled way (``n_jobs`` processes); the recursive
LightGBM (``RECURSIVE_MODELS``, freightml.models.recursive) is one model over every series
with enough history at the origin, even when only some of them are forecast, so a sample of
series gets the same forecasts as the whole panel would. This module only turns a
``SeriesPanel`` into their long input and their output back into one column per model,
``stat_<name>`` (tonnes), keyed by series, origin and target date, so the forecasts join onto
feature rows.

Leakage-safe like the features: a forecast with origin ``o`` reads panel days ``<= o`` only.
Absent days (NaN in the panel) inside a series' history are filled with the same weekday's
value one week earlier (zero when there is none), since statsforecast needs complete series;
days before a series' first fact are not part of its history. Series with fewer than
``MIN_HISTORY_DAYS`` days of history at the origin get no statistical forecast (NaN): the
portfolio falls back to its ML part or to seasonal naive for them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from freightml.features.build import SERIES_KEY, SeriesPanel
from freightml.features.calendar import DEFAULT_HOLIDAY_COUNTRY
from freightml.models.recursive import RECURSIVE_MODELS
from freightml.models.recursive import forecast as recursive_forecast

log = logging.getLogger("freightml")

SEASON_DAYS = 7
MIN_HISTORY_DAYS = 28  # four weeks: two full seasons for MSTL, and a weekly level
HISTORY_DAYS = 364  # each series is fitted on at most its last 52 weeks
STATISTICAL_MODELS: tuple[str, ...] = ("mstl", "autoets", "seasonal_window_average")
ORIGIN_MODELS: tuple[str, ...] = (*STATISTICAL_MODELS, *RECURSIVE_MODELS)


def stat_column(name: str) -> str:
    """The example column holding statistical model ``name``'s forecast (tonnes)."""
    return f"stat_{name}"


def _model(name: str) -> Any:
    from statsforecast.models import MSTL, AutoETS, SeasonalWindowAverage

    if name == "mstl":
        return MSTL(season_length=SEASON_DAYS, alias=name)
    if name == "autoets":
        # error type and weekly season chosen per series; no trend over 28-day horizons
        # (the full "ZZZ" search costs ~15x as much for freight series)
        return AutoETS(season_length=SEASON_DAYS, model="ZNZ", alias=name)
    if name == "seasonal_window_average":
        return SeasonalWindowAverage(season_length=SEASON_DAYS, window_size=4, alias=name)
    raise ValueError(f"unknown statistical model {name!r}; known: {list(STATISTICAL_MODELS)}")


def check_names(names: Sequence[str]) -> list[str]:
    """``names`` as a list, every one a known model fitted at the origin."""
    unknown = sorted(set(names) - set(ORIGIN_MODELS))
    if unknown:
        raise ValueError(f"unknown statistical model(s) {unknown}; known: {list(ORIGIN_MODELS)}")
    return list(dict.fromkeys(names))


def _filled_history(panel: SeriesPanel, day: int, history_days: int) -> tuple[np.ndarray, int]:
    """Panel days ``day - history_days + 1 .. day`` with absent days filled (see the module
    docstring); NaN before each series' first fact. Returns the matrix and its first day."""
    first = max(0, day - history_days + 1)
    window = panel.values[:, first : day + 1].astype(np.float64)
    started = np.arange(first, day + 1)[None, :] >= panel.first_day[:, None]
    for _ in range(window.shape[1] // SEASON_DAYS + 1):
        gaps = np.isnan(window) & started
        if not gaps.any():
            break
        shifted = np.full_like(window, np.nan)
        shifted[:, SEASON_DAYS:] = window[:, :-SEASON_DAYS]
        fill = gaps & ~np.isnan(shifted)
        if not fill.any():
            break
        window[fill] = shifted[fill]
    window[np.isnan(window) & started] = 0.0
    return window, first


def statistical_forecasts(
    panel: SeriesPanel,
    origin: pd.Timestamp,
    horizon_max: int,
    names: Sequence[str],
    *,
    history_days: int = HISTORY_DAYS,
    n_jobs: int = 1,
    series_rows: np.ndarray | None = None,
    holiday_country: str = DEFAULT_HOLIDAY_COUNTRY,
) -> pd.DataFrame:
    """Forecasts of every model in ``names`` (statistical or recursive) for every series (or
    the panel rows ``series_rows``) with enough history at ``origin``, horizons 1..``horizon_max``.
    ``holiday_country`` is the calendar of the holiday-aware recursive model (the training's).

    Columns: SERIES_KEY, ``origin_date``, ``target_date``, ``stat_<name>`` per model
    (tonnes, never negative). Empty (with those columns) when no series qualifies.
    """
    names = check_names(names)
    columns = [*SERIES_KEY, "origin_date", "target_date", *map(stat_column, names)]
    if not names:
        return pd.DataFrame(columns=columns)
    origin = pd.Timestamp(origin).normalize()
    day = panel.day_index(origin)
    if day < 0:
        return pd.DataFrame(columns=columns)
    day = min(day, panel.n_days - 1)
    window, first = _filled_history(panel, day, history_days)
    length = (~np.isnan(window)).sum(axis=1)
    enough = length >= MIN_HISTORY_DAYS
    wanted = enough.copy()
    if series_rows is not None:
        wanted &= np.isin(np.arange(len(enough)), series_rows)
    rows = np.flatnonzero(wanted)
    if len(rows) == 0:
        return pd.DataFrame(columns=columns)
    per_series = [n for n in names if n in STATISTICAL_MODELS]
    recursive = [n for n in names if n in RECURSIVE_MODELS]
    index = pd.MultiIndex.from_product(
        [rows, np.arange(day + 1, day + horizon_max + 1)], names=["unique_id", "ds"]
    )
    forecast = pd.DataFrame(index=index)
    if per_series:
        long = _long(window, rows, first, day)
        fitted = _fit_forecast(long, horizon_max, per_series, n_jobs)
        forecast = forecast.join(fitted.set_index(["unique_id", "ds"])[per_series])
    if recursive:
        # one global model over every series with enough history, whichever are wanted
        long = _long(window, np.flatnonzero(enough), first, day)
        long["ds"] = panel.start + pd.to_timedelta(long["ds"], unit="D")
        for name in recursive:
            fitted = recursive_forecast(
                long, horizon_max, name=name, holiday_country=holiday_country, n_jobs=n_jobs
            )
            fitted["ds"] = (pd.to_datetime(fitted["ds"]) - panel.start).dt.days
            forecast = forecast.join(fitted.set_index(["unique_id", "ds"])[[name]])
    forecast = forecast.reset_index()
    series = panel.series.iloc[forecast["unique_id"].to_numpy()]
    out = pd.DataFrame({c: series[c].to_numpy() for c in SERIES_KEY})
    out["origin_date"] = origin
    out["target_date"] = panel.start + pd.to_timedelta(forecast["ds"].to_numpy(), unit="D")
    for name in names:
        out[stat_column(name)] = np.maximum(forecast[name].to_numpy(dtype=np.float64), 0.0)
    return out[columns]


def _long(window: np.ndarray, rows: np.ndarray, first: int, day: int) -> pd.DataFrame:
    """The history of panel rows ``rows`` in the long form (``unique_id`` = panel row,
    ``ds`` = panel day, ``y``), from each series' first fact."""
    sub = window[rows]
    observed = ~np.isnan(sub)
    uid = np.repeat(rows, observed.sum(axis=1))
    ds = np.broadcast_to(np.arange(first, day + 1), sub.shape)[observed]
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": sub[observed]})


def _fit_forecast(long: pd.DataFrame, horizon: int, names: list[str], n_jobs: int) -> pd.DataFrame:
    """statsforecast's forecast of ``long`` (unique_id, ds, y; integer days)."""
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive

    engine = StatsForecast(
        models=[_model(n) for n in names],
        freq=1,
        n_jobs=n_jobs,
        fallback_model=SeasonalNaive(season_length=SEASON_DAYS),
    )
    result = engine.forecast(h=horizon, df=long)
    return result.reset_index() if "unique_id" not in result.columns else result


@dataclass(frozen=True)
class StatisticalColumns:
    """The ``stat_<name>`` columns of a model that blends statistical forecasts, as the
    feature window fits them at its origin (``freightml.features.window.OriginColumns``)."""

    names: tuple[str, ...]
    history_days: int = HISTORY_DAYS
    n_jobs: int = 1

    @classmethod
    def of(cls, model: Any, n_jobs: int = 1) -> StatisticalColumns:
        """The columns ``model`` reads (its ``statistical_models``; none for other models)."""
        return cls(
            tuple(getattr(model, "statistical_models", ())),
            int(getattr(model, "stat_history_days", HISTORY_DAYS)),
            n_jobs,
        )

    def __call__(
        self,
        features: pd.DataFrame,
        panel: SeriesPanel,
        *,
        horizon_max: int,
        holiday_country: str,
    ) -> pd.DataFrame:
        return add_statistical(
            features,
            panel,
            self.names,
            horizon_max=horizon_max,
            history_days=self.history_days,
            n_jobs=self.n_jobs,
            holiday_country=holiday_country,
        )


def add_statistical(
    examples: pd.DataFrame,
    panel: SeriesPanel,
    names: Sequence[str],
    *,
    horizon_max: int,
    history_days: int = HISTORY_DAYS,
    n_jobs: int = 1,
    holiday_country: str = DEFAULT_HOLIDAY_COUNTRY,
) -> pd.DataFrame:
    """``examples`` with a ``stat_<name>`` column per model: the forecast made at each row's
    origin (one statsforecast fit per distinct origin), NaN where a series had too little
    history. Row order and index are kept. ``holiday_country``: as in
    ``statistical_forecasts`` (the calendar the examples' features were built with)."""
    names = check_names(names)
    if not names or examples.empty:
        return examples.assign(**{stat_column(n): np.nan for n in names})
    keys = panel.series[SERIES_KEY].astype(str).reset_index(drop=True)
    wanted = examples[SERIES_KEY].astype(str).drop_duplicates()
    rows = keys.reset_index().merge(wanted, on=SERIES_KEY)["index"].to_numpy()
    frames = [
        statistical_forecasts(
            panel,
            origin,
            horizon_max,
            names,
            history_days=history_days,
            n_jobs=n_jobs,
            series_rows=rows,
            holiday_country=holiday_country,
        )
        for origin in pd.to_datetime(examples["origin_date"]).drop_duplicates()
    ]
    table = pd.concat(frames, ignore_index=True)
    key = [*SERIES_KEY, "origin_date", "target_date"]
    left = examples[key].astype({c: str for c in SERIES_KEY})
    left["origin_date"] = pd.to_datetime(left["origin_date"])
    left["target_date"] = pd.to_datetime(left["target_date"])
    table = table.astype({c: str for c in SERIES_KEY})
    table["origin_date"] = pd.to_datetime(table["origin_date"])
    table["target_date"] = pd.to_datetime(table["target_date"])
    joined = left.merge(table, on=key, how="left", validate="many_to_one")
    stats = {stat_column(n): joined[stat_column(n)].to_numpy(dtype=np.float64) for n in names}
    return examples.assign(**stats)
