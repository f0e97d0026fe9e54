"""Decide: whether the champion needs retraining, by the retraining policy, from the
monitoring snapshot of the same run (every reason with its evidence)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from freightml.config import Settings
from freightml.stages.result import StageResult


class DecisionInfo(StageResult):
    retrain: bool
    as_of: str
    snapshot_id: str | None
    decision: dict[str, Any]


def decide_retraining(
    settings: Settings,
    *,
    as_of: str = "",
    snapshot_path: str | Path | None = None,
    decision_path: str | Path,
) -> DecisionInfo:
    """Run :func:`freightml.retraining.decision.decide` on the monitoring snapshot at
    ``snapshot_path`` (None: the decision reads the latest from the store) and write the
    decision as JSON to ``decision_path``.

    ``as_of`` is an ISO date; empty means the snapshot's own as-of date, so the monitor and
    the decision of one pipeline run judge the same day even across midnight (and today,
    UTC, without a snapshot)."""
    from freightml.monitoring.types import Snapshot
    from freightml.retraining.decision import decide

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
    decision = decide(settings, as_of=day, snapshot=snapshot)
    payload = decision.as_dict()
    target = Path(decision_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2, default=str))
    return DecisionInfo(
        retrain=bool(decision.retrain),
        as_of=day.isoformat(),
        snapshot_id=snapshot.id if snapshot is not None else None,
        decision=json.loads(json.dumps(payload, default=str)),
    )
