"""Backtest plots as PNG files (matplotlib Figure objects on the Agg canvas, no pyplot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from freightml.evaluation.backtest import BacktestResult


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_backtest(result: BacktestResult, out_dir: str | Path) -> list[Path]:
    """WAPE by horizon, WAPE by segment, actual vs forecast daily totals per fold, and (with
    intervals) a fan chart of the biggest series in the last fold."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        _wape_by_horizon(result, out / "wape_by_horizon.png"),
        _wape_by_segment(result, out / "wape_by_segment.png"),
        _daily_totals(result, out / "actual_vs_forecast.png"),
        *([_fan_chart(result, out / "fan_chart.png")] if result.has_intervals else []),
    ]


FAN_SERIES = 4


def _fan_chart(result: BacktestResult, path: Path) -> Path:
    """The last fold's forecast of the biggest series with its 80% and 95% intervals."""
    pred = result.predictions
    last = pred.loc[pred["fold"] == pred["fold"].max()]
    key = ["origin_station", "destination_station", "cargo_type"]
    biggest = last.groupby(key, observed=True)["y"].sum().nlargest(FAN_SERIES).index
    fig = Figure(figsize=(9, 2.4 * len(biggest)))
    for i, series in enumerate(biggest):
        ax = fig.add_subplot(len(biggest), 1, i + 1)
        part = last.set_index(key).loc[series].sort_values("target_date")
        x = part["target_date"]
        ax.fill_between(x, part["tonnes_p2_5"], part["tonnes_p97_5"], alpha=0.15, label="95%")
        ax.fill_between(x, part["tonnes_p10"], part["tonnes_p90"], alpha=0.3, label="80%")
        ax.plot(x, part["yhat"], label="forecast")
        ax.plot(x, part["y"], color="black", marker=".", lw=0.8, label="actual")
        ax.set(ylabel="tonnes", title=" -> ".join(str(v) for v in series))
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def _wape_by_horizon(result: BacktestResult, path: Path) -> Path:
    table = result.by_horizon()
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    ax.plot(table["horizon"], table["wape"], marker="o", label="model")
    ax.plot(table["horizon"], table["wape_baseline"], marker="s", label="seasonal naive")
    ax.set(xlabel="horizon, days", ylabel="WAPE", title="WAPE by horizon (all folds)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _wape_by_segment(result: BacktestResult, path: Path) -> Path:
    columns = list(result.methodology.segments)
    tables = [result.by_segment(c).sort_values("actual_tonnes") for c in columns]
    height = max(3.0, 0.28 * sum(len(t) for t in tables) + 1.5)
    fig = Figure(figsize=(9, height))
    for i, (column, table) in enumerate(zip(columns, tables, strict=True)):
        ax = fig.add_subplot(len(columns), 1, i + 1)
        pos = np.arange(len(table))
        ax.barh(pos - 0.2, table["wape"], height=0.4, label="model")
        ax.barh(pos + 0.2, table["wape_baseline"], height=0.4, label="seasonal naive")
        ax.set_yticks(pos, [str(v) for v in table[column]], fontsize=8)
        ax.set(xlabel="WAPE", title=f"WAPE by {column}")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def _daily_totals(result: BacktestResult, path: Path) -> Path:
    totals = result.predictions.groupby(["fold", "target_date"], observed=True)[
        ["y", "yhat", "yhat_baseline"]
    ].sum()
    folds = sorted(totals.index.get_level_values("fold").unique())
    fig = Figure(figsize=(9, 2.6 * max(len(folds), 1)))
    for i, fold in enumerate(folds):
        ax = fig.add_subplot(len(folds), 1, i + 1)
        part = totals.loc[fold]
        ax.plot(part.index, part["y"] / 1e3, color="black", label="actual")
        ax.plot(part.index, part["yhat"] / 1e3, label="model")
        ax.plot(part.index, part["yhat_baseline"] / 1e3, alpha=0.6, label="seasonal naive")
        ax.set(ylabel="thousand tonnes", title=f"fold {fold}: cutoff {result.cutoffs[fold].date()}")
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=8)
    return _save(fig, path)
