"""The retraining decision on small hand-made snapshots and evidence: every trigger fires,
does not fire, or is not judged; every guard blocks or lets through; the key and the tags."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from freightml.monitoring.snapshots import SnapshotStore
from freightml.monitoring.types import DriftReport, DriftResult, QualityDay, QualityReport
from freightml.retraining.decisions import DecisionStore
from freightml.retraining.evidence import decide_now, gather_evidence, reconcile_in_flight
from freightml.retraining.policy import Policy
from freightml.retraining.rules import decide, idempotency_key, run_tags
from freightml.retraining.types import (
    ChampionInfo,
    Decision,
    Evidence,
    FactCount,
    NewEntities,
    PastDecision,
)
from freightml.store import Store
from helpers import sample_snapshot

pytestmark = [pytest.mark.unit]

AS_OF = date(2026, 3, 31)
NOW = datetime(2026, 4, 1, 6, 0, tzinfo=UTC)
MODEL = "freight-volume"
WEST, EAST = "origin_region=Запад", "origin_region=Восток"


def _drift(
    segment: str, feature: str, drifted: bool, role: str = "input", statistic: str = "psi"
) -> DriftResult:
    return DriftResult(
        feature=feature,
        kind="numeric",
        role=role,  # type: ignore[arg-type]
        segment=segment,
        statistic=statistic,  # type: ignore[arg-type]
        value=0.3 if drifted else 0.01,
        threshold=0.1,
        drifted=drifted,
        n_reference=5000,
        n_current=500,
    )


def _report(
    results: list[DriftResult], unsupported: tuple[str, ...] = (), source: str = "facts"
) -> DriftReport:
    return DriftReport(
        source=source,  # type: ignore[arg-type]
        window_start=AS_OF - timedelta(days=6),
        window_end=AS_OF,
        rows=1000,
        results=results,
        drifted_segments=[],
        unsupported_segments=list(unsupported),
    )


def _quality(days: dict[str, list[bool | None]]) -> QualityReport:
    """Daily rows per segment ending on AS_OF; None = a day without a score."""
    daily = []
    for segment, flags in days.items():
        for i, flag in enumerate(flags):
            daily.append(
                QualityDay(
                    date=AS_OF - timedelta(days=len(flags) - 1 - i),
                    segment=segment,
                    n=0 if flag is None else 40,
                    wape=None if flag is None else (0.4 if flag else 0.2),
                    mae=1.0,
                    bias=0.0,
                    expected_wape=0.2,
                    exceeds=bool(flag),
                )
            )
    return QualityReport(
        window_start=AS_OF - timedelta(days=6),
        window_end=AS_OF,
        mature_until=AS_OF,
        forecasts_scored=100,
        forecasts_pending=0,
        cells=[],
        daily=daily,
        degraded_segments=[],
        worst_series=[],
    )


def _snapshot(
    drift: list[DriftReport] | None = None, quality: QualityReport | None = None, **kw: Any
):
    fields: dict[str, Any] = {
        "as_of": AS_OF,
        "model_version": "3",
        "drift": drift or [],
        "quality": quality,
    }
    fields.update(kw)
    return sample_snapshot(**fields)


CHAMPION = ChampionInfo(
    version="3", run_id="r3", window_start=date(2024, 3, 1), window_end=date(2026, 3, 10)
)
QUIET = FactCount(rows=2100, days=21, first=date(2026, 3, 11), last=AS_OF)  # 21 days: no trigger


def _evidence(**kw: Any) -> Evidence:
    fields: dict[str, Any] = {
        "model_name": MODEL,
        "as_of": AS_OF,
        "snapshot": _snapshot(),
        "champion": CHAMPION,
        "new_facts": QUIET,
        "new_entities": None,
        "history": [],
    }
    fields.update(kw)
    return Evidence(**fields)


def _policy(**sections: dict[str, Any]) -> Policy:
    return Policy.model_validate(sections)


INPUT_ON = Policy.model_validate({"triggers": {"input_drift": {"enabled": True}}})


def _trigger(decision: Decision, name: str):
    return next(t for t in decision.triggers if t.name == name)


def _guard(decision: Decision, name: str):
    return next(g for g in decision.guards if g.name == name)


def test_a_quiet_evidence_retrains_nothing() -> None:
    decision = decide(Policy(), _evidence(), now=NOW)
    assert not decision.retrain and decision.trigger is None and decision.fired == []
    assert decision.reason == "no trigger fired"
    assert decision.key == f"{MODEL}:none:2026-03-31"
    assert [t.name for t in decision.triggers] == [
        "no_champion",
        "new_regions",
        "new_stations",
        "new_series",
        "quality",
        "input_drift",
        "prediction_drift",
        "champion_age",
        "new_facts",
    ]
    assert _trigger(decision, "champion_age").value == 21.0
    assert _trigger(decision, "new_facts").value == 21.0


# -- triggers ---------------------------------------------------------------------------
def test_input_drift_counts_supported_segments_over_the_feature_share() -> None:
    features = ("lag_7", "mean_28", "log_scale", "dow")
    west = [_drift(WEST, f, f in ("lag_7", "mean_28")) for f in features]  # 2 of 4 = 0.5
    east = [_drift(EAST, f, f == "lag_7") for f in features]  # 1 of 4
    north = [_drift("origin_region=Север", f, True) for f in features]  # unsupported
    target = [_drift(EAST, "volume_tonnes", True, role="target")]  # not an input
    snapshot = _snapshot([_report(west + east + north + target, ("origin_region=Север",))])
    assert not _trigger(
        decide(Policy(), _evidence(snapshot=snapshot), now=NOW), "input_drift"
    ).fired
    fired = decide(INPUT_ON, _evidence(snapshot=snapshot), now=NOW)  # off by default
    t = _trigger(fired, "input_drift")
    assert t.fired and t.value == 1.0 and t.threshold == 1.0
    assert WEST in t.detail and "(of 2 supported)" in t.detail
    assert fired.retrain and fired.trigger == "input_drift"
    assert fired.key == f"{MODEL}:input_drift:2026-03-31"

    stricter = _policy(triggers={"input_drift": {"enabled": True, "feature_share": 0.75}})
    assert not _trigger(
        decide(stricter, _evidence(snapshot=snapshot), now=NOW), "input_drift"
    ).fired
    two = _policy(triggers={"input_drift": {"enabled": True, "min_segments": 2}})
    assert not _trigger(decide(two, _evidence(snapshot=snapshot), now=NOW), "input_drift").fired
    off = _policy(triggers={"input_drift": {"enabled": False}})
    t = _trigger(decide(off, _evidence(snapshot=snapshot), now=NOW), "input_drift")
    assert not t.fired and not t.enabled and t.value == 1.0  # shown, never fires


def test_a_feature_drifted_in_one_statistic_counts_once() -> None:
    results = [
        _drift(WEST, "lag_7", True, statistic="psi"),
        _drift(WEST, "lag_7", False, statistic="wasserstein"),
        _drift(WEST, "mean_28", False),
    ]
    decision = decide(INPUT_ON, _evidence(snapshot=_snapshot([_report(results)])), now=NOW)
    assert _trigger(decision, "input_drift").fired  # 1 of 2 features = 0.5


def test_prediction_drift_fires_in_supported_segments_only() -> None:
    results = [
        _drift(WEST, "forecast_tonnes", True, role="prediction", statistic="wasserstein"),
        _drift(EAST, "forecast_tonnes", False, role="prediction", statistic="wasserstein"),
    ]
    requests = _report(results, source="requests")
    fired = decide(Policy(), _evidence(snapshot=_snapshot([requests])), now=NOW)
    t = _trigger(fired, "prediction_drift")
    assert t.fired and t.value == 1.0 and WEST in t.detail
    unsupported = _snapshot([_report(results, (WEST,), source="requests")])
    t = _trigger(decide(Policy(), _evidence(snapshot=unsupported), now=NOW), "prediction_drift")
    assert not t.fired and t.value == 0.0


def test_prediction_drift_decides_on_the_served_forecasts_wasserstein_only() -> None:
    psi = [_drift(WEST, "forecast_tonnes", True, role="prediction", statistic="psi")]
    wasserstein = [
        _drift(WEST, "forecast_tonnes", True, role="prediction", statistic="wasserstein")
    ]
    for report in (_report(psi, source="requests"), _report(wasserstein, source="facts")):
        decision = decide(Policy(), _evidence(snapshot=_snapshot([report])), now=NOW)
        t = _trigger(decision, "prediction_drift")
        assert not t.fired and t.value == 0.0, report.source


def test_quality_fires_on_consecutive_days_up_to_the_newest_scored_day() -> None:
    five = _quality({WEST: [False, True, True, True, True, True], EAST: [True, False]})
    decision = decide(Policy(), _evidence(snapshot=_snapshot(quality=five)), now=NOW)
    t = _trigger(decision, "quality")
    assert t.fired and t.value == 5.0 and t.threshold == 5.0 and WEST in t.detail
    assert decision.trigger == "quality"

    four = _quality({WEST: [True, False, True, True, True, True]})
    assert (
        _trigger(
            decide(Policy(), _evidence(snapshot=_snapshot(quality=four)), now=NOW), "quality"
        ).value
        == 4.0
    )
    recovered = _quality({WEST: [True, True, True, True, True, True, False]})  # newest is fine
    t = _trigger(
        decide(Policy(), _evidence(snapshot=_snapshot(quality=recovered)), now=NOW), "quality"
    )
    assert not t.fired and t.value == 0.0
    # an unscored day (no mature facts) is skipped; a missing calendar day breaks the streak
    unscored = _quality({WEST: [True, True, True, True, True, None]})
    assert _trigger(
        decide(Policy(), _evidence(snapshot=_snapshot(quality=unscored)), now=NOW), "quality"
    ).fired
    gap = _quality({WEST: [True, True, True, True, True]})
    gap = gap.model_copy(
        update={"daily": [d for d in gap.daily if d.date != AS_OF - timedelta(days=2)]}
    )
    t = _trigger(decide(Policy(), _evidence(snapshot=_snapshot(quality=gap)), now=NOW), "quality")
    assert t.value == 2.0 and not t.fired


def test_monitoring_triggers_are_not_judged_on_a_stale_or_foreign_snapshot() -> None:
    five = _quality({WEST: [True] * 6})
    old = _snapshot(quality=five, as_of=AS_OF - timedelta(days=3))
    t = _trigger(decide(Policy(), _evidence(snapshot=old), now=NOW), "quality")
    assert not t.fired and t.value is None and "3 days before 2026-03-31 (limit 2)" in t.detail
    foreign = _snapshot(quality=five, model_version="2")
    t = _trigger(decide(Policy(), _evidence(snapshot=foreign), now=NOW), "quality")
    assert not t.fired and "monitors v2, the champion is v3" in t.detail
    t = _trigger(decide(Policy(), _evidence(snapshot=None), now=NOW), "input_drift")
    assert not t.fired and t.detail == "not judged: no monitoring snapshot"


def _entities(region: float, station: float, series: float) -> NewEntities:
    return NewEntities(
        start=date(2026, 3, 11),
        end=AS_OF,
        tonnes=1_000_000.0,
        region_share=region,
        station_share=station,
        series_share=series,
        new_regions=["Дальневосточная"] if region else [],
        new_stations=["ДВ-1"] if station else [],
        new_series=3 if series else 0,
    )


@pytest.mark.parametrize(
    ("shares", "fired"),
    [
        ((0.0, 0.0, 0.0), []),
        ((0.0, 0.0, 0.099), []),
        ((0.0, 0.0, 0.10), ["new_series"]),
        ((0.0, 0.05, 0.06), ["new_stations"]),
        ((0.02, 0.03, 0.04), ["new_regions"]),
        ((0.03, 0.06, 0.11), ["new_regions", "new_stations", "new_series"]),
    ],
)
def test_new_entities_fire_by_their_share_of_tonnes(
    shares: tuple[float, float, float], fired: list[str]
) -> None:
    decision = decide(Policy(), _evidence(new_entities=_entities(*shares)), now=NOW)
    assert [t.name for t in decision.fired] == fired
    assert decision.trigger == (fired[0] if fired else None)
    # the names the window rule looks up: regions and stations whose trigger fired
    expected = {"new_regions": ["Дальневосточная"], "new_stations": ["ДВ-1"]}
    assert decision.new_segments == [n for t in fired for n in expected.get(t, [])]


def test_abrupt_causes_name_the_key_before_degradation() -> None:
    evidence = _evidence(
        snapshot=_snapshot(quality=_quality({WEST: [True] * 6})),
        new_entities=_entities(0.05, 0.05, 0.12),
    )
    decision = decide(Policy(), evidence, now=NOW)
    assert [t.name for t in decision.fired] == [
        "new_regions",
        "new_stations",
        "new_series",
        "quality",
    ]
    assert decision.trigger == "new_regions" and decision.key.endswith(":new_regions:2026-03-31")
    assert decision.reason.startswith("new_regions 0.05 >= 0.02; new_stations")


def test_champion_age_and_new_facts_fire_at_their_threshold() -> None:
    at_limit = CHAMPION.model_copy(update={"window_end": AS_OF - timedelta(days=35)})
    decision = decide(Policy(), _evidence(champion=at_limit), now=NOW)
    assert _trigger(decision, "champion_age").fired and decision.trigger == "champion_age"
    younger = CHAMPION.model_copy(update={"window_end": AS_OF - timedelta(days=34)})
    assert not _trigger(
        decide(Policy(), _evidence(champion=younger), now=NOW), "champion_age"
    ).fired

    many = FactCount(rows=2800, days=28, first=date(2026, 3, 4), last=AS_OF)
    t = _trigger(decide(Policy(), _evidence(new_facts=many), now=NOW), "new_facts")
    assert t.fired and t.value == 28.0 and t.threshold == 28.0
    off = _policy(triggers={"new_facts": {"enabled": False}})
    assert not _trigger(decide(off, _evidence(new_facts=many), now=NOW), "new_facts").fired


def test_no_champion_asks_for_the_first_one() -> None:
    decision = decide(Policy(), _evidence(champion=None, new_facts=None), now=NOW)
    assert decision.retrain and decision.trigger == "no_champion"
    assert _trigger(decision, "champion_age").value is None
    assert not _guard(decision, "min_new_facts").blocked  # no window to count from


# -- guards -----------------------------------------------------------------------------
def _past(key: str, as_of: date, status: str, hours_ago: float = 1.0) -> PastDecision:
    at = NOW - timedelta(hours=hours_ago)
    return PastDecision(
        id=f"d-{key}-{status}", key=key, as_of=as_of, status=status, decided_at=at, updated_at=at
    )


AGED = CHAMPION.model_copy(update={"window_end": AS_OF - timedelta(days=40)})  # champion_age fires
KEY = idempotency_key(MODEL, "champion_age", AS_OF)


def test_cooldown_blocks_a_retrain_within_its_days() -> None:
    recent = [_past(f"{MODEL}:quality:2026-03-26", date(2026, 3, 26), "finished", 100)]
    decision = decide(Policy(), _evidence(champion=AGED, history=recent), now=NOW)
    g = _guard(decision, "cooldown")
    assert g.blocked and g.value == 5.0 and g.limit == 7.0
    assert not decision.retrain and decision.fired  # asked for, blocked
    assert (
        "blocked by cooldown (5 vs 7: days since the retrain as of 2026-03-26)" in decision.reason
    )
    week = [_past(f"{MODEL}:quality:2026-03-24", date(2026, 3, 24), "finished", 200)]
    assert decide(Policy(), _evidence(champion=AGED, history=week), now=NOW).retrain
    failed = [_past(f"{MODEL}:quality:2026-03-30", date(2026, 3, 30), "failed")]
    assert decide(Policy(), _evidence(champion=AGED, history=failed), now=NOW).retrain


def test_at_most_one_run_in_flight_until_it_expires() -> None:
    flying = [_past(f"{MODEL}:quality:2026-03-20", date(2026, 3, 20), "started", hours_ago=2)]
    decision = decide(Policy(), _evidence(champion=AGED, history=flying), now=NOW)
    g = _guard(decision, "in_flight")
    assert g.blocked and g.value == 1.0 and f"{MODEL}:quality:2026-03-20" in g.detail
    assert not decision.retrain
    expired = [_past(f"{MODEL}:quality:2026-03-20", date(2026, 3, 20), "started", hours_ago=25)]
    assert decide(Policy(), _evidence(champion=AGED, history=expired), now=NOW).retrain
    two = _policy(guards={"max_in_flight": 2})
    assert decide(two, _evidence(champion=AGED, history=flying), now=NOW).retrain


def test_the_same_key_never_starts_two_runs() -> None:
    done = [_past(KEY, AS_OF, "finished", hours_ago=3)]
    policy = _policy(guards={"cooldown_days": 0})
    decision = decide(policy, _evidence(champion=AGED, history=done), now=NOW)
    assert _guard(decision, "dedupe").blocked and not decision.retrain
    assert f"key {KEY} already finished" in _guard(decision, "dedupe").detail
    retry = [_past(KEY, AS_OF, "failed", hours_ago=3)]  # a failed run may be tried again
    assert decide(policy, _evidence(champion=AGED, history=retry), now=NOW).retrain
    other_day = [
        _past(
            idempotency_key(MODEL, "champion_age", date(2026, 3, 30)), date(2026, 3, 30), "finished"
        )
    ]
    assert decide(policy, _evidence(champion=AGED, history=other_day), now=NOW).retrain
    off = _policy(guards={"cooldown_days": 0, "dedupe": False})
    assert decide(off, _evidence(champion=AGED, history=done), now=NOW).retrain


def test_too_few_new_facts_block() -> None:
    few = FactCount(rows=600, days=6, first=date(2026, 3, 26), last=AS_OF)
    decision = decide(Policy(), _evidence(champion=AGED, new_facts=few), now=NOW)
    g = _guard(decision, "min_new_facts")
    assert g.blocked and g.value == 6.0 and g.limit == 7.0 and not decision.retrain


def test_force_needs_a_reason_and_skips_cooldown_and_facts_but_not_the_key() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        decide(Policy(), _evidence(), force=True, reason="  ")
    few = FactCount(rows=100, days=1, first=AS_OF, last=AS_OF)
    recent = [_past(f"{MODEL}:quality:2026-03-30", date(2026, 3, 30), "finished", 20)]
    decision = decide(
        Policy(), _evidence(new_facts=few, history=recent), force=True, reason="new tariff", now=NOW
    )
    assert decision.retrain and decision.forced and decision.trigger == "manual"
    assert decision.key == f"{MODEL}:manual:2026-03-31" and decision.reason == "forced: new tariff"
    assert (
        not _guard(decision, "cooldown").blocked and not _guard(decision, "min_new_facts").blocked
    )
    again = [_past(decision.key, AS_OF, "finished")]
    repeat = decide(Policy(), _evidence(history=again), force=True, reason="again", now=NOW)
    assert not repeat.retrain and _guard(repeat, "dedupe").blocked


def test_run_tags_say_why_the_version_exists() -> None:
    evidence = _evidence(snapshot=_snapshot(quality=_quality({WEST: [True] * 6})))
    decision = decide(Policy(), evidence, now=NOW)
    tags = run_tags(decision)
    assert tags["retrain.trigger"] == "quality"
    assert tags["retrain.key"] == f"{MODEL}:quality:2026-03-31"
    assert tags["retrain.decision_id"] == decision.id
    assert tags["retrain.as_of"] == "2026-03-31" and tags["retrain.forced"] == "false"
    assert tags["retrain.champion_before"] == "3"
    assert tags["retrain.value.quality"] == "6 (threshold 5)"
    assert tags["retrain.reason"] == decision.reason == "quality 6 >= 5"
    assert all(k.startswith("retrain.") for k in tags)


# -- evidence from a real store and MLflow ------------------------------------------------
def _facts(series: list[tuple[str, str, str, str, str]], days: pd.DatetimeIndex, tonnes: float):
    rows = [
        {
            "date": d,
            "origin_station": o,
            "destination_station": dst,
            "cargo_type": cargo,
            "origin_region": ro,
            "destination_region": rd,
            "volume_tonnes": tonnes,
            "wagons": 1,
        }
        for o, dst, cargo, ro, rd in series
        for d in days
    ]
    return pd.DataFrame(rows)


def test_gather_reads_the_champion_window_facts_and_snapshot(settings, tmp_path: Path) -> None:
    from freightml.tracking import configure_mlflow

    client: MlflowClient = configure_mlflow(settings)
    experiment = client.create_experiment("gather")
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "data_start", "2026-01-01")
    client.log_param(run.info.run_id, "data_end", "2026-02-28")
    client.create_registered_model(MODEL)
    mv = client.create_model_version(MODEL, "file:///nowhere", run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "champion", mv.version)

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    old = [("A", "B", "coal", "West", "West"), ("B", "A", "grain", "West", "West")]
    store.facts.ingest(_facts(old, pd.date_range("2026-01-01", "2026-03-31"), 100.0))
    new = [("C", "A", "coal", "East", "West")]  # new region and station: 100 of 300 t a day
    store.facts.ingest(_facts(new, pd.date_range("2026-03-11", "2026-03-31"), 100.0))
    SnapshotStore(store).save(
        _snapshot(model_version=str(mv.version), as_of=AS_OF - timedelta(days=1))
    )
    SnapshotStore(store).save(
        _snapshot(id="later", model_version=str(mv.version), as_of=AS_OF + timedelta(days=1))
    )

    evidence = gather_evidence(settings, store, Policy(), as_of=AS_OF)
    assert evidence.champion is not None
    assert evidence.champion.version == str(mv.version) == "1"
    assert evidence.champion.window_end == date(2026, 2, 28)
    assert evidence.new_facts == FactCount(
        rows=31 * 2 + 21, days=31, first=date(2026, 3, 1), last=AS_OF
    )
    ne = evidence.new_entities
    assert ne is not None and ne.start == date(2026, 3, 4)  # 28-day look-back
    # 28 days x 200 t old series, 21 days x 100 t new one
    assert ne.tonnes == pytest.approx(28 * 200 + 21 * 100)
    assert ne.region_share == pytest.approx(2100 / 7700)
    assert ne.station_share == ne.series_share == ne.region_share
    assert ne.new_regions == ["East"] and ne.new_stations == ["C"] and ne.new_series == 1
    assert evidence.snapshot is not None and evidence.snapshot.as_of == AS_OF - timedelta(days=1)

    decision = decide(Policy(), evidence)
    assert decision.trigger == "new_regions" and decision.retrain
    assert decision.evidence["window_end"] == "2026-02-28"
    assert decision.new_segments == ["East", "C"]  # both shares 0.27: both triggers fired
    store.close()


def test_a_champion_without_a_training_window_is_named(settings) -> None:
    from freightml.tracking import configure_mlflow

    client: MlflowClient = configure_mlflow(settings)
    run = client.create_run(client.create_experiment("bare"))
    client.create_registered_model(MODEL)
    mv = client.create_model_version(MODEL, "file:///nowhere", run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "champion", mv.version)
    store = Store("sqlite://")
    with pytest.raises(ValueError, match=f"champion {MODEL} v1 .* has no data_end parameter"):
        gather_evidence(settings, store, Policy(), as_of=AS_OF)
    store.close()


def test_a_run_that_registered_elsewhere_closes_its_decision(settings, tmp_path: Path) -> None:
    """`retrain run --host`: the training run goes on in Kubeflow Pipelines and cannot
    record its outcome; the version it registered, tagged with the decision's id, closes
    the decision at the next decide, which frees the in-flight slot."""
    from freightml.retraining.act import finish_retrain
    from freightml.tracking import configure_mlflow

    client: MlflowClient = configure_mlflow(settings)
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    empty = Evidence(
        model_name=MODEL,
        as_of=AS_OF,
        snapshot=None,
        champion=None,
        new_facts=None,
        new_entities=None,
    )
    submitted = decide(Policy(), empty.model_copy(update={"as_of": AS_OF - timedelta(days=2)}))
    lost = decide(Policy(), empty.model_copy(update={"as_of": AS_OF - timedelta(days=1)}))
    for decision, run in ((submitted, "kfp-run-1"), (lost, "kfp-run-2")):
        assert DecisionStore(store).record(decision, "started", max_in_flight=2) == "started"
        DecisionStore(store).mark(decision.id, "started", run_id=run)
    # the submitted run registers version 1 with the decision's tags, as the training
    # pipeline's register step does; the other run never registers anything
    run = client.create_run(client.create_experiment("elsewhere"))
    client.create_registered_model(MODEL)
    mv = client.create_model_version(MODEL, "file:///nowhere", run_id=run.info.run_id)
    for key, value in run_tags(submitted).items():
        client.set_model_version_tag(MODEL, mv.version, key, value)

    assert reconcile_in_flight(settings, store) == [(submitted.id, "1")]
    row = DecisionStore(store).get(submitted.id)
    assert row is not None
    assert (row["status"], row["model_version"], row["run_id"]) == ("finished", "1", "kfp-run-1")
    assert "found in the registry" in row["message"]
    assert DecisionStore(store).get(lost.id)["status"] == "started"  # type: ignore[index]
    assert reconcile_in_flight(settings, store) == []  # nothing left to close

    # the next decision sees one run in flight, not two
    decision = decide_now(settings, store, Policy(), as_of=AS_OF)
    in_flight = next(g for g in decision.guards if g.name == "in_flight")
    assert in_flight.value == 1.0 and lost.key in in_flight.detail
    # the run's own recorder may still finish it with the same version, not another one
    finish_retrain(store, submitted.id, version="1", message="version 1 registered, promoted")
    assert DecisionStore(store).get(submitted.id)["message"].endswith("promoted")  # type: ignore[index]
    with pytest.raises(ValueError, match="is finished: it cannot become finished"):
        finish_retrain(store, submitted.id, version="2")
    store.close()
