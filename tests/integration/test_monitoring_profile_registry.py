"""The reference profile travels with every registered version: the session's kfp.local
training run on small generator data, MLflow on a temporary SQLite store."""

import mlflow
import pytest

from freightml.config import Settings
from freightml.data.sources import freshest_window
from freightml.domain import MODEL_NAME, SERIES_KEY
from freightml.monitoring.config import load_monitoring_config
from freightml.monitoring.profile import (
    PREDICTION,
    PROFILE_FILE,
    TARGET,
    ReferenceProfile,
    load_version_profile,
)
from freightml.stages.evaluate import EvaluationResult
from freightml.tracking import configure_mlflow

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_registered_version_carries_its_profile(trained_home, champion_settings: Settings) -> None:
    """The session's kfp.local training run (conftest ``trained_home``): the train step's
    half of the profile, the evaluate step's expectations, the registered whole."""
    s, w = champion_settings, trained_home.run.pipeline_root
    window = freshest_window(trained_home.facts, s.data.train_window_days)
    series = window.groupby(list(SERIES_KEY), observed=True).ngroups
    client = configure_mlflow(s)
    profile = load_version_profile(client, MODEL_NAME, "1")
    # the stored profile is the train stage's half plus the backtest's expectations
    half = ReferenceProfile.load(w / "train-model" / "model" / PROFILE_FILE)
    assert half.expectations == []
    assert profile.model_copy(update={"expectations": []}) == half
    evaluation = EvaluationResult.load_from(w / "evaluate-model" / "evaluation")
    assert profile.expectations == evaluation.expectations
    buckets = load_monitoring_config(s.monitoring_path).bucket_labels()
    overall = {e.horizon_bucket: e for e in profile.expectations if e.segment == "all"}
    assert sorted(overall) == sorted(buckets)
    assert {e.segment.split("=")[0] for e in profile.expectations} == {
        "all",
        "origin_region",
        "cargo_type",
    }
    assert {f.name for f in profile.features} >= {TARGET, "last_ratio"}
    # predictions are profiled only when the profile can hold the served ones: not for a
    # recipe with a part fitted at the origin (stages.train.reference_profile)
    fitted_at_origin = bool(evaluation.recipe.get("statistical"))
    assert (PREDICTION in {f.name for f in profile.features}) is not fitted_at_origin
    assert len(profile.series) == series
    assert len(profile.model_dump_json()) < 1_000_000

    card = (w / "register-model" / "model_card").read_text()
    assert "### Reference profile" in card
    assert f"| {len(profile.stations):,}, {len(profile.series):,}, " in card
    e = overall["1-7"]
    assert f"| all | 1-7 | {e.wape:.4f} | {100 * e.bias:.1f}% | {e.n:,} |" in card


def test_a_version_without_profile_is_named(settings: Settings) -> None:
    client = configure_mlflow(settings)
    with mlflow.start_run() as run:
        mlflow.log_text("no model here", "model/README.txt")
    client.create_registered_model("old-model")
    client.create_model_version("old-model", f"runs:/{run.info.run_id}/model", run.info.run_id)
    with pytest.raises(LookupError, match=r"old-model v1 has no reference profile"):
        load_version_profile(client, "old-model", "1")
