"""Prediction intervals calibrated on out-of-sample backtest residuals (split conformal).

A residual is scaled by the series' level at the origin: ``e = (y - yhat) / scale`` (``scale``
is the 28-day mean the features use), so one table serves big and small series. The
empirical quantiles of ``e`` per (segment, horizon bucket) give the forecast's quantiles:
``q_tonnes = max(0, yhat + quantile(e) * scale)``. A cell with fewer than
``MIN_CELL_RESIDUALS`` residuals uses the horizon bucket's pooled quantiles instead.

The residuals come from validation folds the model was not fitted on (the selection's inner
folds, freightml.evaluation.selection), so the reported backtest, whose folds come after
them, measures the intervals' coverage honestly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

# Quantile levels every version carries: 80% and 95% central intervals, quartiles, median.
LEVELS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)
HORIZON_BUCKETS: tuple[tuple[int, int], ...] = ((1, 7), (8, 14), (15, 28))
MIN_CELL_RESIDUALS = 200
# Central intervals the backtest reports coverage for: nominal level -> (lower, upper) level
CENTRAL: dict[str, tuple[float, float]] = {"80": (0.1, 0.9), "95": (0.025, 0.975)}


def quantile_column(level: float) -> str:
    """``tonnes_p10`` for 0.1, ``tonnes_p2_5`` for 0.025 (names safe for JSON and SQL)."""
    pct = round(level * 100, 3)
    text = f"{pct:g}".replace(".", "_")
    return f"tonnes_p{text}"


def bucket_of(horizon: np.ndarray, buckets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Index of each horizon's bucket (the last bucket for horizons past the last one)."""
    h = np.asarray(horizon, dtype=np.int64)
    out = np.full(len(h), len(buckets) - 1, dtype=np.int64)
    for i, (lo, hi) in reversed(list(enumerate(buckets))):
        out[(h >= lo) & (h <= hi)] = i
    return out


class IntervalTable(BaseModel):
    """Scaled-residual quantiles per (segment value, horizon bucket), with pooled fallbacks."""

    model_config = ConfigDict(frozen=True)

    segment: str
    levels: tuple[float, ...]
    buckets: tuple[tuple[int, int], ...]
    pooled: tuple[tuple[float, ...], ...]  # bucket -> quantile per level
    cells: dict[str, tuple[tuple[float, ...] | None, ...]]  # segment -> bucket -> quantiles
    n_residuals: int

    def residual_quantiles(self, examples: pd.DataFrame) -> np.ndarray:
        """rows x levels: the scaled-residual quantiles that apply to each row."""
        bucket = bucket_of(examples["horizon"].to_numpy(), self.buckets)
        out = np.asarray(self.pooled, dtype=np.float64)[bucket]
        if self.segment in examples.columns:
            values = examples[self.segment].astype(str).to_numpy()
            for value, per_bucket in self.cells.items():
                rows = values == value
                if not rows.any():
                    continue
                for b, q in enumerate(per_bucket):
                    if q is not None:
                        out[rows & (bucket == b)] = q
        return out

    def quantiles(self, examples: pd.DataFrame, yhat: np.ndarray) -> pd.DataFrame:
        """The forecast's quantiles in tonnes, one ``tonnes_p..`` column per level
        (non-decreasing across levels, never negative)."""
        scale = examples["scale"].to_numpy(dtype=np.float64)
        base = np.asarray(yhat, dtype=np.float64)[:, None]
        q = np.maximum(base + self.residual_quantiles(examples) * scale[:, None], 0.0)
        q = np.maximum.accumulate(q, axis=1)
        return pd.DataFrame(
            {quantile_column(level): q[:, i] for i, level in enumerate(self.levels)},
            index=examples.index,
        )


def interpolate_quantile(
    levels: Sequence[float] | np.ndarray, table: np.ndarray, level: float
) -> np.ndarray:
    """The quantile at ``level`` from ``table`` (rows x ``levels``, tonnes), linear between
    the two calibrated levels around it; ``level`` must lie within the levels."""
    grid = np.asarray(levels, dtype=np.float64)
    if not grid[0] <= level <= grid[-1]:
        raise ValueError(
            f"quantile level {level} is outside the calibrated [{grid[0]}, {grid[-1]}]"
        )
    j = int(np.clip(np.searchsorted(grid, level), 1, len(grid) - 1))
    w = (level - grid[j - 1]) / (grid[j] - grid[j - 1])
    return table[:, j - 1] * (1 - w) + table[:, j] * w


def calibrate(
    residuals: pd.DataFrame,
    segment: str,
    *,
    levels: Sequence[float] = LEVELS,
    buckets: Sequence[tuple[int, int]] = HORIZON_BUCKETS,
    min_cell: int = MIN_CELL_RESIDUALS,
) -> IntervalTable:
    """The interval table of out-of-sample rows with ``y``, ``yhat``, ``scale``, ``horizon``
    and ``segment``. Raises when there is no residual to calibrate on."""
    missing = [c for c in ("y", "yhat", "scale", "horizon", segment) if c not in residuals]
    if missing:
        raise ValueError(f"interval calibration needs columns {missing}")
    data = residuals.loc[residuals["y"].notna() & residuals["yhat"].notna()]
    if data.empty:
        raise ValueError("interval calibration: no out-of-sample residual with a known actual")
    if sorted(levels) != list(levels) or not all(0 < q < 1 for q in levels):
        raise ValueError(f"interval levels must be increasing and inside (0, 1), got {levels}")
    e = (data["y"].to_numpy(np.float64) - data["yhat"].to_numpy(np.float64)) / data[
        "scale"
    ].to_numpy(np.float64)
    bucket = bucket_of(data["horizon"].to_numpy(), buckets)
    everything = _quantiles(e, levels)
    pooled = tuple(
        _quantiles(e[bucket == b], levels) if (bucket == b).sum() >= min_cell else everything
        for b in range(len(buckets))
    )
    values = data[segment].astype(str).to_numpy()
    cells: dict[str, tuple[tuple[float, ...] | None, ...]] = {}
    for value in sorted(set(values)):
        rows = values == value
        cells[value] = tuple(
            _quantiles(e[rows & (bucket == b)], levels)
            if (rows & (bucket == b)).sum() >= min_cell
            else None
            for b in range(len(buckets))
        )
    return IntervalTable(
        segment=segment,
        levels=tuple(float(q) for q in levels),
        buckets=tuple((int(a), int(b)) for a, b in buckets),
        pooled=pooled,
        cells=cells,
        n_residuals=len(e),
    )


def _quantiles(e: np.ndarray, levels: Sequence[float]) -> tuple[float, ...]:
    """Split-conformal quantiles: the finite-sample level ceil((n + 1) q) / n for upper
    levels (floor for lower ones), so a central interval covers at least its nominal share
    of exchangeable residuals."""
    n = len(e)
    out = []
    for q in levels:
        adj = math.ceil((n + 1) * q) / n if q >= 0.5 else math.floor((n + 1) * q) / n
        out.append(float(np.quantile(e, min(max(adj, 0.0), 1.0))))
    return tuple(out)


def coverage(frame: pd.DataFrame) -> dict[str, float]:
    """Share of known actuals inside each central interval of ``CENTRAL`` whose bounds are
    columns of ``frame`` (``coverage_80``, ``coverage_95``)."""
    known = frame.loc[frame["y"].notna()]
    out = {}
    for name, (lo, hi) in CENTRAL.items():
        lo_c, hi_c = quantile_column(lo), quantile_column(hi)
        if lo_c in known and hi_c in known and len(known):
            y = known["y"].to_numpy(np.float64)
            inside = (y >= known[lo_c].to_numpy()) & (y <= known[hi_c].to_numpy())
            out[f"coverage_{name}"] = float(inside.mean())
    return out
