"""The retraining pipeline's decide and record steps (freightml.stages.decide) over a real
collector store on SQLite and MLflow on SQLite: the decision is recorded, a retrain claims
its key once, the training steps get the decision's settings, and the outcome is stored."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from freightml.collector.store import Store
from freightml.config import Settings
from freightml.stages.decide import decide_retraining, record_retraining
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
        store.monitoring.save(snapshot)
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
    assert train.tracking.run_tags["retrain.window.rule"] in {
        "full_window",
        "post_change",
        "restated",
        "down_weight",
    }

    store = Store(stage_settings.collector_store_url)
    try:
        assert store.retraining.get(info.decision_id)["status"] == "started"
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
        row = store.retraining.get(info.decision_id)
        assert row["status"] == "finished" and row["model_version"] == "1"
        assert store.retraining.get(again.decision_id)["status"] == "skipped"
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
