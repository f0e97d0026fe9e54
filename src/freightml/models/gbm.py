"""Global gradient-boosting model over all series, trained on volume relative to level."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from freightml.features.build import CATEGORICAL_FEATURES, FEATURE_COLUMNS

MAX_CATEGORIES = 250  # HistGradientBoosting allows codes < max_bins (255)


class GlobalGBM(RegressorMixin, BaseEstimator):
    """One HistGradientBoostingRegressor for every series.

    The target is ``y / scale`` (volume relative to the series' recent level) weighted by
    ``scale``, so the squared loss tracks tonnes while big and small series share one model.
    Prediction is ``max(0, ratio_hat * scale)``. Categorical features are encoded with the
    vocabulary seen at fit (``vocabulary_``, pickled with the model); unseen -> missing.
    """

    def __init__(
        self,
        max_iter: int = 300,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 100,
        l2_regularization: float = 1.0,
        max_train_rows: int | None = 1_000_000,
        early_stopping: bool | str = "auto",
        random_state: int | None = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_train_rows = max_train_rows
        self.early_stopping = early_stopping
        self.random_state = random_state

    def fit(self, examples: pd.DataFrame, y: object = None) -> GlobalGBM:
        """Fit on the rows of ``examples`` whose ``y`` is known (``y`` argument is ignored)."""
        _check_columns(examples, [*FEATURE_COLUMNS, "scale", "y"])
        known = examples["y"].notna().to_numpy()
        train = examples.loc[known]
        if self.max_train_rows is not None and len(train) > self.max_train_rows:
            rng = np.random.default_rng(self.random_state)
            take = np.sort(rng.choice(len(train), size=self.max_train_rows, replace=False))
            train = train.iloc[take]
        if len(train) == 0:
            raise ValueError("GlobalGBM.fit: no example has a known y")
        self.feature_columns_ = list(FEATURE_COLUMNS)
        self.categorical_features_ = list(CATEGORICAL_FEATURES)
        self.vocabulary_ = {c: _vocabulary(train[c]) for c in self.categorical_features_}
        scale = train["scale"].to_numpy(dtype=np.float64)
        self.model_ = HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=self.early_stopping,
            categorical_features=[c in self.categorical_features_ for c in self.feature_columns_],
            random_state=self.random_state,
        )
        self.model_.fit(
            self._matrix(train), train["y"].to_numpy(dtype=np.float64) / scale, sample_weight=scale
        )
        self.n_train_rows_ = len(train)
        return self

    def predict(self, examples: pd.DataFrame) -> np.ndarray:
        """Forecast tonnes for every row of ``examples`` (never negative)."""
        check_is_fitted(self, "model_")
        _check_columns(examples, [*self.feature_columns_, "scale"])
        ratio = self.model_.predict(self._matrix(examples))
        return np.maximum(ratio * examples["scale"].to_numpy(dtype=np.float64), 0.0)

    def _matrix(self, examples: pd.DataFrame) -> np.ndarray:
        columns = []
        for col in self.feature_columns_:
            if col in self.vocabulary_:
                columns.append(encode_categories(examples[col], self.vocabulary_[col]))
            else:
                columns.append(examples[col].to_numpy(dtype=np.float64))
        return np.column_stack(columns) if columns else np.empty((len(examples), 0))


def _vocabulary(values: pd.Series) -> list[str]:
    """The most frequent categories (at most MAX_CATEGORIES), as strings, sorted."""
    counts = values.dropna().astype(str).value_counts()
    return sorted(counts.index[:MAX_CATEGORIES].tolist())


def encode_categories(values: pd.Series, vocabulary: list[str]) -> np.ndarray:
    """Integer codes (as float) of values in vocabulary; missing or unseen -> NaN."""
    missing = values.isna().to_numpy()
    codes = pd.Categorical(values.astype(str), categories=vocabulary).codes.astype(np.float64)
    codes[(codes < 0) | missing] = np.nan
    return codes


def _check_columns(examples: pd.DataFrame, needed: list[str]) -> None:
    missing = [c for c in needed if c not in examples.columns]
    if missing:
        raise ValueError(f"GlobalGBM: examples lack columns {missing}; use build_examples")
