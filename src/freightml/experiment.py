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
from freightml.lifecycle import (
    _champion_recipe,
    describe_facts,
    feature_kwargs,
    freshest_window,
    make_estimator,
)

log = logging.getLogger("freightml")
SYNTHETIC_NAMES = ("small", "demo", "large")


class MLExperimentManager:
    """Load data, run the standard backtest for a model, log it, compare with the champion."""

    def __init__(self, settings: Settings | None = None, config: str | Path | None = None) -> None:
        self.settings = settings or load_settings(config)
        self.data: pd.DataFrame | None = None
        self.data_info: dict[str, Any] = {}
        self.last_result = None

    # -- data --------------------------------------------------------------------
    def load(self, name_or_uri: str, *, seed: int | None = None, **filters: Any) -> pd.DataFrame:
        """Load facts by synthetic size name (small/demo/large) or by path/URI.

        ``filters`` go to :func:`freightml.data.sources.load_facts` (start, end, regions).
        The freshest ``data.train_window_days`` are kept, as in the pipeline.
        """
        from freightml.data.sources import digest_facts, file_digest, load_facts
        from freightml.data.synthetic import generate

        if name_or_uri in SYNTHETIC_NAMES:
            s = self.settings.data.seed if seed is None else seed
            facts = generate(name_or_uri, seed=s)
            uri, sha = f"synthetic:{name_or_uri}?seed={s}", None
        else:
            mapping = self.settings.data.column_mapping or None
            facts = load_facts(name_or_uri, column_mapping=mapping, **filters)
            uri, sha = name_or_uri, file_digest(name_or_uri)
        facts = freshest_window(facts, self.settings.data.train_window_days)
        self.data = facts
        self.data_info = describe_facts(facts)
        self.data_info.update(source_uri=uri, source_sha256=sha or digest_facts(facts))
        log.info("loaded %s rows, %s series from %s", len(facts), self.data_info["series"], uri)
        return facts

    def validate(self, data: pd.DataFrame | None = None):
        """Validate the loaded (or given) facts; returns the ValidationReport."""
        from freightml.data.validation import validate_facts

        return validate_facts(
            self._data(data), max_missing_day_share=self.settings.data.max_missing_day_share,
            anomaly_z=self.settings.data.anomaly_z,
        )

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
        from freightml.evaluation import evaluate_gates, load_methodology, run_backtest

        facts = self._data(data)
        merged = {**(self.settings.model.params if model == self.settings.model.name else {}), **(params or {})}
        make_estimator(self.settings, model, merged)  # fail fast on a bad name or parameter
        methodology = load_methodology(self.settings.methodology_path)
        kwargs = feature_kwargs(self.settings)
        result = run_backtest(
            facts, lambda: make_estimator(self.settings, model, merged), methodology, kwargs
        )
        gates = evaluate_gates(result, methodology)
        metrics = result.metrics_dict()
        self.last_result = result
        rows = [
            _row("candidate", model, metrics, "", gates.passed),
            _row("baseline", "seasonal_naive", metrics, "_baseline", None),
        ]
        champion = _champion_recipe(self.settings) if compare else None
        if champion is not None:
            champ = run_backtest(
                facts,
                lambda: make_estimator(self.settings, champion["model"], champion["params"]),
                methodology,
                kwargs,
            )
            champ_metrics = champ.metrics_dict()
            rows.append(
                _row(f"champion v{champion['version']}", champion["model"], champ_metrics, "",
                     evaluate_gates(champ, methodology).passed)
            )
        table = pd.DataFrame(rows)
        if log_to_mlflow:
            self._log(model, merged, metrics, gates, table, run_name)
        return table

    def _log(self, model, params, metrics, gates, table, run_name) -> str:
        import mlflow

        from freightml.evaluation import plot_backtest
        from freightml.lifecycle import _dataset_input
        from freightml.tracking import configure_mlflow, environment_info

        configure_mlflow(self.settings)
        with mlflow.start_run(run_name=run_name or f"experiment {model}") as run:
            env = environment_info()
            mlflow.set_tags({"freightml.kind": "experiment", **{f"freightml.{k}": v for k, v in env.items()}})
            mlflow.set_tag("mlflow.source.git.commit", env["git_commit"])
            mlflow.log_params({"model": model, "model_params": json.dumps(params, sort_keys=True),
                               "data_digest": self.data_info.get("digest", "")})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            mlflow.log_metric("gates_passed", float(gates.passed))
            if self.data_info:
                mlflow.log_input(_dataset_input(self.data_info), context="experiment")
            with tempfile.TemporaryDirectory() as tmp:
                for path in plot_backtest(self.last_result, Path(tmp)):
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
