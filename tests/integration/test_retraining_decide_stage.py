"""The retraining pipeline's decide and record steps (freightml.stages.decide) over a real
collector store on SQLite and MLflow on SQLite: the decision is recorded, a retrain claims
its key once, the training steps get the decision's settings, and the outcome is stored."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from freightml.config import Settings
from freightml.monitoring.snapshots import SnapshotStore
from freightml.retraining.decisions import DecisionStore
from freightml.stages.decide import close_retraining, decide_retraining, record_retraining
from freightml.store import Store
from helpers import sample_snapshot

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2025, 3, 31)  # the last day of the small synthetic facts


@pytest.fixture
def stage_settings(settings: Settings, tmp_path: Path) -> Settings:
    collector = settings.collector.model_copy(
        update={"store_url": f"sqlite:///{tmp_path / 'store.db'}"}
    )
    data = settings.data.model_copy(update={"synthetic_size": "small"})
    return settings.model_copy(
        update={
            "collector": collector,
            "data": data,
            "retraining_path": REPO / "configs" / "retraining.yaml",
        }
    )


@pytest.fixture
def snapshot_file(stage_settings: Settings, tmp_path: Path) -> Path:
    """The monitor step's output: the snapshot as a file, and stored in the store."""
    snapshot = sample_snapshot(model_name=stage_settings.tracking.registered_model, as_of=AS_OF)
    store = Store(stage_settings.collector_store_url).create_all()
    try:
        SnapshotStore(store).save(snapshot)
    finally:
        store.close()
    path = tmp_path / "monitor" / "snapshot"
    path.parent.mkdir(parents=True)
    path.write_text(snapshot.model_dump_json())
    return path


def test_decide_records_claims_once_and_hands_over_settings(
    stage_settings: Settings, snapshot_file: Path, tmp_path: Path
) -> None:
    snapshot_day = AS_OF
    # no champion registered yet: the policy asks for the first one
    info, train = decide_retraining(
        stage_settings, snapshot_path=snapshot_file, decision_path=tmp_path / "d1" / "decision"
    )
    assert info.retrain and info.status == "started"
    assert info.as_of == snapshot_day.isoformat()  # empty as_of: the snapshot's day
    assert info.trigger == "no_champion"
    written = json.loads((tmp_path / "d1" / "decision").read_text())
    assert written["id"] == info.decision_id and written["retrain"] is True
    # the training steps read facts up to the as-of date and carry the decision's tags
    assert train.data.end_date == snapshot_day
    assert train.tracking.run_tags["retrain.decision_id"] == info.decision_id
    assert train.tracking.run_tags["retrain.trigger"] == "no_champion"
    # the policy's shift-aware window rule chose the window over the facts the run reads
    assert train.tracking.run_tags["retrain.window.as_of"] == snapshot_day.isoformat()
    # (the small synthetic facts have no level shift: no change point, the full window)
    assert train.tracking.run_tags["retrain.window.rule"] == "full_window"

    store = Store(stage_settings.collector_store_url)
    try:
        assert DecisionStore(store).get(info.decision_id)["status"] == "started"
    finally:
        store.close()

    # the same cause the next day while that run is in flight: recorded, nothing trains
    again, untouched = decide_retraining(
        stage_settings,
        as_of="2025-04-01",
        snapshot_path=snapshot_file,
        decision_path=tmp_path / "d2" / "decision",
    )
    assert not again.retrain and again.status == "skipped"
    assert again.as_of == "2025-04-01"  # an explicit as-of date wins over the snapshot's
    assert untouched == stage_settings

    message = record_retraining(
        stage_settings, decision_id=info.decision_id, model_version="1", promoted=True
    )
    assert message == "version 1 registered, promoted to champion"
    store = Store(stage_settings.collector_store_url)
    try:
        row = DecisionStore(store).get(info.decision_id)
        assert row["status"] == "finished" and row["model_version"] == "1"
        assert DecisionStore(store).get(again.decision_id)["status"] == "skipped"
    finally:
        store.close()


def test_record_refuses_an_unknown_decision(stage_settings: Settings, snapshot_file: Path) -> None:
    with pytest.raises(ValueError, match="retraining decision nope is not in the store"):
        record_retraining(stage_settings, decision_id="nope", model_version="1", promoted=False)


def test_decide_names_a_missing_snapshot(stage_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="monitoring snapshot .*missing"):
        decide_retraining(
            stage_settings,
            snapshot_path=tmp_path / "missing",
            decision_path=tmp_path / "decision",
        )


def _row(settings: Settings, decision_id: str) -> dict:
    store = Store(settings.collector_store_url)
    try:
        row = DecisionStore(store).get(decision_id)
    finally:
        store.close()
    assert row is not None
    return row


def test_close_fails_a_decision_a_successful_run_left_in_flight(
    stage_settings: Settings, snapshot_file: Path, tmp_path: Path
) -> None:
    """A run that succeeded but never recorded its decision's outcome (its training steps
    were skipped) must not leave the decision claiming its key."""
    info, _ = decide_retraining(
        stage_settings, snapshot_path=snapshot_file, decision_path=tmp_path / "d", run_id="run-9"
    )
    said = close_retraining(stage_settings, run_id="run-9", state="SUCCEEDED")
    assert said.endswith(f"marked failed: {info.decision_id}")
    row = _row(stage_settings, info.decision_id)
    assert row["status"] == "failed"
    assert row["message"] == "pipeline run run-9 succeeded without recording the outcome"


def test_close_fails_a_failed_runs_decision_and_frees_its_key(
    stage_settings: Settings, snapshot_file: Path, tmp_path: Path
) -> None:
    info, _ = decide_retraining(
        stage_settings,
        snapshot_path=snapshot_file,
        decision_path=tmp_path / "d1" / "decision",
        run_id="run-1",
    )
    assert info.status == "started"
    assert _row(stage_settings, info.decision_id)["run_id"] == "run-1"

    # another run's end touches nothing
    assert "no decision of it was in flight" in close_retraining(
        stage_settings, run_id="run-0", state="FAILED"
    )
    assert _row(stage_settings, info.decision_id)["status"] == "started"

    said = close_retraining(
        stage_settings, run_id="run-1", state="FAILED", error="train-model: out of memory"
    )
    assert said.endswith(f"marked failed: {info.decision_id}")
    row = _row(stage_settings, info.decision_id)
    assert row["status"] == "failed"
    assert row["message"] == "pipeline run run-1 ended FAILED: train-model: out of memory"

    # the key and the in-flight slot are free: the same cause starts the next run at once
    again, _ = decide_retraining(
        stage_settings,
        snapshot_path=snapshot_file,
        decision_path=tmp_path / "d2" / "decision",
        run_id="run-2",
    )
    assert again.key == info.key and again.status == "started"
    # a run that succeeded recorded its outcome: nothing left to close
    record_retraining(
        stage_settings, decision_id=again.decision_id, model_version="2", promoted=True
    )
    said = close_retraining(stage_settings, run_id="run-2", state="SUCCEEDED")
    assert said == "run run-2 ended SUCCEEDED; no decision of it was in flight"
    assert _row(stage_settings, again.decision_id)["status"] == "finished"
    with pytest.raises(ValueError, match="run_id is empty"):
        close_retraining(stage_settings, run_id="", state="FAILED")


@pytest.mark.filterwarnings("ignore:.*non-Python base image.*")  # locally it runs in this venv
@pytest.mark.slow
def test_exit_step_closes_the_decision_of_a_failed_run_under_kfp_local(
    stage_settings: Settings, snapshot_file: Path, tmp_path: Path
) -> None:
    """The retraining pipeline's exit component, run by kfp.local as the exit task of a
    failing step: it gets the run's final status and the same run id the step stored."""
    from kfp import local
    from kfp_exit_step import exit_step_pipeline

    from components.close_retraining import close_retraining as close_stage

    info, _ = decide_retraining(
        stage_settings, snapshot_path=snapshot_file, decision_path=tmp_path / "decision"
    )
    assert info.status == "started"

    pipeline = exit_step_pipeline(close_stage, stage_settings.pipeline.base_image)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=False,
    )
    pipeline(
        config=stage_settings.to_json(),
        store_url=stage_settings.collector_store_url,
        decision_id=info.decision_id,
    )
    row = _row(stage_settings, info.decision_id)
    assert row["status"] == "failed"
    assert row["run_id"] and row["message"].startswith(f"pipeline run {row['run_id']} ended FAILED")
