"""Scorers: a loaded model bound to the history window's feature table.

``predict(rows)`` forecasts tonnes for rows of the table. The generic scorer hands the
gathered feature frame to ``model.predict``. For the project's GlobalGBM a faster scorer
encodes the whole table once (categorical codes, model column order) and calls the trees
directly, with OpenMP threads set through a threadpoolctl controller built once: 1 thread
for small batches (a parallel region costs more than it saves), all cores for large ones.
``GlobalGBM.predict`` re-discovers the thread pools on every call (~3 ms) and re-encodes
its input, which is most of a 1-row forecast. The fast scorer is checked against
``model.predict`` before it is used, and the generic one is the fallback. The portfolio
(freightml.models.portfolio) is scored once for the whole table when it is bound, with its
calibrated quantiles, and requests read rows of that table.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

log = logging.getLogger("freightml.serving")

VERIFY_ROWS = 512


class Scorer(Protocol):
    kind: str

    def predict(self, rows: np.ndarray) -> np.ndarray: ...


class _Threads:
    """OpenMP thread limits without re-scanning the loaded libraries on every call."""

    def __init__(self, parallel_rows: int, large_threads: int | None) -> None:
        self.controller = ThreadpoolController()
        self.parallel_rows = parallel_rows
        self.large_threads = large_threads

    def limit(self, n_rows: int) -> Any:
        limits = 1 if n_rows < self.parallel_rows else self.large_threads
        return self.controller.limit(limits=limits, user_api="openmp")


class FrameScorer:
    """Any model with ``predict(DataFrame)``: gather the rows, call the model."""

    kind = "model.predict"

    def __init__(self, model: Any, features: pd.DataFrame, threads: _Threads) -> None:
        self.model = model
        self.features = features
        self.threads = threads

    def predict(self, rows: np.ndarray) -> np.ndarray:
        frame = self.features.take(rows)
        with self.threads.limit(len(rows)):
            return np.asarray(self.model.predict(frame), dtype=np.float64)


class GbmScorer:
    """GlobalGBM on a pre-encoded matrix: ``max((trees(X) + base) * scale, 0)`` like its
    predict, with the target base of its ``target_base`` computed once per table."""

    kind = "pre-encoded trees"

    def __init__(self, model: Any, features: pd.DataFrame, threads: _Threads) -> None:
        self.trees = model.model_
        self.matrix = np.ascontiguousarray(model.encode(features), dtype=np.float64)
        self.scale = features["scale"].to_numpy(dtype=np.float64)
        self.base = np.broadcast_to(
            np.asarray(model.base_ratio(features), dtype=np.float64), self.scale.shape
        )
        self.threads = threads

    def predict(self, rows: np.ndarray) -> np.ndarray:
        with self.threads.limit(len(rows)):
            ratio = self.trees.predict(self.matrix[rows]) + self.base[rows]
        return np.maximum(ratio * self.scale[rows], 0.0)


class TableScorer:
    """Every row of the feature table forecast once, when the table is bound; a request
    reads its rows. For models whose forecast is not a function of one row alone (the
    portfolio's blend reads the statistical forecasts fitted at the window's build) and
    whose quantiles come with the forecast. ``quantiles`` is rows x ``levels`` (tonnes) or
    None for a model without calibrated intervals."""

    kind = "precomputed table"

    def __init__(self, model: Any, features: pd.DataFrame) -> None:
        self.tonnes = np.asarray(model.predict(features), dtype=np.float64)
        table = getattr(model, "interval_table", None)
        self.levels: tuple[float, ...] = () if table is None else tuple(table.levels)
        self.quantiles = (
            None if table is None else table.quantiles(features, self.tonnes).to_numpy()
        )

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.tonnes[rows]


def _is_global_gbm(model: Any) -> bool:
    from freightml.models.gbm import GlobalGBM  # noqa: PLC0415

    return isinstance(model, GlobalGBM) and all(
        hasattr(model, a) for a in ("model_", "model_features_", "vocabulary_")
    )


def make_scorer(
    model: Any,
    features: pd.DataFrame,
    *,
    fast: bool = True,
    parallel_rows: int = 256,
    large_threads: int | None = None,
) -> Scorer:
    """The scorer for ``model`` over ``features``; raises if the model cannot score them."""
    threads = _Threads(parallel_rows, large_threads)
    generic = FrameScorer(model, features, threads)
    sample = np.unique(
        np.linspace(0, len(features) - 1, min(VERIFY_ROWS, len(features))).astype(np.int64)
    )
    expected = generic.predict(sample)  # also the smoke test: a model that cannot score fails
    if len(expected) != len(sample) or not np.all(np.isfinite(expected)):
        raise ValueError(
            f"the model returned {len(expected)} predictions for {len(sample)} "
            "rows, or non-finite values: it does not fit these features"
        )
    if hasattr(model, "statistical_models") and hasattr(model, "interval_table"):
        table = TableScorer(model, features)
        if not np.allclose(table.predict(sample), expected, rtol=1e-9, atol=1e-9):
            raise ValueError("the precomputed forecasts disagree with model.predict")
        return table
    if fast and _is_global_gbm(model):
        try:
            scorer = GbmScorer(model, features, threads)
            got = scorer.predict(sample)
        except Exception as exc:
            log.warning("fast GlobalGBM scorer unavailable (%s); using model.predict", exc)
        else:
            if np.allclose(got, expected, rtol=1e-9, atol=1e-9):
                return scorer
            log.warning(
                "fast GlobalGBM scorer disagrees with model.predict (max diff %.3g); "
                "using model.predict",
                float(np.max(np.abs(got - expected))),
            )
    return generic
