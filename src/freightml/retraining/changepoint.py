"""Change points: an abrupt level shift in a daily volume series, and where it happened.

The statistic of :func:`detect_level_shift` (docs/retraining.md, "The training window rule"):

1. ``y = log1p(volume)`` per day; a missing day is NaN. With a ``reference`` (the same
   days 364 days earlier, i.e. on the same weekdays) the series is ``y - log1p(reference)``:
   year-on-year differencing removes the yearly seasonality, so a seasonal ramp (grain's
   August export peak) is not taken for a shift.
2. Weekly means: 7-day blocks ending on the last day (an incomplete first block is
   dropped; a block needs 4 observed days). Whole weeks cancel the weekday profile and
   most of the day-to-day autocorrelation of freight volumes.
3. For every block boundary ``k`` that leaves at least ``min_segment`` days on each side,
   ordinary least squares fits ``w_j = a + b*j + c*[j >= k] + e_j``: a line (gradual drift)
   plus a step (an abrupt change). The statistic is the step's t value ``|c| / se(c)``;
   the best boundary has the largest.
4. A shift is reported when ``t >= threshold`` and the step is at least ``min_ratio``
   (``exp(|c|)``; a large t alone also comes from a small step in a very smooth aggregate).
5. The day: around the best boundary (+-7 days), the split day with the largest difference
   between the mean of the 14 days after and the 14 days before it (whole weeks again).

``threshold`` is calibrated on the synthetic generator (tests/unit/test_retraining_changepoint.py
and bench/retrain_window.py): no segment of unshifted data reaches the default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

YEAR_DAYS = 364  # same weekday a year earlier
WEEK = 7
MIN_BLOCK_DAYS = 4  # observed days a weekly block needs
REFINE_WINDOW = 14  # days each side compared when placing the change on a day
ALL = "all"  # the segment of every fact


@dataclass(frozen=True)
class LevelShift:
    """An abrupt level shift: ``index`` is the position of the first day of the new level
    in the series given (``date`` when it had a DatetimeIndex), ``ratio`` the level after /
    before with the line (gradual drift) taken out, ``statistic`` the step's t value."""

    index: int
    date: date | None
    ratio: float
    statistic: float
    threshold: float

    @property
    def direction(self) -> str:
        return "up" if self.ratio >= 1 else "down"


@dataclass(frozen=True)
class SegmentShift:
    """A level shift in the daily total of one segment (``column == value``; ``all``/``all``
    for the whole network); ``share`` is the segment's share of tonnes over the lookback."""

    column: str
    value: str
    shift: LevelShift
    share: float

    @property
    def date(self) -> date:
        if self.shift.date is None:  # segment_shifts always passes dated series
            raise ValueError("a segment shift has a date")
        return self.shift.date

    @property
    def segment(self) -> str:
        return ALL if self.column == ALL else f"{self.column}={self.value}"

    def describe(self) -> str:
        """One line: ``cargo_type=coal 2025-01-10 x1.60 (t 12.3)``."""
        s = self.shift
        return f"{self.segment} {self.date} x{s.ratio:.2f} (t {s.statistic:.1f})"


def _as_array(values: np.ndarray | pd.Series, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    bad = np.isinf(arr) | (arr < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what} must be finite and >= 0 (NaN = a missing day): {int(bad.sum())} values "
            f"are not (first at position {first}: {arr[first]})"
        )
    return arr


def _weekly_means(y: np.ndarray) -> np.ndarray:
    """Mean of each 7-day block ending on the last day (NaN: fewer than 4 observed days)."""
    n_blocks = len(y) // WEEK
    blocks = y[len(y) - n_blocks * WEEK :].reshape(n_blocks, WEEK)
    seen = (~np.isnan(blocks)).sum(axis=1)
    total = np.nansum(blocks, axis=1)
    return np.where(seen >= MIN_BLOCK_DAYS, total / np.maximum(seen, 1), np.nan)


def _step_t(w: np.ndarray, k: int) -> tuple[float, float]:
    """(step c, t value) of the OLS fit of w on [1, j, j >= k] over the observed blocks."""
    j = np.arange(len(w), dtype=np.float64)
    ok = ~np.isnan(w)
    x = np.column_stack([np.ones(len(w)), j, (j >= k).astype(np.float64)])[ok]
    y = w[ok]
    dof = len(y) - 3
    if dof < 1 or x[:, 2].min() == x[:, 2].max():
        return 0.0, 0.0
    xtx_inv = np.linalg.pinv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    resid = y - x @ beta
    s2 = max(float(resid @ resid) / dof, 1e-12)
    se = math.sqrt(max(s2 * float(xtx_inv[2, 2]), 1e-24))
    c = float(beta[2])
    return c, abs(c) / se


def _refine_day(y: np.ndarray, boundary: int, step: float) -> int:
    """The first day of the new level near ``boundary`` (a day index into y)."""
    best, best_diff = boundary, -np.inf
    sign = 1.0 if step >= 0 else -1.0
    lo = max(boundary - WEEK, WEEK)
    hi = min(boundary + WEEK, len(y) - WEEK)
    for d in range(lo, hi + 1):
        width = min(REFINE_WINDOW, d, len(y) - d) // WEEK * WEEK
        before, after = y[d - width : d], y[d : d + width]
        if np.isnan(before).all() or np.isnan(after).all():
            continue
        diff = sign * (float(np.nanmean(after)) - float(np.nanmean(before)))
        if diff > best_diff:
            best, best_diff = d, diff
    return best


def detect_level_shift(
    values: np.ndarray | pd.Series,
    *,
    min_segment: int,
    threshold: float,
    min_ratio: float = 1.0,
    reference: np.ndarray | pd.Series | None = None,
) -> LevelShift | None:
    """The most significant abrupt level shift in a daily series, or None (see the module
    docstring for the statistic).

    ``values`` are consecutive days (NaN = missing); a Series with a DatetimeIndex gives the
    shift a date. ``min_segment`` is the fewest days on each side of a change; ``threshold``
    the least t value and ``min_ratio`` the least step (after/before or before/after) that
    count. ``reference``: the same days a year earlier, for year-on-year differencing. A
    series too short to hold two segments of ``min_segment`` days (and 5 weeks) gives None.
    """
    if min_segment < WEEK:
        raise ValueError(f"min_segment must be at least {WEEK} days, got {min_segment}")
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    if min_ratio < 1:
        raise ValueError(
            f"min_ratio must be >= 1 (a step up or down of that factor), got {min_ratio}"
        )
    y = np.log1p(_as_array(values, "values"))
    if reference is not None:
        ref = _as_array(reference, "reference")
        if ref.shape != y.shape:
            raise ValueError(f"reference has {len(ref)} days but values have {len(y)}")
        y = y - np.log1p(ref)
    w = _weekly_means(y)
    offset = len(y) - len(w) * WEEK  # days before the first block
    k_min = -(-min_segment // WEEK)
    if len(w) < max(2 * k_min, 5) or np.isnan(w).sum() > len(w) - 5:
        return None
    best_k, best_c, best_t = 0, 0.0, 0.0
    for k in range(k_min, len(w) - k_min + 1):
        c, t = _step_t(w, k)
        if t > best_t:
            best_k, best_c, best_t = k, c, t
    if best_k == 0 or best_t < threshold or math.exp(abs(best_c)) < min_ratio:
        return None
    index = _refine_day(y, offset + best_k * WEEK, best_c)
    when = None
    if isinstance(values, pd.Series) and isinstance(values.index, pd.DatetimeIndex):
        when = values.index[index].date()
    return LevelShift(
        index=index, date=when, ratio=math.exp(best_c), statistic=best_t, threshold=threshold
    )


def daily_totals(facts: pd.DataFrame, start: date, end: date) -> pd.Series:
    """Tonnes per day from ``start`` to ``end`` (inclusive); a day without facts is NaN."""
    days = pd.date_range(start, end, freq="D")
    if facts.empty:
        return pd.Series(np.nan, index=days)
    totals = facts.groupby("date", observed=True)["volume_tonnes"].sum()
    return totals.reindex(days)


def segment_shifts(
    facts: pd.DataFrame,
    *,
    as_of: date,
    segment_columns: Sequence[str] = ("origin_region", "cargo_type"),
    lookback_days: int = 182,
    min_segment_days: int = 14,
    threshold: float = 7.0,
    min_ratio: float = 1.2,
    min_share: float = 0.02,
    include_all: bool = True,
    year_on_year: bool = True,
) -> list[SegmentShift]:
    """Level shifts in the daily tonnes of every supported segment over the ``lookback_days``
    up to ``as_of`` (inclusive), strongest first.

    Segments are the values of each of ``segment_columns`` with at least ``min_share`` of
    the lookback's tonnes, plus ``all`` (the network). A segment needs facts on every day
    of the last ``2 * min_segment_days`` before it is tested; days it has no facts before it
    appears are missing (a new segment is not a level shift: name it in ``new_segments`` of
    the window choice). Where the facts reach back ``364`` days further, each day is compared
    with the same weekday a year earlier (see :func:`detect_level_shift`).
    """
    missing = [c for c in ("date", "volume_tonnes", *segment_columns) if c not in facts.columns]
    if missing:
        raise ValueError(f"facts lack column(s) {missing} needed to look for level shifts")
    if lookback_days < 2 * min_segment_days + WEEK:
        raise ValueError(
            f"lookback_days ({lookback_days}) must cover two segments of min_segment_days "
            f"({min_segment_days}) and a week"
        )
    end = pd.Timestamp(as_of)
    start = end - pd.Timedelta(days=lookback_days - 1)
    ref_start, ref_end = start - pd.Timedelta(days=YEAR_DAYS), end - pd.Timedelta(days=YEAR_DAYS)
    dates = pd.to_datetime(facts["date"])
    window = facts.loc[(dates >= start) & (dates <= end)]
    reference = facts.loc[(dates >= ref_start) & (dates <= ref_end)]
    has_year = year_on_year and bool(len(facts)) and dates.min() <= ref_start
    total = float(window["volume_tonnes"].sum())
    if total <= 0:
        return []
    groups: list[tuple[str, str, pd.DataFrame, pd.DataFrame]] = []
    if include_all:
        groups.append((ALL, ALL, window, reference))
    for column in segment_columns:
        ref_by = dict(list(reference.groupby(reference[column].astype(str), observed=True)))
        for value, part in window.groupby(window[column].astype(str), observed=True):
            groups.append((column, str(value), part, ref_by.get(str(value), reference.iloc[:0])))
    found = []
    for column, value, part, ref_part in groups:
        share = float(part["volume_tonnes"].sum()) / total
        if share < min_share:
            continue
        series = daily_totals(part, start.date(), end.date())
        if series.iloc[-2 * min_segment_days :].isna().any():
            continue  # not present on every recent day: too thin or gone
        ref = None
        if has_year:
            ref_series = daily_totals(ref_part, ref_start.date(), ref_end.date())
            if not ref_series.isna().any():
                ref = ref_series.to_numpy()
        shift = detect_level_shift(
            series,
            min_segment=min_segment_days,
            threshold=threshold,
            min_ratio=min_ratio,
            reference=ref,
        )
        if shift is not None:
            found.append(SegmentShift(column, value, shift, share))
    return sorted(found, key=lambda s: -s.shift.statistic)


def first_seen(facts: pd.DataFrame, names: Sequence[str]) -> dict[str, date]:
    """The first date each name (a region, station or cargo type) appears in the facts, as
    an origin or destination; a name the facts do not have is an error."""
    columns = [
        c
        for c in (
            "origin_region",
            "destination_region",
            "origin_station",
            "destination_station",
            "cargo_type",
        )
        if c in facts.columns
    ]
    out: dict[str, date] = {}
    dates = pd.to_datetime(facts["date"])
    for name in names:
        hits = np.zeros(len(facts), dtype=bool)
        for column in columns:
            hits |= (facts[column].astype(str) == name).to_numpy()
        if not hits.any():
            raise ValueError(
                f"new segment {name!r} is not a region, station or cargo type of the facts"
            )
        out[name] = dates[hits].min().date()
    return out


def days_between(first: date, last: date) -> int:
    """Days from ``first`` to ``last`` inclusive."""
    return (last - first).days + 1


__all__ = [
    "ALL",
    "LevelShift",
    "SegmentShift",
    "daily_totals",
    "days_between",
    "detect_level_shift",
    "first_seen",
    "segment_shifts",
]
