"""The reference profile travels with every registered version: the real stages on small
generator data, MLflow on a temporary SQLite store."""

from pathlib import Path

import mlflow
import pytest

from freightml.config import Settings
from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.domain import MODEL_NAME
from freightml.monitoring.config import load_monitoring_config
from freightml.monitoring.profile import (
    PREDICTION,
    PROFILE_FILE,
    TARGET,
    ReferenceProfile,
    load_version_profile,
)
from freightml.stages.evaluate import EvaluationResult, evaluate_model
from freightml.stages.features import build_features
from freightml.stages.ingest import ingest_data
from freightml.stages.register import register_model
from freightml.stages.train import train_model
from freightml.stages.validate import validate_data
from freightml.tracking import configure_mlflow

pytestmark = [pytest.mark.integration]
FAST_GBM = {"max_iter": 40, "max_train_rows": 50_000}


def test_registered_version_carries_its_profile(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "small.parquet"
    save_facts(generate("small", seed=42), source)
    s = settings.model_copy(
        update={
            "data": settings.data.model_copy(update={"source_uri": str(source)}),
            "model": settings.model.model_copy(update={"name": "gbm", "params": FAST_GBM}),
        }
    )
    w = tmp_path / "run"
    w.mkdir()
    info = ingest_data(s, w / "facts.parquet")
    validate_data(s, w / "facts.parquet", w / "report.json", w / "report.html")
    build_features(s, w / "facts.parquet", w / "features.parquet")
    train_model(s, w / "features.parquet", w / "model")
    evaluate_model(s, w / "facts.parquet", w / "evaluation")
    registration = register_model(
        s,
        facts_info=info,
        validation_path=w / "report.json",
        model_dir=w / "model",
        evaluation_dir=w / "evaluation",
    )

    client = configure_mlflow(s)
    profile = load_version_profile(client, MODEL_NAME, registration.version)
    # the stored profile is the train stage's half plus the backtest's expectations
    half = ReferenceProfile.load(w / "model" / PROFILE_FILE)
    assert half.expectations == []
    assert profile.model_copy(update={"expectations": []}) == half
    evaluation = EvaluationResult.load_from(w / "evaluation")
    assert profile.expectations == evaluation.expectations
    buckets = load_monitoring_config(s.monitoring_path).bucket_labels()
    overall = {e.horizon_bucket: e for e in profile.expectations if e.segment == "all"}
    assert sorted(overall) == sorted(buckets)
    assert {e.segment.split("=")[0] for e in profile.expectations} == {
        "all",
        "origin_region",
        "cargo_type",
    }
    assert {f.name for f in profile.features} >= {TARGET, PREDICTION, "last_ratio"}
    assert len(profile.series) == info.series
    assert len(profile.model_dump_json()) < 1_000_000

    card = (registration.cards_dir / "model_card.md").read_text()
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
