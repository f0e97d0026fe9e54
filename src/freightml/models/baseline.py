"""Baselines: seasonal naive (next week looks like the last observed week) and the mean
of the last two same-weekday values."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

_NEEDED = ["lag_same_weekday_ratio", "mean_7_ratio", "scale"]


class SeasonalNaive(RegressorMixin, BaseEstimator):
    """Forecast = volume on the same weekday in the last week before the origin.

    Reads the ``lag_same_weekday_ratio`` feature (value at target - 7*ceil(h/7)); when that
    day is absent it falls back to the 7-day mean, then to ``scale`` (the 28-day mean).
    Nothing is learned: ``fit`` only checks its input and records ``feature_columns_``, the
    columns ``predict`` reads (as for GlobalGBM, the input schema).
    """

    def fit(self, examples: pd.DataFrame, y: object = None) -> SeasonalNaive:
        _check_columns(examples)
        self.feature_columns_ = list(_NEEDED)
        return self

    def predict(self, examples: pd.DataFrame) -> np.ndarray:
        _check_columns(examples)
        lag = examples["lag_same_weekday_ratio"].to_numpy(dtype=np.float64)
        mean7 = examples["mean_7_ratio"].to_numpy(dtype=np.float64)
        ratio = np.where(np.isnan(lag), mean7, lag)
        ratio = np.where(np.isnan(ratio), 1.0, ratio)
        return np.maximum(ratio * examples["scale"].to_numpy(dtype=np.float64), 0.0)


def _check_columns(
    examples: pd.DataFrame, needed: list[str] = _NEEDED, who: str = "SeasonalNaive"
) -> None:
    missing = [c for c in needed if c not in examples.columns]
    if missing:
        raise ValueError(f"{who} needs columns {missing}; build them with build_examples")


class SameWeekdayMean(RegressorMixin, BaseEstimator):
    """Forecast = mean of the last two observed same-weekday values not after the origin.

    Reads ``same_weekday_mean_2_ratio`` (mean of the values at target - 7*ceil(h/7) and one
    week before it, absent days skipped); falls back to the 7-day mean, then to ``scale``.
    Nothing is learned; ``feature_columns_`` records the columns ``predict`` reads.
    """

    needed: ClassVar[list[str]] = ["same_weekday_mean_2_ratio", "mean_7_ratio", "scale"]

    def fit(self, examples: pd.DataFrame, y: object = None) -> SameWeekdayMean:
        _check_columns(examples, self.needed, "SameWeekdayMean")
        self.feature_columns_ = list(self.needed)
        return self

    def predict(self, examples: pd.DataFrame) -> np.ndarray:
        _check_columns(examples, self.needed, "SameWeekdayMean")
        ratio = examples["same_weekday_mean_2_ratio"].to_numpy(dtype=np.float64)
        mean7 = examples["mean_7_ratio"].to_numpy(dtype=np.float64)
        ratio = np.where(np.isnan(ratio), mean7, ratio)
        ratio = np.where(np.isnan(ratio), 1.0, ratio)
        return np.maximum(ratio * examples["scale"].to_numpy(dtype=np.float64), 0.0)
