"""Forecast-error metrics in tonnes, overall and per group, model vs baseline.

WAPE  = sum|yhat - y| / sum|y|   (error per tonne actually carried)
MAE   = mean|yhat - y|           (tonnes per series-day)
bias  = sum(yhat - y) / sum(y)   (systematic over- (+) or under-forecast)
Rows with an unknown actual (NaN y) are ignored; a ratio over zero actual tonnes is NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from freightml.features.build import SERIES_KEY


def _known(y: np.ndarray | pd.Series, yhat: np.ndarray | pd.Series) -> tuple[np.ndarray, ...]:
    y_arr = np.asarray(y, dtype=np.float64)
    yhat_arr = np.asarray(yhat, dtype=np.float64)
    if y_arr.shape != yhat_arr.shape:
        raise ValueError(f"y has shape {y_arr.shape} but yhat has shape {yhat_arr.shape}")
    keep = ~np.isnan(y_arr)
    if np.isnan(yhat_arr[keep]).any():
        raise ValueError("yhat is NaN where the actual is known: every forecast needs a value")
    return y_arr[keep], yhat_arr[keep]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def wape(y: np.ndarray | pd.Series, yhat: np.ndarray | pd.Series) -> float:
    """Weighted absolute percentage error: sum|yhat - y| / sum|y|."""
    y_k, yhat_k = _known(y, yhat)
    return _ratio(np.abs(yhat_k - y_k).sum(), np.abs(y_k).sum())


def mae(y: np.ndarray | pd.Series, yhat: np.ndarray | pd.Series) -> float:
    """Mean absolute error in tonnes."""
    y_k, yhat_k = _known(y, yhat)
    return float(np.abs(yhat_k - y_k).mean()) if len(y_k) else float("nan")


def bias(y: np.ndarray | pd.Series, yhat: np.ndarray | pd.Series) -> float:
    """Relative bias: sum(yhat - y) / sum(y); positive = over-forecast."""
    y_k, yhat_k = _known(y, yhat)
    return _ratio((yhat_k - y_k).sum(), y_k.sum())


def metric_table(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Tidy metrics per group of ``by`` (``[]`` = one overall row).

    ``frame`` needs ``y`` and ``yhat``; with ``yhat_baseline`` the table also has the
    baseline's metrics and ``wape_ratio`` = model WAPE / baseline WAPE. Columns: the group
    columns, n, n_series (when the series keys are present), actual_tonnes, tonnes_share,
    wape, mae, bias[, wape_baseline, mae_baseline, bias_baseline, wape_ratio].
    """
    missing = [c for c in ["y", "yhat", *by] if c not in frame.columns]
    if missing:
        raise ValueError(f"metric_table: frame lacks columns {missing}")
    data = frame.loc[frame["y"].notna()]
    y = data["y"].to_numpy(np.float64)
    parts = {"n": np.ones(len(data)), "actual_tonnes": y, "_abs_y": np.abs(y)}
    has_base = "yhat_baseline" in data.columns
    for suffix, col in [("", "yhat"), ("_baseline", "yhat_baseline")][: 2 if has_base else 1]:
        err = data[col].to_numpy(np.float64) - y
        if np.isnan(err).any():
            raise ValueError(f"metric_table: {col} is NaN where the actual is known")
        parts[f"_abs{suffix}"], parts[f"_err{suffix}"] = np.abs(err), err
    work = pd.DataFrame(parts, index=data.index)
    keys = [data[c] for c in by] if by else [np.zeros(len(data), dtype=np.int8)]
    sums = work.groupby(keys, observed=True, sort=True).sum()
    table = pd.DataFrame(index=sums.index)
    table["n"] = sums["n"].astype(np.int64)
    if all(c in data.columns for c in SERIES_KEY):
        series_id = data.groupby(SERIES_KEY, observed=True, sort=False).ngroup()
        table["n_series"] = series_id.groupby(keys, observed=True, sort=True).nunique()
    table["actual_tonnes"] = sums["actual_tonnes"]
    total = sums["actual_tonnes"].sum()
    table["tonnes_share"] = sums["actual_tonnes"] / total if total > 0 else np.nan
    for suffix in ["", "_baseline"][: 2 if has_base else 1]:
        den = sums["_abs_y"].where(sums["_abs_y"] > 0)
        table[f"wape{suffix}"] = sums[f"_abs{suffix}"] / den
        table[f"mae{suffix}"] = sums[f"_abs{suffix}"] / sums["n"].where(sums["n"] > 0)
        table[f"bias{suffix}"] = sums[f"_err{suffix}"] / sums["actual_tonnes"].where(
            sums["actual_tonnes"] > 0
        )
    if has_base:
        table["wape_ratio"] = table["wape"] / table["wape_baseline"].where(
            table["wape_baseline"] > 0
        )
    if by:
        return table.reset_index(names=by)
    return table.reset_index(drop=True)
