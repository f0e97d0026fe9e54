"""The quality methodology in code: metrics, rolling-origin backtest, gates, plots."""

from freightml.evaluation.backtest import (
    BacktestResult,
    backtest_cutoffs,
    metric_name,
    run_backtest,
)
from freightml.evaluation.gates import GateCheck, GateReport, beats_champion, evaluate_gates
from freightml.evaluation.methodology import Methodology, load_methodology
from freightml.evaluation.metrics import bias, mae, metric_table, wape
from freightml.evaluation.plots import plot_backtest

__all__ = [
    "BacktestResult",
    "GateCheck",
    "GateReport",
    "Methodology",
    "backtest_cutoffs",
    "beats_champion",
    "bias",
    "evaluate_gates",
    "load_methodology",
    "mae",
    "metric_name",
    "metric_table",
    "plot_backtest",
    "run_backtest",
    "wape",
]
