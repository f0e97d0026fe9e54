"""Global gradient-boosting model over all series, trained on volume relative to level."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from freightml.features.build import CATEGORICAL_FEATURES, FEATURE_COLUMNS
from freightml.features.levels import parse_adjustments

MAX_CATEGORIES = 250  # HistGradientBoosting allows codes < max_bins (255)
LOSSES = ("squared_error", "absolute_error")
TARGET_BASES = ("level", "weekday_level", "seasonal_naive")
# Types skops must be told to trust when MLflow saves a fitted GlobalGBM in its default
# "skops" format: mlflow.sklearn.log_model(model, ..., skops_trusted_types=SKOPS_TRUSTED_TYPES).
# They are trusted because only this project's pipeline writes models into the registry.
SKOPS_TRUSTED_TYPES: list[str] = [
    "freightml.models.baseline.SeasonalNaive",
    "freightml.models.gbm.GlobalGBM",
    "freightml.models.portfolio.Portfolio",
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


class GlobalGBM(RegressorMixin, BaseEstimator):
    """One HistGradientBoostingRegressor for every series.

    The target is ``y / scale`` (volume relative to the series' recent level) weighted by
    ``scale``, so the loss tracks tonnes while big and small series share one model.
    Prediction is ``max(0, ratio_hat * scale)``.

    ``target_base="weekday_level"`` makes the trees learn a correction to a same-weekday
    level instead of the whole ratio: the target is ``y / scale - base`` with ``base`` the
    series' 4-week weekday profile at the target's weekday times its 7-day mean (both
    relative to ``scale``; the 7-day mean alone when the profile is missing, 1 when that is
    too), and the prediction ``max(0, (base + correction_hat) * scale)``. Trees approximate
    a continuous function by steps, so on series with strong weekly schedules most of the
    step error of "predict the weekday's level" disappears when that level is the starting
    point. ``target_base="seasonal_naive"`` starts from the seasonal-naive forecast instead
    (``lag_same_weekday_ratio``, the last same-weekday value on or before the origin, with
    the baseline's fallbacks: the 7-day mean, then 1), so the trees learn what the baseline
    gets wrong. ``loss="absolute_error"`` fits the scale-weighted absolute error, which is the
    numerator of WAPE (the methodology's primary metric), instead of the squared error.

    Categorical features are encoded with the vocabulary seen at fit (``vocabulary_``,
    pickled with the model); unseen -> missing. ``feature_columns_`` is the input schema of
    ``predict`` (FEATURE_COLUMNS + scale); ``model_features_`` are the columns the trees see
    (FEATURE_COLUMNS).

    ``exclude_features`` names feature columns the trees do not see (they stay in the input
    schema, so callers build the same frames): on a panel shorter than a year the yearly
    calendar (``month``, ``day_of_year``, the New Year distances) only takes values at
    forecast time that training never saw, and the trees extend the last season's leaves
    to them (configs/real-data.yaml). Unknown names are an error.

    ``weight_before`` (an ISO date) and ``pre_change_weight`` weigh the examples whose
    forecast origin is before that date (the shift-aware training window of
    freightml.retraining.window): 0 leaves them out of the fit, 1 (the default) or no date
    keeps uniform weights. When no example is on or after the date, all weigh the same (a
    backtest fold before the change).

    ``level_adjustments`` lists the level adjustments (freightml.features.levels, text form
    ``cargo_type=coal before 2025-09-17 x1.612``) of the facts this model's examples are
    built from. The model does not apply them itself (its input is feature rows): every
    reader of facts for it does (training examples, backtest, serving history, monitoring),
    and fit checks that they parse. None or empty: raw facts.

    ``n_threads`` caps OpenMP threads (None = all cores). The default is 1: with more threads
    than free cores (a busy machine, a pod whose CPU limit is below the node's core count)
    HistGradientBoosting's spin-waiting threads slow fitting down 3-30x, while a second
    thread on an idle machine gains only ~1.5x.
    """

    def __init__(
        self,
        max_iter: int = 300,
        learning_rate: float = 0.08,
        max_leaf_nodes: int = 63,
        min_samples_leaf: int = 100,
        l2_regularization: float = 1.0,
        loss: str = "squared_error",
        target_base: str = "level",
        max_train_rows: int | None = 500_000,
        early_stopping: bool | str = "auto",
        n_threads: int | None = 1,
        random_state: int | None = 0,
        exclude_features: list[str] | None = None,
        weight_before: str | None = None,
        pre_change_weight: float = 1.0,
        level_adjustments: list[str] | None = None,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.loss = loss
        self.target_base = target_base
        self.max_train_rows = max_train_rows
        self.early_stopping = early_stopping
        self.n_threads = n_threads
        self.random_state = random_state
        self.exclude_features = exclude_features
        self.weight_before = weight_before
        self.pre_change_weight = pre_change_weight
        self.level_adjustments = level_adjustments

    def example_weights(self, examples: pd.DataFrame) -> np.ndarray:
        """The sample weight of each example (before the scale weighting of the loss):
        ``pre_change_weight`` where the forecast origin is before ``weight_before``, else 1;
        all 1 without a date or when no example's origin is on or after it."""
        n = len(examples)
        if self.weight_before is None:
            return np.ones(n)
        if not 0.0 <= self.pre_change_weight <= 1.0:
            raise ValueError(
                f"GlobalGBM: pre_change_weight must be in [0, 1], got {self.pre_change_weight}"
            )
        try:
            before = pd.Timestamp(self.weight_before).normalize()
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"GlobalGBM: weight_before must be an ISO date, got {self.weight_before!r}"
            ) from exc
        _check_columns(examples, ["origin_date"])
        early = pd.to_datetime(examples["origin_date"]).to_numpy() < before.to_datetime64()
        if early.all():
            return np.ones(n)
        return np.where(early, float(self.pre_change_weight), 1.0)

    def fit(self, examples: pd.DataFrame, y: object = None) -> GlobalGBM:
        """Fit on the rows of ``examples`` whose ``y`` is known (``y`` argument is ignored)."""
        parse_adjustments(self.level_adjustments)  # a bad one fails before anything else
        _check_columns(examples, [*FEATURE_COLUMNS, "scale", "y"])
        if self.loss not in LOSSES:
            raise ValueError(f"GlobalGBM: loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.target_base not in TARGET_BASES:
            raise ValueError(
                f"GlobalGBM: target_base must be one of {list(TARGET_BASES)}, "
                f"got {self.target_base!r}"
            )
        excluded = list(self.exclude_features or [])
        unknown = sorted(set(excluded) - set(FEATURE_COLUMNS))
        if unknown:
            raise ValueError(
                f"GlobalGBM: exclude_features names unknown features {unknown}; "
                f"features: {FEATURE_COLUMNS}"
            )
        rows = np.flatnonzero(examples["y"].notna().to_numpy())
        if len(rows) == 0:
            raise ValueError("GlobalGBM.fit: no example has a known y")
        weight = self.example_weights(examples.iloc[rows])
        rows, weight = rows[weight > 0], weight[weight > 0]
        if self.max_train_rows is not None and len(rows) > self.max_train_rows:
            rng = np.random.default_rng(self.random_state)
            pick = np.sort(rng.choice(len(rows), size=self.max_train_rows, replace=False))
            rows, weight = rows[pick], weight[pick]
        train = examples.iloc[rows]
        self.model_features_ = [c for c in FEATURE_COLUMNS if c not in excluded]
        self.feature_columns_ = [*FEATURE_COLUMNS, "scale"]
        self.categorical_features_ = [c for c in CATEGORICAL_FEATURES if c not in excluded]
        self.vocabulary_ = {c: _vocabulary(train[c]) for c in self.categorical_features_}
        scale = train["scale"].to_numpy(dtype=np.float64)
        self.model_ = HistGradientBoostingRegressor(
            loss=self.loss,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=self.early_stopping,
            categorical_features=[c in self.categorical_features_ for c in self.model_features_],
            random_state=self.random_state,
        )
        X = self.encode(train)
        # an all-missing column (e.g. yoy_ratio with < 1 year of history) breaks the binner;
        # as a constant it can never be split on, so its values at predict time do not matter
        empty = np.isnan(X).all(axis=0)
        X[:, empty] = 0.0
        self.empty_features_ = [c for c, e in zip(self.model_features_, empty, strict=True) if e]
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            target = train["y"].to_numpy(dtype=np.float64) / scale - self.base_ratio(train)
            self.model_.fit(X, target, sample_weight=scale * weight)
        self.n_train_rows_ = len(train)
        self.n_down_weighted_rows_ = int((weight < 1).sum())
        return self

    def predict(self, examples: pd.DataFrame) -> np.ndarray:
        """Forecast tonnes for every row of ``examples`` (never negative)."""
        check_is_fitted(self, "model_")
        examples = _unique_columns(examples)
        _check_columns(examples, self.feature_columns_)
        if len(examples) == 0:
            return np.empty(0, dtype=np.float64)
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            ratio = self.model_.predict(self.encode(examples)) + self.base_ratio(examples)
        return np.maximum(ratio * examples["scale"].to_numpy(dtype=np.float64), 0.0)

    def base_ratio(self, examples: pd.DataFrame) -> np.ndarray | float:
        """What the trees' output is added to, relative to ``scale`` (see the class doc)."""
        # models saved before target_base existed learned the plain ratio
        if getattr(self, "target_base", "level") == "level":
            return 0.0
        mean7 = examples["mean_7_ratio"].to_numpy(dtype=np.float64)
        if self.target_base == "seasonal_naive":
            base = examples["lag_same_weekday_ratio"].to_numpy(dtype=np.float64)
        else:
            base = examples["weekday_profile_4w"].to_numpy(dtype=np.float64) * mean7
        base = np.where(np.isnan(base), mean7, base)
        return np.where(np.isnan(base), 1.0, base)

    def encode(self, examples: pd.DataFrame) -> np.ndarray:
        """The trees' input: model features in order, categories as the fitted codes."""
        columns = []
        for col in self.model_features_:
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


def _unique_columns(examples: pd.DataFrame) -> pd.DataFrame:
    """Drop repeated column names (e.g. a caller appending "scale" twice)."""
    dup = examples.columns.duplicated()
    return examples.loc[:, ~dup] if dup.any() else examples


def _check_columns(examples: pd.DataFrame, needed: list[str]) -> None:
    missing = [c for c in needed if c not in examples.columns]
    if missing:
        raise ValueError(f"GlobalGBM: examples lack columns {missing}; use build_examples")
