"""The latest monitoring snapshot as Prometheus gauges (a custom prometheus_client collector).

``SnapshotCollector(latest)`` calls ``latest()`` (e.g. ``SnapshotStore(store).latest``) at scrape
time, at most once per ``ttl_seconds`` (default 30 s): scrapes in between reuse the cached
snapshot, so several Prometheus replicas scraping every 15 s do not each hit the database.
A failing ``latest()`` never breaks /metrics: the error is counted in
``freightml_monitoring_snapshot_errors_total``, the previous snapshot (if any) stays
exposed and the next read is tried after the TTL. Without a snapshot only the error
counter is exported.

Every snapshot gauge carries ``model_name`` and ``model_version`` (the snapshot's; ``""``
when it had none). The other labels are bounded by the snapshot: features of the profile,
the configured segments (``"all"`` or ``"<column>=<value>"``), the four drift statistics,
the horizon buckets of configs/monitoring.yaml and the four alert kinds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import get_args

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from freightml.monitoring.types import AlertKind, Snapshot

DEFAULT_TTL_SECONDS = 30.0
STATUS_VALUE: dict[str, int] = {"green": 0, "amber": 1, "red": 2}
_MODEL = ["model_name", "model_version"]

# name -> (help, extra labels); the order is the exposition order
GAUGES: dict[str, tuple[str, list[str]]] = {
    "freightml_feature_drift": (
        "Drift statistic of a feature in a segment against the reference profile",
        ["source", "feature", "segment", "statistic"],
    ),
    "freightml_feature_drifted": (
        "1 when the drift statistic is above its threshold",
        ["source", "feature", "segment", "statistic"],
    ),
    "freightml_segment_drifted": (
        "1 when the segment drifted (its drifted-feature share reached the limit)",
        ["source", "segment"],
    ),
    "freightml_realised_wape": (
        "Realised WAPE of the mature forecasts in the window",
        ["segment", "horizon_bucket"],
    ),
    "freightml_expected_wape": (
        "WAPE the backtest expects (reference profile)",
        ["segment", "horizon_bucket"],
    ),
    "freightml_realised_coverage_80": (
        "Share of the mature actuals inside the forecasts' 80% interval",
        ["segment"],
    ),
    "freightml_segment_degraded": (
        "1 when realised quality is degraded in the segment",
        ["segment"],
    ),
    "freightml_segment_status": ("Segment status: 0 green, 1 amber, 2 red", ["segment"]),
    "freightml_facts_age_days": ("Days from the newest fact to the snapshot's as-of date", []),
    "freightml_stale_series_share": ("Share of active series with no recent fact", []),
    "freightml_monitoring_alerts": ("Alerts raised by the snapshot, by kind", ["kind"]),
    "freightml_monitoring_snapshot_timestamp_seconds": (
        "When the snapshot was made (created_at), Unix seconds",
        [],
    ),
}


def snapshot_metrics(snapshot: Snapshot) -> list[GaugeMetricFamily]:
    """The gauges of one snapshot (see ``GAUGES``)."""
    families = {
        name: GaugeMetricFamily(name, doc, labels=[*_MODEL, *labels])
        for name, (doc, labels) in GAUGES.items()
    }
    model = [snapshot.model_name, snapshot.model_version or ""]

    def add(name: str, labels: list[str], value: float) -> None:
        families[name].add_metric([*model, *labels], value)

    for report in snapshot.drift:
        for r in report.results:
            labels = [report.source, r.feature, r.segment, r.statistic]
            add("freightml_feature_drift", labels, r.value)
            add("freightml_feature_drifted", labels, float(r.drifted))
        drifted = set(report.drifted_segments)
        for segment in dict.fromkeys(r.segment for r in report.results):
            if segment not in report.unsupported_segments:
                flag = float(segment in drifted)
                add("freightml_segment_drifted", [report.source, segment], flag)
    degraded: set[str] = set()
    if snapshot.quality is not None:
        degraded = set(snapshot.quality.degraded_segments)
        for cell in snapshot.quality.cells:
            labels = [cell.segment, cell.horizon_bucket]
            if cell.wape is not None:
                add("freightml_realised_wape", labels, cell.wape)
            if cell.expected_wape is not None:
                add("freightml_expected_wape", labels, cell.expected_wape)
        for cov in snapshot.quality.coverage:
            if cov.coverage_80 is not None:
                add("freightml_realised_coverage_80", [cov.segment], cov.coverage_80)
    for seg in snapshot.segments:
        add("freightml_segment_degraded", [seg.segment], float(seg.segment in degraded))
        add("freightml_segment_status", [seg.segment], STATUS_VALUE[seg.status])
    fresh = snapshot.freshness
    if fresh.facts_age_days is not None:
        add("freightml_facts_age_days", [], fresh.facts_age_days)
    add("freightml_stale_series_share", [], fresh.stale_series_share)
    for kind in get_args(AlertKind):
        add("freightml_monitoring_alerts", [kind], sum(a.kind == kind for a in snapshot.alerts))
    add("freightml_monitoring_snapshot_timestamp_seconds", [], snapshot.created_at.timestamp())
    return list(families.values())


class SnapshotCollector(Collector):
    """Exposes ``latest()``'s snapshot, read at most once per ``ttl_seconds``.

    Registered in ``registry`` when one is given. The error counter is exported by this
    collector, after the read, so a scrape whose read failed already counts it.
    """

    def __init__(
        self,
        latest: Callable[[], Snapshot | None],
        *,
        registry: CollectorRegistry | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.latest = latest
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.errors = Counter(
            "freightml_monitoring_snapshot_errors",
            "Reads of the latest monitoring snapshot that failed (the previous one stays)",
            registry=None,
        )
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._read_at: float | None = None
        if registry is not None:
            registry.register(self)

    def snapshot(self) -> Snapshot | None:
        """The cached snapshot, read again once the TTL has passed (errors counted)."""
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl_seconds:
                self._read_at = now
                try:
                    self._snapshot = self.latest()
                except Exception:
                    self.errors.inc()
        return self._snapshot

    def describe(self) -> Iterator[Metric]:
        # names only, so registering checks for clashes without reading a snapshot
        for name, (doc, labels) in GAUGES.items():
            yield GaugeMetricFamily(name, doc, labels=[*_MODEL, *labels])
        yield from self.errors.describe()

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot()
        if snapshot is not None:
            yield from snapshot_metrics(snapshot)
        yield from self.errors.collect()


__all__ = ["DEFAULT_TTL_SECONDS", "GAUGES", "STATUS_VALUE", "SnapshotCollector", "snapshot_metrics"]
