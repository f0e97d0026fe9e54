"""The training pipeline end to end with kfp.local and MLflow on a temporary SQLite store."""

import json
import re
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model

from freightml.config import Settings
from freightml.data.schema import DEFAULT_WAGON_CAPACITY_T, WAGON_CAPACITY_T
from freightml.data.sources import digest_facts, freshest_window, save_facts
from freightml.data.synthetic import generate
from freightml.domain import CHALLENGER, CHAMPION, MODEL_NAME, SERIES_KEY
from freightml.stages.score import active_facts
from freightml.tracking import champion_version, configure_mlflow
from helpers import cli, run_stages
from pipelines.run import run_local

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
MODEL = MODEL_NAME
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_facts(trained_home) -> tuple[Path, pd.DataFrame]:
    return trained_home.source, trained_home.facts


def _with_source(settings: Settings, source: Path) -> Settings:
    return settings.model_copy(
        update={"data": settings.data.model_copy(update={"source_uri": str(source)})}
    )


def test_pipeline_registers_a_traceable_champion(trained_home, champion_settings) -> None:
    """The session's one kfp.local training run (conftest ``trained_home``), read in a copy
    of its home, then the one kfp.local batch-scoring run."""
    s, result, facts = champion_settings, trained_home.run, trained_home.facts
    path = Path(s.data.source_uri)  # the copy's facts file: the recorded paths follow the copy
    client = configure_mlflow(s)
    assert champion_version(client, MODEL) == "1"
    assert str(client.get_model_version_by_alias(MODEL, CHALLENGER).version) == "1"
    version = client.get_model_version(MODEL, "1")
    run = client.get_run(version.run_id)

    window = freshest_window(facts, s.data.train_window_days)
    assert run.data.params["data_digest"] == digest_facts(window)
    assert run.data.params["data_source"] == str(path)
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == digest_facts(window)[:32]
    assert dataset_input.dataset.source and str(path) in dataset_input.dataset.source
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert re.fullmatch("[0-9a-f]{40}", head)
    assert run.data.tags["freightml.git_commit"] == head
    assert run.data.tags["mlflow.source.git.commit"] == head
    assert version.tags["freightml.git_commit"] == head
    assert len(run.data.tags["freightml.lock_sha256"]) == 64
    assert run.data.tags["freightml.image"] == "local"  # kfp.local, not a Kubernetes pod

    metrics = run.data.metrics
    assert metrics["wape"] <= 0.85 * metrics["wape_baseline"]
    assert any(k.startswith("fold_") for k in metrics), "per-fold metrics"
    assert any(
        k.startswith("h01") or k.startswith("h1_") or k.startswith("h_01") for k in metrics
    ) or any("h28" in k for k in metrics), "per-horizon metrics"
    assert any("cargo_type" in k for k in metrics), "per-segment metrics"

    artifacts = {f.path for f in client.list_artifacts(run.info.run_id, "cards")}
    assert {
        "cards/model_card.md",
        "cards/model_card.html",
        "cards/project_card.md",
        "cards/project_card.html",
    } <= artifacts
    assert client.list_artifacts(run.info.run_id, "validation")
    plots = [f.path for f in client.list_artifacts(run.info.run_id, "evaluation/plots")]
    assert plots and all(p.endswith(".png") for p in plots)

    # the KFP Markdown artifact is the same model card
    [card] = list(result.pipeline_root.glob("register-model/model_card"))
    assert card.read_text().startswith("# Model card: freight-volume version 1")
    assert "promoted to champion" in card.read_text()

    # the registered champion is the model train_model wrote: same forecasts on its example
    [model_dir] = list(result.pipeline_root.glob("train-model/model"))
    example = Model.load(str(model_dir)).load_input_example(str(model_dir))
    champion = mlflow.sklearn.load_model(f"models:/{MODEL}@{CHAMPION}").predict(example)
    trained = mlflow.sklearn.load_model(str(model_dir)).predict(example)
    assert champion.shape == (len(example),) and champion.sum() > 0
    np.testing.assert_array_equal(champion, trained)

    # the selection: one nested run per candidate, the chosen recipe registered with its
    # calibrated intervals, and `models show --json` reporting all of it
    from freightml.models import Portfolio
    from freightml.stages.evaluate import EvaluationResult

    nested = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    evaluation = EvaluationResult.load_from(result.pipeline_root / "evaluate-model" / "evaluation")
    assert {r.data.params["label"] for r in nested} == {c["label"] for c in evaluation.candidates}
    assert [r.data.params["chosen"] for r in nested].count("True") == 1
    assert run.data.params["selection.chosen"] == evaluation.chosen
    served = mlflow.sklearn.load_model(f"models:/{MODEL}@{CHAMPION}")
    assert isinstance(served, Portfolio) and served.interval_table is not None
    assert served.get_params()["label"] == evaluation.chosen
    config = Path(s.home) / "settings.json"
    config.write_text(s.to_json())  # JSON is YAML
    shown = json.loads(cli("models", "show", "1", "--json", "-c", str(config)).stdout)
    assert shown["backtest"]["wape"] == pytest.approx(metrics["wape"])
    assert shown["backtest"]["wape_ratio"] == pytest.approx(metrics["wape_ratio"])
    assert shown["gates"]["passed"] is True and shown["aliases"] == ["challenger", "champion"]
    assert shown["coverage"]["coverage_80"] == pytest.approx(metrics["coverage_80"])
    assert 0.75 <= shown["coverage"]["coverage_80"] <= 0.85
    assert shown["chosen"] == evaluation.chosen and shown["recipe"] == evaluation.recipe
    assert set(shown["segments"]) == {"origin_region", "cargo_type"}
    assert len(shown["candidates"]) == len(evaluation.candidates)
    text = cli("models", "show", "1", "-c", str(config)).stdout
    assert f"chosen candidate: {evaluation.chosen}" in text and "coverage 80%" in text

    # batch scoring: every active series, 1-28 days ahead, into the store with lineage
    run_local(s, "batch_scoring")
    from freightml.store import Store

    store = Store(s.collector_store_url)
    with store.engine.connect() as conn:
        rows = pd.read_sql("select * from forecasts", conn)
    n_active = active_facts(window).groupby(list(SERIES_KEY), observed=True).ngroups
    assert len(rows) == n_active * 28
    assert set(rows["horizon"]) == set(range(1, 29))
    assert set(rows["model_version"].astype(str)) == {"1"} and set(rows["source"]) == {"batch"}
    assert digest_facts(window) in rows["lineage"].iloc[0]
    # wagons by the one rule: rounded tonnes / capacity, at least one for any load
    capacity = rows["cargo_type"].map(WAGON_CAPACITY_T).fillna(DEFAULT_WAGON_CAPACITY_T)
    expected = [
        max(round(t / c), 1) if t > 0 else 0 for t, c in zip(rows["tonnes"], capacity, strict=True)
    ]
    assert rows["wagons"].tolist() == expected
    assert (rows["tonnes"] > 0).any()
    # with the champion's 80% interval
    assert rows[["tonnes_p10", "tonnes_p90"]].notna().all().all()
    assert (rows["tonnes_p10"] <= rows["tonnes_p90"]).all()


def test_planted_fault_fails_at_validate_data(
    settings: Settings, small_facts, tmp_path: Path
) -> None:
    _, facts = small_facts
    bad = facts.copy()
    last = bad["date"].max()
    rows = bad.index[bad["date"] == last][:3]
    bad.loc[rows, "volume_tonnes"] = -5.0
    bad_path = tmp_path / "bad.parquet"
    save_facts(bad, bad_path)
    s = _with_source(settings, bad_path)
    with pytest.raises(RuntimeError, match="validate-data"):
        run_local(s, "training")
    [report] = list(Path(s.local_pipeline_root).resolve().glob("*/validate-data/report"))
    text = report.read_text()
    assert "negative" in text and "volume_tonnes" in text
    assert not list(Path(s.local_pipeline_root).resolve().glob("*/register-model/model_card"))


def test_a_restated_recipe_is_trained_registered_and_scored_with_its_adjustment(
    settings: Settings, tmp_path: Path
) -> None:
    """The recipe a retrain after a level shift runs (the GBM's level_adjustments) goes
    through the training stages with its settings in their JSON form (as the pipeline
    passes them): the run records it, the champion carries it, the training examples and
    batch scoring read the facts restated."""
    from freightml.features.levels import adjustments_of
    from freightml.stages.score import scoring_window

    end = pd.Timestamp(generate("small", seed=5)["date"].max())
    change = (end - pd.Timedelta(days=42)).date()
    facts = generate("small", seed=5, level_shift=(change, 1.6), level_shift_cargo="coal")
    path = tmp_path / "shifted.parquet"
    save_facts(facts, path)
    step = f"cargo_type=coal before {change} x1.6"
    s = _with_source(settings, path)
    s = s.model_copy(
        update={
            "model": s.model.model_copy(
                update={"params": {**s.model.params, "level_adjustments": [step], "max_iter": 40}}
            ),
            # the configured GBM alone: this is about the adjustment, not the selection
            "selection": s.selection.model_copy(update={"enabled": False}),
        }
    )
    run_stages(s, tmp_path / "run")

    client = configure_mlflow(s)
    version = client.get_model_version(MODEL, champion_version(client, MODEL))
    run = client.get_run(version.run_id)
    assert step in run.data.params["model_params"]
    champion = mlflow.sklearn.load_model(f"models:/{MODEL}@{CHAMPION}")
    assert [a.describe() for a in adjustments_of(champion)] == [step]
    # the training examples: coal's targets before the change are restated x1.6
    examples = pd.read_parquet(tmp_path / "run" / "features.parquet")
    examples = examples.loc[examples["y"].notna()].astype({c: str for c in SERIES_KEY})
    raw = facts.rename(columns={"date": "target_date"}).astype({c: str for c in SERIES_KEY})
    merged = examples.merge(raw, on=["target_date", *SERIES_KEY], validate="many_to_one")
    hit = (merged["cargo_type"] == "coal") & (merged["target_date"] < pd.Timestamp(change))
    assert hit.any() and not hit.all()
    np.testing.assert_allclose(merged.loc[hit, "y"], 1.6 * merged.loc[hit, "volume_tonnes"])
    np.testing.assert_allclose(merged.loc[~hit, "y"], merged.loc[~hit, "volume_tonnes"])
    # batch scoring builds its window with the champion's adjustment
    assert scoring_window(s, facts, champion).level_adjustments == adjustments_of(champion)
