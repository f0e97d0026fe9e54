"""The warm history window: the recent facts online and batch scoring build features from.

A :class:`HistorySource` reads facts from a file (CSV/Parquet, any fsspec URI), a
DataFrame, or any callable returning one (the store's ``Store(url).facts.frame``).
A :class:`HistoryWindow` keeps the last ``window_days`` days as a SeriesPanel and, because
features depend only on the history and the target day, precomputes the feature rows of
every known series for every horizon 1..28 from the forecast origin (the latest day a
quorum of series reported: :class:`WindowRules`). A request then only looks rows up; the
window is rebuilt when new facts arrive.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import NamedTuple, Protocol, TypeAlias

import fsspec
import numpy as np
import pandas as pd

from freightml.data.schema import CARGO_TYPES, DEFAULT_WAGON_CAPACITY_T, WAGON_CAPACITY_T
from freightml.data.sources import load_facts
from freightml.domain import ACTIVE_DAYS
from freightml.features.build import (
    FEATURE_INPUT_COLUMNS,
    LOOKBACK_DAYS,
    SERIES_KEY,
    SeriesPanel,
    build_inference_frame,
)
from freightml.features.calendar import DEFAULT_HOLIDAY_COUNTRY
from freightml.features.levels import LevelAdjustment, adjust_levels

HORIZON_MAX = 28

FactsLike: TypeAlias = pd.DataFrame | Callable[..., pd.DataFrame] | str | Path


class OriginColumns(Protocol):
    """Columns fitted per series at the window's origin and added to its feature rows: the
    served model's statistical forecasts (``freightml.models.statistical.StatisticalColumns``).
    The window calls it once per build, so requests only look the columns up."""

    @property
    def names(self) -> tuple[str, ...]:
        """The models whose columns it adds (none: nothing is added)."""
        ...

    def __call__(
        self,
        features: pd.DataFrame,
        panel: SeriesPanel,
        *,
        horizon_max: int,
        holiday_country: str,
    ) -> pd.DataFrame: ...


class HistoryUnavailable(RuntimeError):
    """The facts could not be read or hold nothing to forecast from."""


class HistorySource:
    """Where the facts come from: a path/URI, a DataFrame or a callable returning one.

    A callable may take a ``start`` date (like ``Store.facts.frame(start=...)``): refreshes
    then read only the facts from the current window's first day on.
    """

    def __init__(self, source: FactsLike, *, column_mapping: dict[str, str] | None = None):
        self.source = source
        self.column_mapping = column_mapping
        self._takes_start = callable(source) and _accepts_start(source)

    def describe(self) -> str:
        if isinstance(self.source, pd.DataFrame):
            return f"a DataFrame of {len(self.source)} facts"
        if callable(self.source):
            return f"callable {getattr(self.source, '__qualname__', repr(self.source))}"
        return str(self.source)

    def stamp(self) -> object | None:
        """A cheap token that changes when a file changes; None when unknown (re-read)."""
        if isinstance(self.source, pd.DataFrame):
            return ("frame", id(self.source))
        if callable(self.source):
            return None
        try:
            fs, path = fsspec.core.url_to_fs(str(self.source))
            info = fs.info(path)
        except (OSError, ValueError):
            return None
        return (info.get("mtime") or info.get("LastModified") or info.get("ETag"), info.get("size"))

    def read(self, start: date | None = None) -> pd.DataFrame:
        """The facts (at least the columns features need), from ``start`` on if given."""
        try:
            if isinstance(self.source, pd.DataFrame):
                facts = self.source
            elif callable(self.source):
                facts = self.source(start=start) if self._takes_start else self.source()
            else:
                facts = load_facts(self.source, column_mapping=self.column_mapping, start=start)
        except Exception as exc:
            raise HistoryUnavailable(
                f"could not read the history facts from {self.describe()}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(facts, pd.DataFrame):
            raise HistoryUnavailable(
                f"history source {self.describe()} returned {type(facts).__name__}, "
                "expected a pandas DataFrame of facts"
            )
        return facts


def _accepts_start(fn: Callable[..., object]) -> bool:
    try:
        return "start" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class WindowRules:
    """Which facts make the window, so that no single series decides for the others.

    ``origin_quorum``: the forecast origin is the latest day on which at least this share of
    the series reporting on the busiest of the 28 days before it have a fact (one new lane,
    one fact dated in the future or a day half delivered does not move it; later facts wait
    for the quorum). ``min_history_days``: a series is forecast once its first fact is at
    least this many days before the origin (a younger one is answered 400 naming its age).
    """

    origin_quorum: float = 0.5
    min_history_days: int = ACTIVE_DAYS

    def __post_init__(self) -> None:
        if not 0 < self.origin_quorum <= 1:
            raise ValueError(f"origin_quorum must be in (0, 1], got {self.origin_quorum}")
        if self.min_history_days < 1:
            raise ValueError(f"min_history_days must be >= 1, got {self.min_history_days}")


def forecast_origin(dates: pd.Series, quorum: float = 0.5) -> pd.Timestamp:
    """The latest day whose count of facts (one per series and day) is at least ``quorum``
    of the most reported on any of the 28 days before it; when no day qualifies (a history
    of under two days), the latest of the days with the most facts."""
    days = pd.to_datetime(dates).dt.normalize()
    counts = days.value_counts().sort_index()
    full = counts.reindex(pd.date_range(counts.index[0], counts.index[-1], freq="D"), fill_value=0)
    before = full.rolling(ACTIVE_DAYS, min_periods=1).max().shift(1).fillna(0)
    ok = (full > 0) & (before > 0) & (full >= quorum * before)
    if ok.any():
        return pd.Timestamp(full.index[ok.to_numpy()][-1])
    return pd.Timestamp(counts.index[counts.to_numpy() == counts.max()][-1])


def recent_facts(
    facts: pd.DataFrame,
    window_days: int = LOOKBACK_DAYS,
    quorum: float = 0.5,
    origin: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The facts of the ``window_days`` days up to the forecast origin
    (:func:`forecast_origin`, or ``origin`` when given: the whole network's, for a shard of
    it), feature columns; later facts wait for the quorum."""
    missing = [c for c in FEATURE_INPUT_COLUMNS if c not in facts.columns]
    if missing:
        raise HistoryUnavailable(
            f"history facts lack columns {missing}; expected at least {FEATURE_INPUT_COLUMNS}"
        )
    if facts.empty:
        raise HistoryUnavailable("history facts are empty: nothing to forecast from")
    dates = pd.to_datetime(facts["date"])
    origin = forecast_origin(dates, quorum) if origin is None else pd.Timestamp(origin)
    keep = ((dates >= origin - pd.Timedelta(days=window_days - 1)) & (dates <= origin)).to_numpy()
    return facts.loc[keep, FEATURE_INPUT_COLUMNS]


def young_series(
    recent: pd.DataFrame, min_history_days: int, origin: pd.Timestamp | None = None
) -> dict[tuple[str, str, str], str]:
    """Series of ``recent`` whose first fact is under ``min_history_days`` days before the
    origin (``recent``'s last date unless given), with that first date."""
    dates = pd.to_datetime(recent["date"])
    origin = dates.max() if origin is None else pd.Timestamp(origin)
    keys = [recent[c] for c in SERIES_KEY]
    first = dates.groupby(keys, observed=True, sort=False).min()
    young = first[first > origin - pd.Timedelta(days=min_history_days)]
    return {(str(k[0]), str(k[1]), str(k[2])): d.date().isoformat() for k, d in young.items()}


class WindowCalendar(NamedTuple):
    """The days of a window: ``cut`` is the forecast origin the facts are cut at (the
    quorum day), ``first`` and ``last`` the panel's first and last day once the young
    series are left out (``last`` is the origin forecasts start from)."""

    first: pd.Timestamp
    last: pd.Timestamp
    cut: pd.Timestamp


def window_calendar(
    facts: pd.DataFrame, window_days: int = LOOKBACK_DAYS, rules: WindowRules | None = None
) -> WindowCalendar:
    """The calendar of the window :meth:`HistoryWindow.build` cuts from ``facts``: what a
    shard of the series needs to build its part of the same window."""
    rules = rules or WindowRules()
    recent = recent_facts(facts, window_days, rules.origin_quorum)
    cut = pd.to_datetime(recent["date"]).max()
    old, _ = old_enough(recent, rules.min_history_days)
    dates = pd.to_datetime(old["date"])
    return WindowCalendar(dates.min().normalize(), dates.max().normalize(), cut.normalize())


def old_enough(
    recent: pd.DataFrame, min_history_days: int, origin: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], str]]:
    """``recent`` without the series too young to forecast (:func:`young_series`), and
    those young series; HistoryUnavailable when no series is left."""
    young = young_series(recent, min_history_days, origin)
    if not young:
        return recent, young
    keys = pd.MultiIndex.from_frame(recent[list(SERIES_KEY)].astype(str))
    old = recent.loc[~keys.isin(list(young)), :]
    if old.empty:
        raise HistoryUnavailable(
            f"no series has {min_history_days} days of history before the "
            f"forecast origin ({len(young)} younger series)"
        )
    return old, young


def facts_signature(facts: pd.DataFrame) -> tuple:
    """Content fingerprint: changes when facts arrive or are revised."""
    volume = facts["volume_tonnes"].to_numpy(dtype=np.float64)
    days = pd.to_datetime(facts["date"]).dt.dayofyear.to_numpy(dtype=np.float64)
    last = str(pd.Timestamp(facts["date"].max()).date())
    return (len(facts), last, float(np.nansum(volume)), float(np.nansum(volume * days)))


@dataclass(frozen=True, eq=False)
class HistoryWindow:
    """Recent facts as a panel, plus every feature row a request can ask for.

    Feature row ``p * horizon_max + h - 1`` is series ``p`` (``series_keys[p]``) at horizon
    ``h`` days after ``origin``.
    """

    panel: SeriesPanel
    origin: pd.Timestamp
    horizon_max: int
    features: pd.DataFrame
    series_keys: list[tuple[str, str, str]]
    series_index: dict[tuple[str, str, str], int]
    stations: frozenset[str]
    cargo_types: frozenset[str]
    capacity: np.ndarray  # tonnes per wagon of each series
    dates: list[str]  # ISO target date of horizon h at index h (index 0 = the origin)
    date_horizon: dict[str, int]
    signature: tuple
    window_days: int
    # the configured cargo domain (data.known_cargo_types); empty when there is no fixed list
    known_cargo_types: frozenset[str] = frozenset()
    # the model's level adjustments the panel and features were built with
    level_adjustments: tuple[LevelAdjustment, ...] = ()
    # the statistical forecasts (``stat_<name>`` columns) the features carry, fitted per
    # series at the origin when the window was built (freightml.models.statistical)
    statistical: tuple[str, ...] = ()
    # series left out for want of history (freightml.features.window.WindowRules): their
    # first fact date, to answer why
    young: dict[tuple[str, str, str], str] = field(default_factory=dict)
    min_history_days: int = ACTIVE_DAYS
    built_at: float = field(default_factory=time.time)

    @property
    def origin_date(self) -> str:
        return self.dates[0]

    @property
    def n_series(self) -> int:
        return len(self.series_keys)

    def horizon_of(self, day: date) -> int:
        """Days from the origin to ``day`` (may be out of 1..horizon_max)."""
        return (day - self.origin.date()).days

    @classmethod
    def build(
        cls,
        facts: pd.DataFrame,
        *,
        window_days: int = LOOKBACK_DAYS,
        horizon_max: int = HORIZON_MAX,
        holiday_country: str = DEFAULT_HOLIDAY_COUNTRY,
        known_cargo_types: Collection[str] | None = CARGO_TYPES,
        level_adjustments: Sequence[LevelAdjustment] = (),
        origin_columns: OriginColumns | None = None,
        rules: WindowRules = WindowRules(),
        calendar: WindowCalendar | None = None,
    ) -> HistoryWindow:
        """Cut the last ``window_days`` days of ``facts`` and precompute all feature rows
        (calendar features with the holidays of ``holiday_country``, as in training).
        ``known_cargo_types`` is the configured cargo domain (``None``: no fixed list), which
        tells an unknown cargo type from a known one without recent facts.
        ``level_adjustments`` are the served model's (freightml.features.levels): the panel
        and features read the facts restated by them, as the model's training did; the
        signature stays that of the raw facts. ``origin_columns`` adds the columns fitted per
        series at the origin (the statistical forecasts the served model blends): fitted
        here, once per build, so requests only look them up. ``rules`` choose the origin and
        the series old enough to forecast (:class:`WindowRules`). ``calendar``
        (:func:`window_calendar` of the whole network) builds the window of a shard of the
        series exactly as the whole window builds those series."""
        origin_given = None if calendar is None else calendar.cut
        recent = recent_facts(facts, window_days, rules.origin_quorum, origin_given)
        signature = facts_signature(recent)
        recent, young = old_enough(recent, rules.min_history_days, origin_given)
        span = None if calendar is None else (calendar.first, calendar.last)
        panel = SeriesPanel.from_facts(adjust_levels(recent, level_adjustments), span=span)
        origin = panel.last_date
        features = build_inference_frame(
            panel, origin, range(1, horizon_max + 1), holiday_country=holiday_country
        )
        features = features.reset_index(drop=True)
        if origin_columns is not None and origin_columns.names:
            features = origin_columns(
                features, panel, horizon_max=horizon_max, holiday_country=holiday_country
            )
        n = len(features) // horizon_max
        expected = np.tile(np.arange(1, horizon_max + 1), n)
        if len(features) % horizon_max or not np.array_equal(features["horizon"], expected):
            raise RuntimeError("build_inference_frame no longer returns series-major rows")
        heads = features.iloc[::horizon_max]
        keys = list(zip(*(heads[c].astype(str).tolist() for c in SERIES_KEY), strict=True))
        cargo = [k[2] for k in keys]
        capacity = np.array([WAGON_CAPACITY_T.get(c, DEFAULT_WAGON_CAPACITY_T) for c in cargo])
        day_list = [
            (origin + pd.Timedelta(days=h)).date().isoformat() for h in range(horizon_max + 1)
        ]
        series = panel.series
        stations = set(series["origin_station"].astype(str)) | set(
            series["destination_station"].astype(str)
        )
        return cls(
            panel=panel,
            origin=origin,
            horizon_max=horizon_max,
            features=features,
            series_keys=keys,
            series_index={k: i for i, k in enumerate(keys)},
            stations=frozenset(stations),
            cargo_types=frozenset(series["cargo_type"].astype(str)),
            capacity=capacity,
            dates=day_list,
            date_horizon={d: h for h, d in enumerate(day_list) if h >= 1},
            signature=signature,
            window_days=window_days,
            known_cargo_types=frozenset(known_cargo_types or ()),
            level_adjustments=tuple(level_adjustments),
            statistical=tuple(origin_columns.names) if origin_columns is not None else (),
            young=young,
            min_history_days=rules.min_history_days,
        )
