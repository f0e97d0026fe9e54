"""MLExperimentManager.search: Optuna over the methodology's backtest, logged to MLflow."""

from datetime import date
from pathlib import Path

import mlflow
import pytest

from freightml import MLExperimentManager
from freightml.config import Settings, load_settings
from freightml.data.synthetic import generate
from freightml.tracking import configure_mlflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SPACE = {"learning_rate": (0.03, 0.3, "log"), "max_leaf_nodes": (7, 31)}
FIXED = {"max_iter": 30, "max_train_rows": 20_000}


def test_search_logs_nested_trials_and_returns_the_best(settings: Settings, tmp_path: Path):
    facts = generate("small", seed=3, n_series=12, start=date(2024, 6, 1))
    mgr = MLExperimentManager(settings)
    found = mgr.search("gbm", n_trials=3, space=SPACE, fixed=FIXED, data=facts, seed=1)

    assert len(found.trials) == 3
    best = found.trials.loc[found.trials["wape"].idxmin()]
    assert found.best_wape == pytest.approx(best["wape"])
    assert found.best_params["learning_rate"] == pytest.approx(best["learning_rate"])
    assert found.best_params["max_leaf_nodes"] == best["max_leaf_nodes"]
    assert found.best_params["max_iter"] == 30  # fixed
    assert found.best_params["min_samples_leaf"] == settings.model.params["min_samples_leaf"]
    assert 0.03 <= found.trials["learning_rate"].min() <= found.trials["learning_rate"].max() <= 0.3

    configure_mlflow(settings)
    [parent] = mlflow.search_runs(
        filter_string="tags.`freightml.kind` = 'search'", output_format="list"
    )
    assert parent.info.run_id == found.run_id
    assert parent.data.metrics["best_wape"] == pytest.approx(found.best_wape)
    trials = mlflow.search_runs(
        filter_string="tags.`freightml.kind` = 'search_trial'", output_format="list"
    )
    assert len(trials) == 3
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {found.run_id}
    assert sorted(t.data.metrics["wape"] for t in trials) == pytest.approx(
        sorted(found.trials["wape"])
    )

    # the best parameters are the next training configuration
    tuned = load_settings(found.write_settings(tmp_path / "tuned.yaml"))
    assert tuned.model.name == "gbm"
    assert tuned.model.params == found.best_params
    logged = mlflow.artifacts.load_text(f"runs:/{found.run_id}/best_params.yaml")
    assert logged == found.to_yaml()


def test_search_rejects_bad_spaces(settings: Settings) -> None:
    mgr = MLExperimentManager(settings)
    facts = generate("small", seed=3, n_series=4, start=date(2024, 6, 1))
    with pytest.raises(ValueError, match="depth"):
        mgr.search("gbm", 1, space={"depth": (1, 5)}, data=facts, log_to_mlflow=False)
    with pytest.raises(ValueError, match="expected"):
        mgr.search("gbm", 1, space={"max_iter": 50}, data=facts, log_to_mlflow=False)
    with pytest.raises(ValueError, match="no search space"):
        mgr.search("seasonal_naive", 1, data=facts, log_to_mlflow=False)
