"""Decide: whether the champion needs retraining, by the retraining policy, on the
monitoring snapshot of the same pipeline run; the decision is recorded in the store and,
when it says retrain, hands the training steps their settings (facts up to the as-of date,
the decision's ``retrain.*`` tags)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from freightml.config import Settings
from freightml.monitoring.types import Snapshot
from freightml.retraining.act import fail_retrain, finish_retrain, shift_aware_window, start_retrain
from freightml.retraining.decisions import DecisionStore
from freightml.retraining.evidence import decide_now
from freightml.retraining.policy import load_policy
from freightml.stages.result import StageResult
from freightml.store import Store


class DecisionInfo(StageResult):
    retrain: bool  # the training steps run: the decision says retrain and its key was free
    status: str  # how acting on it ended here: skipped | started
    as_of: str
    decision_id: str
    trigger: str | None
    key: str
    reason: str
    snapshot_id: str | None


def decide_retraining(
    settings: Settings,
    *,
    as_of: str = "",
    snapshot_path: str | Path | None = None,
    decision_path: str | Path,
    run_id: str = "",
) -> tuple[DecisionInfo, Settings]:
    """Decide (:func:`freightml.retraining.evidence.decide_now`), record the decision and
    claim its run (:func:`freightml.retraining.act.start_retrain`, with the policy's shift-aware
    training window); write the decision as JSON to ``decision_path``. Returns the result
    and the settings for the training steps (``settings`` itself when nothing trains).

    ``as_of`` is an ISO date; empty means the as-of date of the snapshot at
    ``snapshot_path`` (the monitor's of the same run, so both judge the same day even
    across midnight), else today (UTC). ``run_id`` (the pipeline run's id) is stored with
    a started decision, so the run's exit step (:func:`close_retraining`) finds it."""

    snapshot = None
    if snapshot_path is not None:
        source = Path(snapshot_path)
        if not source.is_file():
            raise FileNotFoundError(f"monitoring snapshot {source} does not exist")
        snapshot = Snapshot.model_validate_json(source.read_text())
    if as_of:
        day = date.fromisoformat(as_of)
    elif snapshot is not None:
        day = snapshot.as_of
    else:
        day = datetime.now(UTC).date()

    policy = load_policy(settings.retraining_path)
    store = Store(settings.collector_store_url).create_all()
    try:
        decision = decide_now(settings, store, policy, as_of=day)
        began = start_retrain(
            settings,
            store,
            policy,
            decision,
            adjust=shift_aware_window(policy),
            run_id=run_id or None,
        )
    finally:
        store.close()
    target = Path(decision_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(decision.model_dump_json(indent=2))
    info = DecisionInfo(
        retrain=began.status == "started",
        status=began.status,
        as_of=day.isoformat(),
        decision_id=decision.id,
        trigger=decision.trigger,
        key=decision.key,
        reason=began.message or decision.reason,
        snapshot_id=snapshot.id if snapshot is not None else None,
    )
    return info, began.settings if began.settings is not None else settings


def record_retraining(
    settings: Settings, *, decision_id: str, model_version: str, promoted: bool
) -> str:
    """Mark the decision the training steps ran for as finished, with the version they
    registered and whether it became champion (the gates decide); returns the message."""

    champion = "promoted to champion" if promoted else "not promoted (the gates kept the champion)"
    message = f"version {model_version} registered, {champion}"
    store = Store(settings.collector_store_url).create_all()
    try:
        if DecisionStore(store).get(decision_id) is None:
            raise ValueError(f"retraining decision {decision_id} is not in the store")
        finish_retrain(store, decision_id, version=model_version, message=message)
    finally:
        store.close()
    return message


def close_retraining(settings: Settings, *, run_id: str, state: str, error: str = "") -> str:
    """The retraining pipeline's exit step: mark ``failed`` the decisions that the run
    ``run_id`` started and left in flight, which frees their idempotency key and the
    in-flight slot for the next run (instead of waiting
    ``guards.in_flight_expiry_hours``). A run that ended in any ``state`` but
    ``SUCCEEDED`` failed with ``error``; a run that succeeded and still left its decision in
    flight never ran or recorded its training steps. Returns what it did, in words."""

    if not run_id:
        raise ValueError("close_retraining needs the pipeline run's id (run_id is empty)")
    if state == "SUCCEEDED":
        reason = f"pipeline run {run_id} succeeded without recording the outcome"
    else:
        reason = f"pipeline run {run_id} ended {state}" + (f": {error}" if error else "")
    store = Store(settings.collector_store_url).create_all()
    try:
        left = DecisionStore(store).in_flight_for_run(run_id)
        for decision_id in left:
            fail_retrain(store, decision_id, reason)
    finally:
        store.close()
    if not left:
        return f"run {run_id} ended {state}; no decision of it was in flight"
    return f"{reason}; marked failed: {', '.join(left)}"
