"""The verdict of a monitoring run (freightml.monitoring.run.judge_snapshot): statuses and alerts
per segment from drift, realised quality and freshness, on hand-made parts."""

from __future__ import annotations

from datetime import date

import pytest

from freightml.monitoring.run import judge_snapshot
from freightml.monitoring.types import (
    DriftReport,
    DriftResult,
    Freshness,
    QualityDay,
    QualityReport,
)
from helpers import sample_snapshot

pytestmark = [pytest.mark.unit]
EAST, WEST = "origin_region=East", "origin_region=West"
DAY = date(2026, 3, 31)


def _result(segment: str, drifted: bool, feature: str = "volume_tonnes") -> DriftResult:
    return DriftResult(
        feature=feature,
        kind="numeric",
        role="target",
        segment=segment,
        statistic="wasserstein",
        value=0.3 if drifted else 0.01,
        threshold=0.1,
        drifted=drifted,
        n_reference=1000,
        n_current=500,
    )


def _drift(drifted: list[str], rows: int = 700) -> DriftReport:
    segments = ["all", EAST, WEST]
    return DriftReport(
        source="facts",
        window_start=DAY,
        window_end=DAY,
        rows=rows,
        results=[_result(s, s in drifted) for s in segments],
        drifted_segments=drifted,
        unsupported_segments=[],
    )


def _quality(degraded: list[str]) -> QualityReport:
    def day(segment: str) -> QualityDay:
        bad = segment in degraded
        return QualityDay(
            date=DAY,
            segment=segment,
            n=10,
            wape=0.5 if bad else 0.2,
            mae=1.0,
            bias=0.0,
            expected_wape=0.2,
            exceeds=bad,
            rolling_wape=0.5 if bad else 0.2,
            rolling_wape_low=0.45 if bad else 0.15,
            rolling_expected_wape=0.2,
        )

    return QualityReport(
        window_start=DAY,
        window_end=DAY,
        mature_until=DAY,
        forecasts_scored=30,
        forecasts_pending=0,
        cells=[],
        daily=[day(s) for s in ("all", EAST, WEST)],
        degraded_segments=degraded,
        worst_series=[],
    )


def _fresh(stale: bool = False) -> Freshness:
    return Freshness(
        newest_fact=DAY,
        facts_age_days=9.0 if stale else 0.0,
        active_series=10,
        stale_series=5 if stale else 0,
        stale_series_share=0.5 if stale else 0.0,
        stale=stale,
    )


def test_all_green_without_drift_degradation_or_stale_facts() -> None:
    status, segments, alerts = judge_snapshot([_drift([])], _quality([]), _fresh(), requests=5)
    assert status == "green" and alerts == []
    assert [(s.segment, s.status) for s in segments] == [
        ("all", "green"),
        (EAST, "green"),
        (WEST, "green"),
    ]


def test_drift_is_amber_and_degraded_quality_red_with_reasons_and_alerts() -> None:
    status, segments, alerts = judge_snapshot(
        [_drift([EAST])], _quality([WEST]), _fresh(), requests=5
    )
    by = {s.segment: s for s in segments}
    assert status == "red"
    assert by[EAST].status == "amber" and by[EAST].reasons == ["facts drift in volume_tonnes"]
    assert by[WEST].status == "red" and by["all"].status == "green"
    assert by[WEST].reasons == [
        "realised WAPE over the expected by more than the tolerance on 1 of 1 days "
        "(worst 2026-03-31: 7-day WAPE 0.50, at least 0.45, expected 0.20)"
    ]
    assert [(a.kind, a.segment) for a in alerts] == [("drift", EAST), ("quality", WEST)]


def test_stale_facts_make_the_whole_population_red() -> None:
    status, segments, alerts = judge_snapshot(
        [_drift([])], _quality([]), _fresh(stale=True), requests=5
    )
    assert status == "red" and segments[0].segment == "all" and segments[0].status == "red"
    assert [a.kind for a in alerts] == ["staleness"]
    assert "newest fact 9 days old, 50% of series without recent facts" in alerts[0].message


def test_an_empty_window_raises_no_data_alerts_but_judges_nothing_red() -> None:
    status, _, alerts = judge_snapshot([_drift([], rows=0)], None, _fresh(), requests=0)
    assert status == "green"
    assert sorted(a.message for a in alerts) == [
        "no facts in the window",
        "no requests in the window",
    ]
    assert {a.kind for a in alerts} == {"no_data"}


def test_the_sample_snapshot_judges_as_its_statuses_say() -> None:
    snapshot = sample_snapshot()
    status, segments, _ = judge_snapshot(
        snapshot.drift, snapshot.quality, snapshot.freshness, requests=10
    )
    by = {s.segment: s.status for s in segments}
    # its West region drifted and is degraded; its facts are stale (one series in three)
    assert by["origin_region=Запад"] == "red" and by["all"] == "red" and status == "red"
