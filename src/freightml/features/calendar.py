"""Target-day calendar features: weekday, season, New Year distance, public holidays.

Calendar facts are known in advance for any date, so they cannot leak: they are computed
from the target date alone. Holidays come from the ``holidays`` package for one country
(ISO code, from ``features.holiday_country``; default Russia, including its substituted
days off).
"""

from __future__ import annotations

from dataclasses import dataclass

import holidays
import numpy as np
import pandas as pd

CALENDAR_COLUMNS: list[str] = [
    "dow",
    "month",
    "day_of_year",
    "days_to_new_year",
    "days_since_new_year",
    "is_holiday",
    "holiday_within_3d",
    "days_to_holiday",
    "days_from_holiday",
]

# the public-holiday part of the calendar (the rest is the weekday and the yearly cycle)
HOLIDAY_COLUMNS: list[str] = [
    "is_holiday",
    "holiday_within_3d",
    "days_to_holiday",
    "days_from_holiday",
]
assert set(HOLIDAY_COLUMNS) < set(CALENDAR_COLUMNS)

DEFAULT_HOLIDAY_COUNTRY = "RU"
_HOLIDAY_WINDOW_DAYS = 3
HOLIDAY_DISTANCE_CAP = 30  # days; farther holidays (or none in the years around) read as 30


def country_holidays(
    start: pd.Timestamp, end: pd.Timestamp, country: str = DEFAULT_HOLIDAY_COUNTRY
) -> np.ndarray:
    """Dates (datetime64[D]) of the country's public holidays between start and end's years."""
    years = range(start.year, end.year + 1)
    days = holidays.country_holidays(country, years=years)
    return np.array(sorted(days), dtype="datetime64[D]")


def russian_holidays(start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Dates (datetime64[D]) of Russian public holidays and days off between start and end."""
    return country_holidays(start, end, "RU")


def _distance(days: np.ndarray, hol: np.ndarray, forward: bool) -> np.ndarray:
    """Days to the next (forward) or since the last holiday, 0 on one, capped."""
    if hol.size == 0:
        return np.full(len(days), HOLIDAY_DISTANCE_CAP, dtype=np.int64)
    if forward:
        pos = np.searchsorted(hol, days, side="left")
        near = hol[np.minimum(pos, hol.size - 1)]
        gap = (near - days).astype(np.int64)
        gap[pos >= hol.size] = HOLIDAY_DISTANCE_CAP
    else:
        pos = np.searchsorted(hol, days, side="right") - 1
        near = hol[np.maximum(pos, 0)]
        gap = (days - near).astype(np.int64)
        gap[pos < 0] = HOLIDAY_DISTANCE_CAP
    return np.minimum(gap, HOLIDAY_DISTANCE_CAP)


def calendar_table(
    start: pd.Timestamp, end: pd.Timestamp, country: str = DEFAULT_HOLIDAY_COUNTRY
) -> pd.DataFrame:
    """Calendar features for every day from start to end (inclusive), float32, indexed by date.

    ``country`` is the ISO code of the holiday calendar (the ``holidays`` package);
    ``days_to_holiday`` / ``days_from_holiday`` are capped at ``HOLIDAY_DISTANCE_CAP``.
    """
    dates = pd.date_range(start.normalize(), end.normalize(), freq="D")
    days = dates.values.astype("datetime64[D]")
    # holidays just outside the range matter for the +-3 day window and the distances
    pad = np.timedelta64(_HOLIDAY_WINDOW_DAYS, "D")
    margin = pd.Timedelta(days=HOLIDAY_DISTANCE_CAP + 7)
    hol = country_holidays(start - margin, end + margin, country)
    is_hol = np.isin(days, hol)
    wide = np.arange(days[0] - pad, days[-1] + pad + 1, dtype="datetime64[D]")
    wide_hol = np.isin(wide, hol).astype(np.int32)
    counts = np.convolve(wide_hol, np.ones(2 * _HOLIDAY_WINDOW_DAYS + 1, np.int32), mode="valid")
    next_new_year = pd.to_datetime({"year": dates.year + 1, "month": 1, "day": 1})
    table = pd.DataFrame(
        {
            "dow": dates.dayofweek,
            "month": dates.month,
            "day_of_year": dates.dayofyear,
            "days_to_new_year": (next_new_year.values - dates.values) // np.timedelta64(1, "D"),
            "days_since_new_year": dates.dayofyear - 1,
            "is_holiday": is_hol,
            "holiday_within_3d": counts > 0,
            "days_to_holiday": _distance(days, hol, forward=True),
            "days_from_holiday": _distance(days, hol, forward=False),
        },
        index=dates,
    )
    return table.astype(np.float32)


# The evidence that a holiday calendar moves a panel (``holiday_evidence``)
MIN_HOLIDAY_DAYS = 5  # holidays with both same-weekday neighbours, below that: no evidence
HOLIDAY_P_VALUE = 0.01  # one-sided Mann-Whitney U, holidays against ordinary days
_QUIET_DAYS = 7  # an ordinary day is farther than this from every holiday


@dataclass(frozen=True)
class HolidayEvidence:
    """Whether the public holidays of ``country`` move a panel's daily total more than
    ordinary days do (``moves``), and the figures that say so."""

    country: str
    moves: bool
    holidays: int  # holidays scored (with a value a week before and a week after)
    holiday_median: float  # median |log(day / mean of the same weekday +-1 week)|
    ordinary_median: float
    p_value: float | None

    def describe(self) -> str:
        verdict = "moves" if self.moves else "does not measurably move"
        if self.p_value is None:
            return (
                f"the {self.country} holiday calendar {verdict} this panel: {self.holidays} "
                f"holiday(s) in the history, {MIN_HOLIDAY_DAYS} needed to judge"
            )
        return (
            f"the {self.country} holiday calendar {verdict} this panel: on its {self.holidays} "
            f"holidays the daily total departs {self.holiday_median:.1%} (median) from the "
            f"same weekday a week around, against {self.ordinary_median:.1%} on ordinary days "
            f"(one-sided Mann-Whitney p = {self.p_value:.1e}, threshold {HOLIDAY_P_VALUE})"
        )


def holiday_evidence(totals: pd.Series, country: str) -> HolidayEvidence:
    """Judge whether ``country``'s holidays move ``totals`` (a panel's daily total volume,
    indexed by date; absent days count as 0): each day's departure is
    ``|log(1 + day) - log(1 + mean of the same weekday a week before and after)|``; the
    calendar moves the panel when at least ``MIN_HOLIDAY_DAYS`` holidays are scored and
    their departures exceed those of ordinary days (more than a week from any holiday) by a
    one-sided Mann-Whitney U test at ``HOLIDAY_P_VALUE``. A calendar of another country, or
    holidays a business ignores, leave the test unconvinced; the selection then drops the
    holiday features (freightml.evaluation.selection)."""
    from scipy.stats import mannwhitneyu

    daily = totals.sort_index().asfreq("D", fill_value=0.0).astype(np.float64)
    level = np.log1p(daily.clip(lower=0.0))
    around = np.log1p(((daily.shift(7) + daily.shift(-7)) / 2).clip(lower=0.0))
    departure = (level - around).abs()
    days = daily.index.values.astype("datetime64[D]")
    hol = (
        country_holidays(daily.index.min(), daily.index.max(), country)
        if len(days)
        else np.array([], dtype="datetime64[D]")
    )
    is_holiday = np.isin(days, hol)
    quiet = (_distance(days, hol, forward=True) > _QUIET_DAYS) & (
        _distance(days, hol, forward=False) > _QUIET_DAYS
    )
    on_holidays = departure[is_holiday].dropna().to_numpy()
    ordinary = departure[quiet].dropna().to_numpy()
    if len(on_holidays) < MIN_HOLIDAY_DAYS or len(ordinary) < MIN_HOLIDAY_DAYS:
        return HolidayEvidence(country, False, len(on_holidays), np.nan, np.nan, None)
    p = float(mannwhitneyu(on_holidays, ordinary, alternative="greater").pvalue)
    return HolidayEvidence(
        country,
        p < HOLIDAY_P_VALUE,
        len(on_holidays),
        float(np.median(on_holidays)),
        float(np.median(ordinary)),
        p,
    )
