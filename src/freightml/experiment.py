"""MLExperimentManager: the data scientist's entry point.

    from freightml import MLExperimentManager
    mgr = MLExperimentManager()
    mgr.load("small")                                   # or "s3://bucket/facts.parquet"
    mgr.run_experiment("gbm", {"max_iter": 200})        # backtest, log, compare -> table

Every experiment is judged by the agreed methodology (configs/methodology.yaml): the same
rolling-origin backtest, metrics and gates the training pipeline enforces, and it is
logged to MLflow beside the pipeline's runs.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from freightml.config import Settings, load_settings
from freightml.evaluation import BacktestResult, GateReport
from freightml.stages.evaluate import backtest_recipe
from freightml.stages.ingest import FactsInfo, load_window
from freightml.stages.train import make_estimator

log = logging.getLogger("freightml")
SYNTHETIC_NAMES = ("small", "demo", "large")
FILTERS = {"start": "start_date", "end": "end_date", "regions": "regions"}


class MLExperimentManager:
    """Load data, run the standard backtest for a model, log it, compare with the champion."""

    def __init__(self, settings: Settings | None = None, config: str | Path | None = None) -> None:
        self.settings = settings or load_settings(config)
        self.data: pd.DataFrame | None = None
        self.data_info: FactsInfo | None = None
        self.last_result: BacktestResult | None = None

    # -- data --------------------------------------------------------------------
    def load(self, name_or_uri: str, *, seed: int | None = None, **filters: Any) -> pd.DataFrame:
        """Load facts by synthetic size name (small/demo/large) or by path/URI.

        ``filters`` go to :func:`freightml.data.sources.load_facts` (start, end, regions).
        The freshest ``data.train_window_days`` are kept, as in the pipeline.
        """
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise ValueError(f"unknown filter(s) {unknown}; known: {sorted(FILTERS)}")
        if name_or_uri in SYNTHETIC_NAMES:
            update: dict[str, Any] = {"source_uri": None, "synthetic_size": name_or_uri}
            if seed is not None:
                update["seed"] = seed
        else:
            update = {"source_uri": name_or_uri, **{FILTERS[k]: v for k, v in filters.items()}}
        facts, info = load_window(self.settings.data.model_copy(update=update))
        self.data, self.data_info = facts, info
        log.info("loaded %s rows, %s series from %s", info.rows, info.series, info.source_uri)
        return facts

    def validate(self, data: pd.DataFrame | None = None):
        """Validate the loaded (or given) facts; returns the ValidationReport."""
        from freightml.data.validation import validate_facts

        return validate_facts(self._data(data), settings=self.settings.data)

    def _data(self, data: pd.DataFrame | None) -> pd.DataFrame:
        if data is not None:
            return data
        if self.data is None:
            raise RuntimeError("no data loaded: call load('small') or load('<path or URI>') first")
        return self.data

    # -- experiments -------------------------------------------------------------
    def run_experiment(
        self,
        model: str = "gbm",
        params: dict[str, Any] | None = None,
        *,
        data: pd.DataFrame | None = None,
        run_name: str | None = None,
        compare: bool = True,
        log_to_mlflow: bool = True,
    ) -> pd.DataFrame:
        """Backtest ``model`` with ``params`` by the methodology and return a tidy table.

        Rows: the candidate, the seasonal-naive baseline and (when ``compare``) the
        current champion's recipe on the same window. Columns: wape, mae, bias,
        wape_ratio, gates_passed. Unknown model names or parameters raise ValueError.
        """
        from freightml.evaluation import evaluate_gates, load_methodology
        from freightml.tracking import champion_recipe

        facts = self._data(data)
        merged = {
            **(self.settings.model.params if model == self.settings.model.name else {}),
            **(params or {}),
        }
        make_estimator(self.settings, model, merged)  # fail fast on a bad name or parameter
        methodology = load_methodology(self.settings.methodology_path)
        result = backtest_recipe(self.settings, facts, methodology, model, merged)
        gates = evaluate_gates(result, methodology)
        metrics = result.metrics_dict()
        self.last_result = result
        rows = [
            _row("candidate", model, metrics, "", gates.passed),
            _row("baseline", "seasonal_naive", metrics, "_baseline", None),
        ]
        champion = champion_recipe(self.settings) if compare else None
        if champion is not None:
            champ = backtest_recipe(
                self.settings, facts, methodology, champion.model, champion.params
            )
            rows.append(
                _row(
                    f"champion v{champion.version}",
                    champion.model,
                    champ.metrics_dict(),
                    "",
                    evaluate_gates(champ, methodology).passed,
                )
            )
        table = pd.DataFrame(rows)
        if log_to_mlflow:
            self._log(model, merged, result, gates, table, run_name)
        return table

    def _log(
        self,
        model: str,
        params: dict[str, Any],
        result: BacktestResult,
        gates: GateReport,
        table: pd.DataFrame,
        run_name: str | None,
    ) -> str:
        import mlflow

        from freightml.evaluation import plot_backtest
        from freightml.tracking import (
            configure_mlflow,
            dataset_input,
            environment_info,
            tag_environment,
        )
        from freightml.tracking.runs import PARAM_DATA_DIGEST, PARAM_MODEL, PARAM_MODEL_PARAMS

        configure_mlflow(self.settings)
        with mlflow.start_run(run_name=run_name or f"experiment {model}") as run:
            mlflow.set_tag("freightml.kind", "experiment")
            tag_environment(environment_info())
            mlflow.log_params(
                {
                    PARAM_MODEL: model,
                    PARAM_MODEL_PARAMS: json.dumps(params, sort_keys=True),
                    PARAM_DATA_DIGEST: self.data_info.digest if self.data_info else "",
                }
            )
            mlflow.log_metrics({k: float(v) for k, v in result.metrics_dict().items()})
            mlflow.log_metric("gates_passed", float(gates.passed))
            if self.data_info:
                mlflow.log_input(
                    dataset_input(self.data_info.source_uri, self.data_info.digest),
                    context="experiment",
                )
            with tempfile.TemporaryDirectory() as tmp:
                for path in plot_backtest(result, Path(tmp)):
                    mlflow.log_artifact(str(path), "plots")
                table.to_csv(Path(tmp) / "comparison.csv", index=False)
                mlflow.log_artifact(str(Path(tmp) / "comparison.csv"))
                (Path(tmp) / "gates.json").write_text(json.dumps(gates.to_dict(), indent=2))
                mlflow.log_artifact(str(Path(tmp) / "gates.json"))
            return run.info.run_id


def _row(role: str, model: str, metrics: dict, suffix: str, gates_passed: bool | None) -> dict:
    return {
        "role": role,
        "model": model,
        "wape": metrics[f"wape{suffix}"],
        "mae": metrics[f"mae{suffix}"],
        "bias": metrics[f"bias{suffix}"],
        "wape_ratio": metrics["wape_ratio"] if not suffix else 1.0,
        "gates_passed": gates_passed,
    }
