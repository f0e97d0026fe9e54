"""MLExperimentManager: the data scientist's entry point.

    from freightml import MLExperimentManager
    mgr = MLExperimentManager()
    mgr.load("small")                                   # or "s3://bucket/facts.parquet"
    mgr.run_experiment("gbm", {"max_iter": 200})        # backtest, log, compare -> table
    found = mgr.search("gbm", n_trials=20)              # Optuna over the same backtest
    found.write_settings("configs/tuned.yaml")          # model: {name, params} for training

Every experiment is judged by the agreed methodology (configs/methodology.yaml): the same
rolling-origin backtest, metrics and gates the training pipeline enforces, and it is
logged to MLflow beside the pipeline's runs.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from freightml.config import Settings, load_settings
from freightml.data.validation import validate_facts
from freightml.evaluation import (
    BacktestResult,
    GateReport,
    evaluate_gates,
    load_methodology,
    plot_backtest,
)
from freightml.stages.evaluate import backtest_recipe
from freightml.stages.ingest import FactsInfo, load_window
from freightml.stages.train import make_estimator
from freightml.tracking import (
    champion_recipe,
    configure_mlflow,
    dataset_input,
    environment_info,
    tag_environment,
)
from freightml.tracking.runs import PARAM_DATA_DIGEST, PARAM_MODEL, PARAM_MODEL_PARAMS

log = logging.getLogger("freightml")
SYNTHETIC_NAMES = ("small", "demo", "large")
FILTERS = {"start": "start_date", "end": "end_date", "regions": "regions"}
# Default search space of the gbm: (low, high[, "log"]); ints give integer parameters, a
# list gives a categorical choice.
GBM_SEARCH_SPACE: dict[str, Any] = {
    "learning_rate": (0.02, 0.2, "log"),
    "max_iter": (100, 600),
    "max_leaf_nodes": (15, 127, "log"),
    "min_samples_leaf": (20, 400, "log"),
    "l2_regularization": (1e-3, 10.0, "log"),
    "loss": ["squared_error", "absolute_error"],
    "target_base": ["level", "weekday_level", "seasonal_naive"],
}
SEARCH_SPACES: dict[str, dict[str, Any]] = {"gbm": GBM_SEARCH_SPACE}


@dataclass
class SearchResult:
    """The outcome of :meth:`MLExperimentManager.search`.

    ``best_params`` are complete (the fixed parameters and the best trial's choices), ready
    to be the next training configuration; ``trials`` has one row per trial (number, the
    searched parameters, wape, wape_ratio, bias, gates_passed); ``run_id`` is the MLflow
    parent run (None when not logged).
    """

    model: str
    best_params: dict[str, Any]
    best_wape: float
    trials: pd.DataFrame
    run_id: str | None = None

    def settings_fragment(self) -> dict[str, Any]:
        """``{"model": {"name": ..., "params": ...}}``: a settings file section."""
        return {"model": {"name": self.model, "params": dict(self.best_params)}}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.settings_fragment(), sort_keys=True)

    def write_settings(self, path: str | Path) -> Path:
        """Write the settings fragment as YAML (merge it into a config, or pass it alone)."""
        out = Path(path)
        out.write_text(self.to_yaml())
        return out


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

    def search(
        self,
        model: str = "gbm",
        n_trials: int = 20,
        *,
        space: Mapping[str, Any] | None = None,
        fixed: Mapping[str, Any] | None = None,
        data: pd.DataFrame | None = None,
        seed: int = 0,
        run_name: str | None = None,
        log_to_mlflow: bool = True,
    ) -> SearchResult:
        """Search ``model``'s parameters with Optuna (TPE) to minimise the backtest WAPE.

        Every trial is the methodology's backtest, exactly as :meth:`run_experiment` runs it,
        of the settings' parameters (for the settings' model), then ``fixed``, then the
        trial's choices from ``space`` (default: ``SEARCH_SPACES[model]``): ``name: (low,
        high)`` (ints -> integer, floats -> float), ``(low, high, "log")`` for a log scale,
        or a list of choices. Logged as one MLflow parent run (kind "search"; the best
        parameters, its WAPE and ``best_params.yaml``) with one nested run per trial.
        """
        import optuna

        facts = self._data(data)
        space = dict(space if space is not None else SEARCH_SPACES.get(model, {}))
        if not space:
            raise ValueError(f"no search space for model {model!r}: pass space={{...}}")
        if n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {n_trials}")
        base = {
            **(self.settings.model.params if model == self.settings.model.name else {}),
            **(fixed or {}),
        }
        make_estimator(self.settings, model, {**base, **_midpoints(space)})  # fail fast
        methodology = load_methodology(self.settings.methodology_path)
        rows: list[dict[str, Any]] = []
        mlflow = self._mlflow() if log_to_mlflow else None

        def objective(trial: optuna.Trial) -> float:
            chosen = {name: _suggest(trial, name, spec) for name, spec in space.items()}
            params = {**base, **chosen}
            result = backtest_recipe(self.settings, facts, methodology, model, params)
            metrics = result.metrics_dict()
            passed = evaluate_gates(result, methodology).passed
            row = {
                "trial": trial.number,
                **chosen,
                "wape": metrics["wape"],
                "wape_ratio": metrics["wape_ratio"],
                "bias": metrics["bias"],
                "gates_passed": passed,
            }
            rows.append(row)
            if mlflow is not None:
                with mlflow.start_run(run_name=f"trial {trial.number}", nested=True):
                    mlflow.set_tag("freightml.kind", "search_trial")
                    mlflow.log_params(chosen)
                    mlflow.log_metrics(
                        {k: float(row[k]) for k in ("wape", "wape_ratio", "bias")}
                        | {"gates_passed": float(passed)}
                    )
            return float(metrics["wape"])

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        if mlflow is None:
            study.optimize(objective, n_trials=n_trials)
            run_id = None
        else:
            with mlflow.start_run(run_name=run_name or f"search {model}") as parent:
                mlflow.set_tag("freightml.kind", "search")
                mlflow.log_params(
                    {
                        "model": model,
                        "n_trials": n_trials,
                        "search_space": json.dumps(space, sort_keys=True, default=str),
                        "data_digest": self.data_info.digest if self.data_info else "",
                    }
                )
                study.optimize(objective, n_trials=n_trials)
                run_id = parent.info.run_id
        best = SearchResult(
            model=model,
            best_params={**base, **study.best_params},
            best_wape=float(study.best_value),
            trials=pd.DataFrame(rows),
            run_id=run_id,
        )
        if mlflow is not None:
            with mlflow.start_run(run_id=run_id):
                mlflow.log_metric("best_wape", best.best_wape)
                mlflow.log_param("best_params", json.dumps(best.best_params, sort_keys=True))
                mlflow.log_text(best.to_yaml(), "best_params.yaml")
        return best

    def _mlflow(self) -> Any:
        import mlflow

        configure_mlflow(self.settings)
        return mlflow

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


def _suggest(trial: Any, name: str, spec: Any) -> Any:
    """One Optuna suggestion from a space entry (see MLExperimentManager.search)."""
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    if not isinstance(spec, tuple) or len(spec) not in (2, 3) or spec[2:] not in ((), ("log",)):
        raise ValueError(f"search space {name!r}: expected (low, high[, 'log']) or a list")
    low, high, log = spec[0], spec[1], spec[2:] == ("log",)
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(name, low, high, log=log)
    return trial.suggest_float(name, float(low), float(high), log=log)


def _midpoints(space: Mapping[str, Any]) -> dict[str, Any]:
    """A valid value per searched parameter, to check the names before the first trial."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            out[name] = spec[0]
        elif isinstance(spec, tuple) and len(spec) >= 2:
            low, high = spec[0], spec[1]
            mid = math.sqrt(low * high) if low > 0 else (low + high) / 2
            out[name] = int(mid) if isinstance(low, int) and isinstance(high, int) else mid
        else:
            raise ValueError(f"search space {name!r}: expected (low, high[, 'log']) or a list")
    return out


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
