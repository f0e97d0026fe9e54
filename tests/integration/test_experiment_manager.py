"""MLExperimentManager: load, backtest by the methodology, log to MLflow, compare."""

import json
import subprocess
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from freightml import MLExperimentManager
from freightml.config import Settings
from freightml.tracking import configure_mlflow, promote

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
FAST = {"max_iter": 40, "max_train_rows": 50_000}


def test_needs_data_first(settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="no data loaded"):
        MLExperimentManager(settings).run_experiment("gbm")


def test_unknown_model_is_named(settings: Settings) -> None:
    mgr = MLExperimentManager(settings)
    mgr.load("small")
    with pytest.raises(ValueError, match="nope"):
        mgr.run_experiment("nope")
    with pytest.raises(ValueError, match=r"unknown filter\(s\) \['since'\]"):
        mgr.load("facts.parquet", since="2025-01-01")


def test_experiment_is_logged_and_compared_with_champion(settings: Settings) -> None:
    mgr = MLExperimentManager(settings)
    facts = mgr.load("small")
    assert len(facts) > 10_000 and mgr.data_info.series > 10

    table = mgr.run_experiment("gbm", FAST, run_name="first")
    assert list(table["role"]) == ["candidate", "baseline"]
    candidate, baseline = table.iloc[0], table.iloc[1]
    assert candidate["wape"] < baseline["wape"]
    assert candidate["wape_ratio"] == pytest.approx(candidate["wape"] / baseline["wape"])

    client = configure_mlflow(settings)
    [run] = mlflow.search_runs(
        filter_string="tags.`freightml.kind` = 'experiment'", output_format="list"
    )
    assert run.data.params["model"] == "gbm"
    assert json.loads(run.data.params["model_params"])["max_iter"] == 40
    assert run.data.metrics["wape"] == pytest.approx(candidate["wape"])
    assert run.data.params["data_digest"] == mgr.data_info.digest
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert run.data.tags["freightml.git_commit"] == head
    assert "freightml.image" not in run.data.tags  # an experiment runs in no pipeline image
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.digest == mgr.data_info.digest[:32]
    assert mgr.data_info.source_uri == f"synthetic:small?seed={settings.data.seed}"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "comparison.csv",
        "gates.json",
        "plots",
    }

    # a champion whose recipe is the seasonal-naive model: it is re-backtested on this window
    with mlflow.start_run():
        mlflow.log_params({"model": "seasonal_naive", "model_params": "{}"})
        stand_in = LinearRegression().fit(np.eye(2), [0.0, 1.0])
        info = mlflow.sklearn.log_model(
            stand_in, name="model", serialization_format="cloudpickle", pip_requirements=[]
        )
    mlflow.register_model(info.model_uri, settings.tracking.registered_model)
    promote(
        client, settings.tracking.registered_model, "1", reason="test", actor="pytest", force=True
    )

    table = mgr.run_experiment("gbm", FAST, log_to_mlflow=False)
    assert list(table["role"]) == ["candidate", "baseline", "champion v1"]
    champion = table.iloc[2]
    assert champion["model"] == "seasonal_naive"
    assert champion["wape"] == pytest.approx(
        table.iloc[1]["wape"]
    )  # the same recipe as the baseline
