"""Monitor: one monitoring snapshot of the champion (drift, realised quality, freshness),
stored in the collector's store, with its JSON and HTML report."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from freightml.config import Settings
from freightml.monitoring.run import run_monitoring
from freightml.stages.result import StageResult


class MonitorInfo(StageResult):
    snapshot_id: str
    as_of: str
    window_days: int
    model_version: str | None
    status: str
    alerts: int
    drifted_segments: list[str]
    degraded_segments: list[str]


def monitor_model(
    settings: Settings,
    *,
    as_of: str = "",
    window_days: int = 0,
    snapshot_path: str | Path,
    report_path: str | Path,
) -> MonitorInfo:
    """Run :func:`freightml.monitoring.run.run_monitoring` and copy its JSON and HTML to
    ``snapshot_path`` and ``report_path`` (e.g. the pipeline's output artifacts).

    ``as_of`` is an ISO date or empty for today; ``window_days`` 0 means the config's."""

    result = run_monitoring(
        settings,
        as_of=date.fromisoformat(as_of) if as_of else None,
        window_days=window_days or None,
    )
    for src, dst in ((result.json_path, snapshot_path), (result.report_path, report_path)):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    snapshot = result.snapshot
    drifted = sorted({s for report in snapshot.drift for s in report.drifted_segments})
    return MonitorInfo(
        snapshot_id=snapshot.id,
        as_of=snapshot.as_of.isoformat(),
        window_days=snapshot.window_days,
        model_version=snapshot.model_version,
        status=snapshot.status,
        alerts=len(snapshot.alerts),
        drifted_segments=drifted,
        degraded_segments=list(snapshot.quality.degraded_segments) if snapshot.quality else [],
    )
