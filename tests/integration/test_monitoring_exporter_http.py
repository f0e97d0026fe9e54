"""The snapshot gauges over real HTTP: a collector app (uvicorn on loopback, SQLite store)
built with ``snapshots=...``, its /metrics parsed with prometheus_client's parser and
compared with the snapshot it was given."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from freightml.collector.app import create_app
from helpers import fresh_store, sample_snapshot, uvicorn_in_thread

pytestmark = [pytest.mark.integration]

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]
WEST, EAST = "origin_region=Запад", "origin_region=Восток"
MODEL = {"model_name": "freight-volume", "model_version": "3"}


@contextmanager
def collector(tmp_path: Path, snapshots: Callable[[], Any], **kw: Any) -> Iterator[str]:
    store = fresh_store("sqlite", tmp_path)
    try:
        with uvicorn_in_thread(create_app(store, snapshots=snapshots, **kw)) as url:
            yield url
    finally:
        store.close()


def scrape(url: str) -> Samples:
    """/metrics over HTTP: sample name -> {sorted labels: value}."""
    r = httpx.get(url + "/metrics", timeout=30)
    assert r.status_code == 200
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({**MODEL, **labels}.items()))


def test_gauges_equal_the_snapshot(tmp_path: Path) -> None:
    snap = sample_snapshot()
    with collector(tmp_path, lambda: snap) as url:
        got = scrape(url)

    report = snap.drift[0]
    assert got["freightml_feature_drift"] == {
        key(source="facts", feature=r.feature, segment=r.segment, statistic=r.statistic): r.value
        for r in report.results
    }
    assert got["freightml_feature_drifted"] == {
        key(source="facts", feature=r.feature, segment=r.segment, statistic=r.statistic): float(
            r.drifted
        )
        for r in report.results
    }
    # the unsupported segment (no results) is not judged, hence absent
    assert got["freightml_segment_drifted"] == {
        key(source="facts", segment="all"): 0.0,
        key(source="facts", segment=EAST): 0.0,
        key(source="facts", segment=WEST): 1.0,
    }
    assert snap.quality is not None
    assert got["freightml_realised_wape"] == {
        key(segment=c.segment, horizon_bucket=c.horizon_bucket): c.wape for c in snap.quality.cells
    }
    assert got["freightml_expected_wape"] == {
        key(segment=c.segment, horizon_bucket=c.horizon_bucket): 0.2 for c in snap.quality.cells
    }
    assert len(got["freightml_realised_wape"]) == 9  # 3 segments x 3 horizon buckets
    assert got["freightml_segment_degraded"] == {
        key(segment="all"): 0.0,
        key(segment=EAST): 0.0,
        key(segment=WEST): 1.0,
    }
    assert got["freightml_segment_status"] == {
        key(segment="all"): 0.0,
        key(segment=EAST): 0.0,
        key(segment=WEST): 2.0,
    }
    assert got["freightml_facts_age_days"] == {key(): 1.0}
    assert got["freightml_stale_series_share"] == {key(): pytest.approx(1 / 3)}
    assert got["freightml_monitoring_alerts"] == {
        key(kind="drift"): 1.0,
        key(kind="quality"): 1.0,
        key(kind="coverage"): 0.0,
        key(kind="staleness"): 0.0,
        key(kind="no_data"): 0.0,
    }
    assert got["freightml_monitoring_snapshot_timestamp_seconds"] == {
        key(): snap.created_at.timestamp()
    }
    assert got["freightml_monitoring_snapshot_errors_total"] == {(): 0.0}
    # the collector's own metrics are still there
    assert "freightml_collector_write_batch_events_count" in got


def test_statuses_and_missing_figures(tmp_path: Path) -> None:
    from freightml.monitoring.types import Freshness, SegmentStatus

    snap = sample_snapshot(
        model_version=None,
        quality=None,
        drift=[],
        alerts=[],
        segments=[SegmentStatus(segment="all", status="amber", reasons=["drift"])],
        freshness=Freshness(
            newest_fact=None,
            facts_age_days=None,
            active_series=0,
            stale_series=0,
            stale_series_share=0.0,
            stale=False,
        ),
    )
    with collector(tmp_path, lambda: snap) as url:
        got = scrape(url)
    unversioned = (("model_name", "freight-volume"), ("model_version", ""))
    assert got["freightml_segment_status"] == {(*unversioned, ("segment", "all")): 1.0}
    for absent in (
        "freightml_feature_drift",
        "freightml_realised_wape",
        "freightml_expected_wape",
        "freightml_facts_age_days",
    ):
        assert absent not in got
    assert got["freightml_stale_series_share"] == {unversioned: 0.0}
    assert sum(got["freightml_monitoring_alerts"].values()) == 0


def test_snapshot_read_is_cached_for_the_ttl(tmp_path: Path) -> None:
    reads: list[int] = []

    def latest() -> Any:
        reads.append(1)
        return sample_snapshot()

    with collector(tmp_path, latest, snapshot_ttl_seconds=3600) as url:
        for _ in range(3):
            assert "freightml_segment_status" in scrape(url)
    assert len(reads) == 1


def test_store_errors_never_break_metrics(tmp_path: Path) -> None:
    answers: list[Any] = [sample_snapshot(), RuntimeError("database down"), None]

    def latest() -> Any:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    with collector(tmp_path, latest, snapshot_ttl_seconds=0) as url:
        first = scrape(url)
        failed = scrape(url)  # the read fails: the previous snapshot stays, counted
        empty = scrape(url)  # the store has no snapshot (None): no snapshot gauges
    assert first["freightml_monitoring_snapshot_errors_total"] == {(): 0.0}
    assert failed["freightml_monitoring_snapshot_errors_total"] == {(): 1.0}
    assert failed["freightml_segment_status"] == first["freightml_segment_status"]
    assert empty["freightml_monitoring_snapshot_errors_total"] == {(): 1.0}
    assert "freightml_segment_status" not in empty


def test_no_snapshot_gauges_without_snapshots(tmp_path: Path) -> None:
    store = fresh_store("sqlite", tmp_path)
    try:
        with uvicorn_in_thread(create_app(store)) as url:
            got = scrape(url)
    finally:
        store.close()
    assert not [n for n in got if n.startswith(("freightml_monitoring", "freightml_segment"))]
