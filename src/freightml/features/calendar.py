"""Target-day calendar features: weekday, season, New Year distance, Russian public holidays.

Calendar facts are known in advance for any date, so they cannot leak: they are computed
from the target date alone. Holidays come from the ``holidays`` package (Russia, including
its substituted days off).
"""

from __future__ import annotations

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
]

_HOLIDAY_WINDOW_DAYS = 3


def russian_holidays(start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Dates (datetime64[D]) of Russian public holidays and days off between start and end."""
    years = range(start.year, end.year + 1)
    days = holidays.country_holidays("RU", years=years)
    return np.array(sorted(days), dtype="datetime64[D]")


def calendar_table(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Calendar features for every day from start to end (inclusive), float32, indexed by date."""
    dates = pd.date_range(start.normalize(), end.normalize(), freq="D")
    days = dates.values.astype("datetime64[D]")
    # holidays just outside the range matter for the +-3 day window
    pad = np.timedelta64(_HOLIDAY_WINDOW_DAYS, "D")
    hol = russian_holidays(start - pd.Timedelta(days=7), end + pd.Timedelta(days=7))
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
        },
        index=dates,
    )
    return table.astype(np.float32)
