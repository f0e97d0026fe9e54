"""The registered model: the candidate the selection chose, as one estimator.

A ``Portfolio`` is an ML part (a model of the registry fitted on feature rows: the global
GBM in some recipe, or seasonal naive), a statistical part (a statsforecast model fitted per
series at the forecast origin, freightml.models.statistical) or both, blended as
``ml_weight * ml + (1 - ml_weight) * statistical``. Which parts and which weight is decided
by the selection (freightml.evaluation.selection) on validation folds; the result is a fixed
recipe (the estimator's parameters), so a champion's recipe can be backtested again.

The statistical part does not live in the model: the per-series forecast is an input
column, ``stat_<name>``, that whoever builds the rows adds from the history at each row's
origin (``add_statistical``: the backtest per fold, the predictor and batch scoring when the
history refreshes). Online requests never fit a model. Where that column is missing or NaN
(a series too young for the statistical model), the ML part alone answers; without an ML
part, seasonal naive does.

``intervals_`` (an IntervalTable, set by ``set_intervals`` from out-of-sample residuals)
turns the point forecast into quantiles (``predict_quantiles``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from freightml.models.baseline import SeasonalNaive
from freightml.models.intervals import IntervalTable
from freightml.models.statistical import HISTORY_DAYS, check_names, stat_column

ML_MODELS = ("gbm", "seasonal_naive")


class Portfolio(RegressorMixin, BaseEstimator):
    """See the module docstring. ``ml``: a model name of the registry or None; ``ml_params``
    its parameters (without an ML part, only ``level_adjustments``: the facts' restatement
    every reader of the history applies); ``statistical``: a statsforecast model of
    freightml.models.statistical or None; ``ml_weight`` in [0, 1]; ``label``: the
    candidate's name in the selection table."""

    def __init__(
        self,
        ml: str | None = "gbm",
        ml_params: dict[str, Any] | None = None,
        statistical: str | None = None,
        ml_weight: float = 1.0,
        stat_history_days: int = HISTORY_DAYS,
        n_jobs: int = 1,
        label: str = "",
    ) -> None:
        self.ml = ml
        self.ml_params = ml_params
        self.statistical = statistical
        self.ml_weight = ml_weight
        self.stat_history_days = stat_history_days
        self.n_jobs = n_jobs
        self.label = label

    # the history readers' view of the ML part (freightml.features.levels.adjustments_of)
    @property
    def level_adjustments(self) -> list[str] | None:
        return (self.ml_params or {}).get("level_adjustments")

    @property
    def statistical_models(self) -> list[str]:
        """The ``stat_<name>`` inputs this model reads (to be added by the row builder)."""
        return check_names([self.statistical]) if self.statistical else []

    def _ml_estimator(self) -> BaseEstimator:
        from freightml.models import make_model  # noqa: PLC0415

        if self.ml not in ML_MODELS:
            raise ValueError(f"Portfolio: ml must be one of {list(ML_MODELS)} or None")
        return make_model(self.ml, self.ml_params)

    def _check(self) -> None:
        if self.ml is None and self.statistical is None:
            raise ValueError("Portfolio: needs an ml part, a statistical part or both")
        if not 0.0 <= float(self.ml_weight) <= 1.0:
            raise ValueError(f"Portfolio: ml_weight must be in [0, 1], got {self.ml_weight}")
        if self.ml is None and float(self.ml_weight) != 0.0:
            raise ValueError("Portfolio: without an ml part, ml_weight must be 0")
        if self.statistical is None and float(self.ml_weight) != 1.0:
            raise ValueError("Portfolio: without a statistical part, ml_weight must be 1")
        self.statistical_models  # noqa: B018 (validates the name)

    def example_weights(self, examples: pd.DataFrame) -> np.ndarray:
        """The ML part's example weights (all 1 without an ML part that weighs examples)."""
        part = getattr(self, "ml_model_", None) or (
            self._ml_estimator() if self.ml is not None else None
        )
        weights = getattr(part, "example_weights", None)
        return np.ones(len(examples)) if weights is None else weights(examples)

    def fit(self, examples: pd.DataFrame, y: object = None) -> Portfolio:
        """Fit the ML part on the examples (the statistical part is fitted per origin)."""
        self._check()
        self.fallback_ = SeasonalNaive().fit(examples)
        self.ml_model_ = self._ml_estimator().fit(examples) if self.ml is not None else None
        reads = (
            self.ml_model_.feature_columns_
            if self.ml_model_ is not None
            else self.fallback_.feature_columns_
        )
        self.feature_columns_ = list(dict.fromkeys([*reads, "scale"]))
        self.intervals_: dict[str, Any] | None = None
        return self

    def set_intervals(self, table: IntervalTable | dict[str, Any] | None) -> Portfolio:
        """Attach the interval calibration (an IntervalTable or its dict form)."""
        check_is_fitted(self, "fallback_")
        if table is not None and not isinstance(table, dict):
            table = table.model_dump(mode="json")
        # a plain dict: what skops stores without trusting another type
        self.intervals_ = (
            None if table is None else IntervalTable.model_validate(table).model_dump(mode="json")
        )
        return self

    @property
    def interval_table(self) -> IntervalTable | None:
        """The calibrated intervals, or None."""
        table = getattr(self, "intervals_", None)
        return None if table is None else IntervalTable.model_validate(table)

    def predict_parts(self, examples: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The ML part's forecast (seasonal naive without one) and the statistical part's
        (NaN where it has none)."""
        check_is_fitted(self, "fallback_")
        ml = (
            np.asarray(self.ml_model_.predict(examples), dtype=np.float64)
            if self.ml_model_ is not None
            else np.asarray(self.fallback_.predict(examples), dtype=np.float64)
        )
        stat = np.full(len(examples), np.nan)
        if self.statistical is not None and stat_column(self.statistical) in examples.columns:
            stat = examples[stat_column(self.statistical)].to_numpy(dtype=np.float64)
        return ml, stat

    def predict(self, examples: pd.DataFrame) -> np.ndarray:
        """Forecast tonnes (never negative): the blend where the statistical forecast
        exists, the ML part (or seasonal naive) where it does not."""
        if len(examples) == 0:
            return np.empty(0, dtype=np.float64)
        ml, stat = self.predict_parts(examples)
        w = float(self.ml_weight)
        if self.ml is None:  # statistical only: seasonal naive covers the young series
            blend = np.where(np.isnan(stat), ml, stat)
        else:
            blend = np.where(np.isnan(stat), ml, w * ml + (1 - w) * stat)
        return np.maximum(blend, 0.0)

    def predict_quantiles(
        self, examples: pd.DataFrame, yhat: np.ndarray | None = None
    ) -> pd.DataFrame:
        """The calibrated quantiles (``tonnes_p..`` columns); raises without intervals."""
        table = self.interval_table
        if table is None:
            raise ValueError("this model has no calibrated intervals (set_intervals)")
        point = self.predict(examples) if yhat is None else yhat
        return table.quantiles(examples, point)
