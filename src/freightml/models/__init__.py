"""Forecasting models: the seasonal-naive baseline, the global gradient-boosting model and
the portfolio (the selected candidate: ML, per-series statistical, or both blended)."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from freightml.models.baseline import SeasonalNaive
from freightml.models.gbm import SKOPS_TRUSTED_TYPES, GlobalGBM
from freightml.models.portfolio import Portfolio

MODEL_REGISTRY: dict[str, type[BaseEstimator]] = {
    "gbm": GlobalGBM,
    "seasonal_naive": SeasonalNaive,
    "portfolio": Portfolio,
}


def make_model(name: str, params: dict[str, Any] | None = None) -> BaseEstimator:
    """A fresh, unfitted model from the registry; unknown names or parameters are errors."""
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODEL_REGISTRY)}")
    cls = MODEL_REGISTRY[name]
    params = dict(params or {})
    allowed = set(cls().get_params())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for model {name!r}; allowed: {sorted(allowed)}"
        )
    return cls(**params)


__all__ = [
    "MODEL_REGISTRY",
    "SKOPS_TRUSTED_TYPES",
    "GlobalGBM",
    "Portfolio",
    "SeasonalNaive",
    "make_model",
]
