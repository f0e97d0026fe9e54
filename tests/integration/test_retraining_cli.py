"""`freightml retrain check` and `retrain run` through the real parser, end to end: the
training pipeline on kfp.local with MLflow on SQLite, the decision recorded in the
collector's store and on the training run, a second run deduplicated, a failed submission
recorded as failed; then, in the same world, `freightml pipeline run retraining` (the
suite's one kfp.local run of that pipeline) retrains the aged champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.domain import MODEL_NAME
from freightml.retraining.decisions import DecisionStore
from freightml.store import Store
from freightml.tracking import champion_version
from helpers import cli, free_port, words

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
AS_OF = "2025-02-24"  # 35 days before the small data set ends: data.end_date cuts there
END = "2025-03-31"  # the last day of the small data set


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    facts = tmp_path / "small.parquet"
    save_facts(generate("small", seed=3), facts)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = f"sqlite:///{tmp_path / 'collector.db'}"
    config = tmp_path / "freightml.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "methodology_path": str(REPO / "configs" / "methodology.yaml"),
                "retraining_path": str(REPO / "configs" / "retraining.yaml"),
                "data": {"source_uri": str(facts)},
                "model": {"params": {"max_iter": 60}},
                "tracking": {"uri": tracking},
                "collector": {"store_url": store},
            }
        )
    )
    return {
        "config": str(config),
        "tracking": tracking,
        "store": store,
        "home": tmp_path / "home",
        "facts": facts,
    }


def _rows(world: dict[str, Any]) -> list[dict[str, Any]]:
    store = Store(world["store"])
    try:
        return DecisionStore(store).list(limit=50)
    finally:
        store.close()


def test_check_run_force_dedupe_and_the_retraining_pipeline(world: dict[str, Any]) -> None:
    config = world["config"]
    # no champion yet: a retrain is needed (exit 10), and check records nothing
    result = cli("retrain", "check", "--as-of", AS_OF, "--config", config, code=10)
    out = words(result.output)
    assert "no_champion" in out and "decision: RETRAIN: no_champion" in out
    assert f"key: {MODEL_NAME}:no_champion:{AS_OF}" in out
    assert _rows(world) == []

    # usage errors: --force needs --reason, --reason needs --force
    assert "--force needs --reason" in cli("retrain", "run", "--force", "-c", config, code=2).output
    result = cli("retrain", "run", "--reason", "why", "-c", config, code=2)
    assert "--reason goes with --force" in result.output

    result = cli(
        "retrain",
        "run",
        "--as-of",
        AS_OF,
        "--force",
        "--reason",
        "first model | from the CLI test",
        "--config",
        config,
    )
    assert "retrained: version 1" in words(result.output)
    output = result.output
    [row] = _rows(world)
    assert row["status"] == "finished" and row["model_version"] == "1"
    assert row["trigger"] == "manual" and row["forced"] is True
    assert row["key"] == f"{MODEL_NAME}:manual:{AS_OF}"
    assert "promoted to champion" in row["message"]

    client = MlflowClient(world["tracking"])
    assert champion_version(client, MODEL_NAME) == "1"  # the register step promoted it
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.run_id == row["run_id"]
    run = client.get_run(version.run_id)
    assert run.data.params["data_end"] == AS_OF  # as-of is the end of the training data
    tags = run.data.tags
    assert tags["retrain.trigger"] == "manual"
    assert tags["retrain.reason"] == "forced: first model | from the CLI test"
    assert tags["retrain.key"] == row["key"] and tags["retrain.decision_id"] == row["id"]
    assert version.tags["retrain.decision_id"] == row["id"]
    # the policy's training window rule ran on the training facts and is recorded
    # no change point in seed 3's facts before AS_OF: the rule keeps the full window
    assert tags["retrain.window.rule"] == "full_window", tags
    assert tags["retrain.window.cause"] == "manual" and tags["retrain.window.as_of"] == AS_OF
    assert "training window: " in words(output)
    card = (world["home"] / "cards" / f"{MODEL_NAME}-v1" / "model_card.md").read_text()
    assert f"Trained by `freightml retrain run` (as of {AS_OF}): forced: first model" in card

    # the same forced cause on the same day: deduplicated, nothing trained
    result = cli("retrain", "run", "--as-of", AS_OF, "--force", "--reason", "again", "-c", config)
    assert "nothing started: blocked by dedupe" in words(result.output)
    rows = _rows(world)
    assert [r["status"] for r in rows] == ["skipped", "finished"]
    assert f"key {MODEL_NAME}:manual:{AS_OF} already finished" in words(rows[0]["message"])
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1

    # a champion trained up to AS_OF, no facts after it: no trigger, exit 0, nothing started
    result = cli("retrain", "check", "--as-of", AS_OF, "-c", config)
    assert "decision: no retrain: no trigger fired" in words(result.output)
    result = cli("retrain", "run", "--as-of", AS_OF, "-c", config)
    assert "nothing started (use --force --reason" in words(result.output)
    assert _rows(world)[0]["status"] == "skipped"

    # a submission that cannot reach Kubeflow Pipelines fails and is recorded as failed
    host = f"http://127.0.0.1:{free_port()}"
    result = cli(
        "retrain",
        "run",
        "--as-of",
        "2025-02-25",
        "--force",
        "--reason",
        "cluster",
        "--host",
        host,
        "-c",
        config,
        code=1,
    )
    assert "cannot submit to the Kubeflow Pipelines API" in words(result.output)
    newest = _rows(world)[0]
    assert newest["status"] == "failed" and newest["key"] == f"{MODEL_NAME}:manual:2025-02-25"
    assert newest["message"]

    # `freightml pipeline run retraining` on the embedded default (its one kfp.local run):
    # monitor, decide, and, because the decision says retrain, the training steps inside
    # the condition (kfp.local skipped them silently while the condition read a named
    # output), then the outcome recorded with the decision. The facts the decision counts
    # arrive in the collector's store first.
    cli("facts", "ingest", str(world["facts"]), "-c", config)
    cli("pipeline", "run", "retraining", "--as-of", END, "-c", config)
    newest = _rows(world)[0]
    assert newest["as_of"].isoformat() == END
    # v1 is 35 days old with 35 days of new facts: the age trigger (30 days) is judged first
    assert newest["trigger"] == "champion_age", newest
    # the training steps ran inside the condition and the record step closed the decision
    assert (newest["status"], newest["model_version"]) == ("finished", "2"), newest
    assert newest["run_id"]  # the pipeline run's id, stored by the decide step
    run = client.get_run(client.get_model_version(MODEL_NAME, "2").run_id)
    assert run.data.tags["retrain.decision_id"] == newest["id"]
    assert run.data.params["data_end"] == END


def test_a_bad_policy_is_a_configuration_error(tmp_path: Path) -> None:
    policy = tmp_path / "retraining.yaml"
    policy.write_text("schedule:\n  cron: '0 3 * * 1'\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "retraining_path": str(policy),
                "collector": {"store_url": f"sqlite:///{tmp_path / 's.db'}"},
            }
        )
    )
    result = cli("retrain", "check", "-c", str(config), code=2)
    assert "schedule.cron" in words(result.output) and "has 5 fields" in words(result.output)
