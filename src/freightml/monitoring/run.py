"""One monitoring run: drift of facts and requests against the champion's reference
profile, realised quality once facts arrive, freshness, and the verdict per segment.

:func:`take_snapshot` computes a :class:`~freightml.monitoring.types.Snapshot`
(:func:`judge_snapshot` gives its verdict); :func:`run_monitoring` also stores it in the
collector's store, writes the JSON and the HTML report and returns where they are.
`freightml monitor run` and the ``monitor_model`` pipeline component call
:func:`run_monitoring`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from freightml.features.build import LOOKBACK_DAYS
from freightml.monitoring.config import MonitoringConfig, load_monitoring_config
from freightml.monitoring.profile import load_version_profile
from freightml.monitoring.snapshots import SnapshotStore
from freightml.monitoring.types import (
    ALL,
    Alert,
    DriftReport,
    Freshness,
    QualityReport,
    SegmentStatus,
    Snapshot,
    Status,
    worst,
)
from freightml.monitoring.window_drift import drift_of_facts, drift_of_requests
from freightml.store import Store
from freightml.timing import timed

if TYPE_CHECKING:
    from freightml.config import Settings
    from freightml.evaluation import Methodology
    from freightml.monitoring.profile import ReferenceProfile
    from freightml.store import Store

log = logging.getLogger("freightml")
# facts read before the window: the features of a window day look back this far (the
# year-ago features need 364 days plus a few)


@dataclass(frozen=True)
class MonitoringRun:
    """What `freightml monitor run` produced."""

    snapshot: Snapshot
    json_path: Path
    report_path: Path
    stored: bool  # False when a snapshot with the same id was already stored


def requests_frame(
    store: Store,
    start: date,
    end: date,
    regions: pd.DataFrame,
    *,
    environment: str | None = None,
) -> pd.DataFrame:
    """The online forecast rows of requests made in ``[start, end]`` (forecast origin the
    day before; of one serving ``environment`` if given), with the origin region of their
    station (NA for a station the facts never named)."""
    rows = store.forecasts.online_between(
        start - timedelta(days=1), end - timedelta(days=1), environment=environment
    )
    return rows.merge(regions, on="origin_station", how="left")


def station_regions(facts: pd.DataFrame) -> pd.DataFrame:
    """One row per origin station with its region (the most recent one named)."""
    latest = facts.sort_values("date").drop_duplicates("origin_station", keep="last")
    return latest[["origin_station", "origin_region"]].reset_index(drop=True)


def judge_snapshot(
    drift: list[DriftReport],
    quality: QualityReport | None,
    freshness: Freshness,
    *,
    requests: int,
    rolling_days: int = 7,
) -> tuple[Status, list[SegmentStatus], list[Alert]]:
    """The verdict: a segment is amber when it drifted, red when its realised quality is
    degraded; stale facts make the whole population red; a window without requests or
    facts raises a ``no_data`` alert. Returns the overall status, the status of every
    judged segment (``all`` first) and the alerts."""
    reasons: dict[str, list[tuple[Status, str]]] = {ALL: []}
    alerts: list[Alert] = []
    for report in drift:
        for result in report.results:
            reasons.setdefault(result.segment, [])
        for segment in report.drifted_segments:
            # what decides first (the target, the forecasts), then the inputs that explain
            roles = {
                r.feature: r.role for r in report.results if r.segment == segment and r.drifted
            }
            drifted = sorted(roles, key=lambda f: (roles[f] not in ("target", "prediction"), f))
            text = f"{report.source} drift in {', '.join(drifted[:5])}" + (
                f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
            )
            reasons[segment].append(("amber", text))
            alerts.append(Alert(kind="drift", segment=segment, message=text))
    if quality is not None:
        for cell in quality.cells:
            reasons.setdefault(cell.segment, [])
        for segment in quality.degraded_segments:
            days = [d for d in quality.daily if d.segment == segment and d.rolling_wape is not None]
            over = [d for d in days if d.exceeds]
            text = (
                f"realised WAPE over the expected by more than the tolerance on {len(over)} "
                f"of {len(days)} days"
            )
            if over:
                peak = max(over, key=lambda d: d.rolling_wape_low or 0.0)
                text += (
                    f" (worst {peak.date}: {rolling_days}-day WAPE {peak.rolling_wape:.2f}, "
                    f"at least {peak.rolling_wape_low:.2f}, "
                    f"expected {peak.rolling_expected_wape:.2f})"
                )
            reasons.setdefault(segment, []).append(("red", text))
            alerts.append(Alert(kind="quality", segment=segment, message=text))
        for cov in quality.coverage:
            if cov.drifted and cov.coverage_80 is not None:
                text = (
                    f"the 80% interval covered {cov.coverage_80:.0%} of {cov.n} mature "
                    "actuals: the intervals no longer mean what the backtest calibrated"
                )
                reasons.setdefault(cov.segment, []).append(("amber", text))
                alerts.append(Alert(kind="coverage", segment=cov.segment, message=text))
    if freshness.stale:
        age = "unknown" if freshness.facts_age_days is None else f"{freshness.facts_age_days:g}"
        text = (
            f"facts are stale: newest fact {age} days old, "
            f"{freshness.stale_series_share:.0%} of series without recent facts"
        )
        reasons[ALL].append(("red", text))
        alerts.append(Alert(kind="staleness", segment=ALL, message=text))
    facts_rows = sum(r.rows for r in drift if r.source == "facts")
    if requests == 0:
        alerts.append(Alert(kind="no_data", segment=ALL, message="no requests in the window"))
    if facts_rows == 0:
        alerts.append(Alert(kind="no_data", segment=ALL, message="no facts in the window"))
    segments = [
        SegmentStatus(
            segment=name,
            status=worst(*(status for status, _ in found)),
            reasons=[text for _, text in found],
        )
        for name, found in sorted(reasons.items(), key=lambda kv: (kv[0] != ALL, kv[0]))
    ]
    overall = worst(*(s.status for s in segments))
    return overall, segments, alerts


def take_snapshot(
    store: Store,
    profile: ReferenceProfile,
    *,
    model: Any,
    model_name: str,
    model_version: str | None,
    config: MonitoringConfig,
    methodology: Methodology,
    as_of: date,
    window_days: int,
    environment: str | None = None,
) -> Snapshot:
    """Compute one snapshot from the store's facts and forecasts against ``profile``.

    The window is the ``window_days`` days ending on ``as_of`` (inclusive). With
    ``environment`` the requests and forecasts judged are that serving environment's (the
    facts are the network's, shared by every environment)."""
    from freightml.monitoring.quality import quality_from_store  # noqa: PLC0415

    start = as_of - timedelta(days=window_days - 1)
    facts = store.facts.frame(start - timedelta(days=LOOKBACK_DAYS), as_of)
    log.info("monitoring %s: %d facts rows read", as_of, len(facts))
    in_window = len(facts) > 0 and (pd.to_datetime(facts["date"]) >= pd.Timestamp(start)).any()
    drift = [
        drift_of_facts(
            profile, facts, window_start=start, window_end=as_of, config=config, model=model
        )
        if in_window
        # no facts in the window: nothing to judge; freshness says why (stale, no_data)
        else DriftReport(
            source="facts",
            window_start=start,
            window_end=as_of,
            rows=0,
            results=[],
            drifted_segments=[],
            unsupported_segments=[],
        )
    ]
    requests = requests_frame(store, start, as_of, station_regions(facts), environment=environment)
    if len(requests):
        drift.append(
            drift_of_requests(
                profile, requests, window_start=start, window_end=as_of, config=config
            )
        )
    quality, freshness = quality_from_store(
        store,
        model_name=model_name,
        expectations=profile.expectations,
        config=config,
        methodology=methodology,
        as_of=as_of,
        window_days=window_days,
        environment=environment,
    )
    status, segments, alerts = judge_snapshot(
        drift,
        quality,
        freshness,
        requests=len(requests),
        rolling_days=config.quality.rolling_days,
    )
    return Snapshot(
        id=str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        as_of=as_of,
        window_days=window_days,
        model_name=model_name,
        model_version=model_version,
        status=status,
        segments=segments,
        alerts=alerts,
        drift=drift,
        quality=quality,
        freshness=freshness,
        thresholds=config.model_dump(mode="json"),
        environment=environment,
    )


def run_monitoring(
    settings: Settings,
    *,
    as_of: date | None = None,
    window_days: int | None = None,
    out_dir: Path | None = None,
    environment: str | None = None,
) -> MonitoringRun:
    """Monitor the champion: compute the snapshot, store it, write JSON and HTML.

    ``as_of`` defaults to today (UTC), ``window_days`` to the config's; files go to
    ``out_dir`` (default ``<home>/monitoring/<as_of>-<id>``); ``environment`` judges one
    serving environment's requests and forecasts (default: all together)."""
    import mlflow.sklearn

    from freightml.evaluation import load_methodology  # noqa: PLC0415
    from freightml.monitoring.report import render_report  # noqa: PLC0415
    from freightml.tracking import champion_version, configure_mlflow  # noqa: PLC0415

    config = load_monitoring_config(settings.monitoring_path)
    methodology = load_methodology(settings.methodology_path)
    as_of = as_of or datetime.now(UTC).date()
    window_days = window_days or config.window_days
    client = configure_mlflow(settings)
    name = settings.tracking.registered_model
    version = champion_version(client, name)
    if version is None:
        raise RuntimeError(f"no champion of {name!r} to monitor: run the training pipeline first")
    with timed("monitor.profile", kind="tracking"):
        profile = load_version_profile(client, name, version)
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    store = Store(settings.collector_store_url)
    try:
        with timed("monitor.snapshot"):
            snapshot = take_snapshot(
                store,
                profile,
                model=model,
                model_name=name,
                model_version=version,
                config=config,
                methodology=methodology,
                as_of=as_of,
                window_days=window_days,
                environment=environment,
            )
        stored = SnapshotStore(store).save(snapshot)
    finally:
        store.close()
    folder = out_dir or settings.home / "monitoring" / f"{as_of}-{snapshot.id[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "snapshot.json"
    json_path.write_text(snapshot.model_dump_json(indent=2))
    with timed("monitor.report"):
        report_path = render_report(snapshot, folder / "report.html")
    return MonitoringRun(snapshot, json_path, report_path, stored)
