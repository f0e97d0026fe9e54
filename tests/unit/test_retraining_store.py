"""The retraining_decisions table family and the facts and snapshot reads the decision
needs, on SQLite and on PostgreSQL (FREIGHTML_TEST_POSTGRES_URL): every decision stored,
status moves checked, the key and the in-flight slot claimed in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from freightml.monitoring.snapshots import SnapshotStore
from freightml.retraining.decisions import SUMMARY_COLUMNS, DecisionStore
from freightml.retraining.policy import Policy
from freightml.retraining.rules import decide
from freightml.retraining.types import Decision, Evidence
from freightml.store import Store
from helpers import STORE_BACKENDS, fresh_store, run_at_once, sample_snapshot

pytestmark = [pytest.mark.unit]
AS_OF = date(2026, 3, 31)
MODEL = "freight-volume"


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = fresh_store(request.param, tmp_path)
    yield s
    s.close()


def _decision(as_of: date = AS_OF, *, retrain: bool = True, model: str = MODEL) -> Decision:
    """A real decision: no champion (retrain), or a quiet one (no retrain)."""
    evidence = Evidence(
        model_name=model,
        as_of=as_of,
        snapshot=None,
        champion=None,
        new_facts=None,
        new_entities=None,
    )
    if retrain:
        return decide(Policy(), evidence)
    return decide(Policy(), evidence).model_copy(update={"retrain": False, "trigger": None})


def test_a_decision_reads_back_with_its_summary(store: Store) -> None:
    decision = _decision()
    assert DecisionStore(store).record(decision, "started") == "started"
    row = DecisionStore(store).get(decision.id)
    assert row is not None and row["decision"] == decision
    assert row["status"] == "started" and row["key"] == f"{MODEL}:no_champion:2026-03-31"
    assert row["trigger"] == "no_champion" and row["retrain"] is True and row["forced"] is False
    assert row["as_of"] == AS_OF and row["decided_at"].tzinfo is not None
    assert DecisionStore(store).get("none") is None
    assert store.counts()["retraining_decisions"] == 1
    with pytest.raises(sa.exc.IntegrityError):  # the same decision id twice
        DecisionStore(store).record(decision, "started")


def test_status_moves_and_the_run_it_started(store: Store) -> None:
    decision = _decision()
    DecisionStore(store).record(decision, "started")
    DecisionStore(store).mark(decision.id, "started", run_id="kfp-run-1")
    DecisionStore(store).mark(decision.id, "finished", model_version="4", message="promoted")
    row = DecisionStore(store).get(decision.id)
    assert row is not None
    assert (row["status"], row["run_id"], row["model_version"], row["message"]) == (
        "finished",
        "kfp-run-1",
        "4",
        "promoted",
    )
    assert row["updated_at"] >= row["decided_at"]
    # a second recorder of the same outcome (the registry reconciliation, then the run's
    # own step) finishes it again with the same version; another version is refused
    DecisionStore(store).mark(decision.id, "finished", model_version="4", message="promoted, again")
    assert DecisionStore(store).get(decision.id)["message"] == "promoted, again"  # type: ignore[index]
    with pytest.raises(ValueError, match="is finished: it cannot become finished"):
        DecisionStore(store).mark(decision.id, "finished", model_version="5")
    with pytest.raises(ValueError, match="is finished: it cannot become finished"):
        DecisionStore(store).mark(decision.id, "finished")
    with pytest.raises(ValueError, match="is finished: it cannot become failed"):
        DecisionStore(store).mark(decision.id, "failed")
    with pytest.raises(KeyError, match="no retraining decision 'nope'"):
        DecisionStore(store).mark("nope", "finished")
    with pytest.raises(ValueError, match="unknown retraining status 'done'"):
        DecisionStore(store).mark(decision.id, "done")


def test_in_flight_decisions_of_a_run(store: Store) -> None:
    """What the retraining pipeline's exit step closes: the run's decisions still in flight."""
    first, second, other = (
        _decision(),
        _decision(AS_OF + timedelta(days=1)),
        _decision(AS_OF + timedelta(days=2)),
    )
    for decision in (first, second, other):
        DecisionStore(store).record(decision, "started", max_in_flight=3)
    DecisionStore(store).mark(first.id, "started", run_id="kfp-run-1")
    DecisionStore(store).mark(second.id, "started", run_id="kfp-run-1")
    DecisionStore(store).mark(other.id, "started", run_id="kfp-run-2")
    assert DecisionStore(store).in_flight_for_run("kfp-run-1") == [first.id, second.id]
    DecisionStore(store).mark(first.id, "finished", model_version="4")
    assert DecisionStore(store).in_flight_for_run("kfp-run-1") == [second.id]
    assert DecisionStore(store).in_flight_for_run("kfp-run-3") == []


def test_a_claim_stores_the_run_known_before_it_starts(store: Store) -> None:
    """A pipeline run deciding for itself: one insert with its run id, none on a lost claim."""
    first, same_day = _decision(), _decision()
    assert DecisionStore(store).record(first, "started", run_id="kfp-run-1") == "started"
    assert DecisionStore(store).in_flight_for_run("kfp-run-1") == [first.id]
    assert DecisionStore(store).record(same_day, "started", run_id="kfp-run-2") == "skipped"
    row = DecisionStore(store).get(same_day.id)
    assert row is not None and row["run_id"] is None
    assert DecisionStore(store).in_flight_for_run("kfp-run-2") == []


def test_a_decision_not_to_retrain_is_stored_as_skipped_only(store: Store) -> None:
    quiet = _decision(retrain=False)
    with pytest.raises(ValueError, match="does not retrain: it cannot be started"):
        DecisionStore(store).record(quiet, "started")
    assert DecisionStore(store).record(quiet, "skipped", message="no trigger fired") == "skipped"
    assert DecisionStore(store).history(MODEL) == []  # the guards read retrain decisions only
    [row] = DecisionStore(store).list()
    assert row["status"] == "skipped" and row["message"] == "no trigger fired"


def test_a_used_key_or_a_full_slot_is_claimed_once(store: Store) -> None:
    first, same_key = _decision(), _decision()
    assert first.key == same_key.key and first.id != same_key.id
    assert DecisionStore(store).record(first, "started") == "started"
    assert DecisionStore(store).record(same_key, "started") == "skipped"
    row = DecisionStore(store).get(same_key.id)
    assert row is not None and row["message"] == f"key {first.key} already started"
    next_day = _decision(AS_OF + timedelta(days=1))
    assert DecisionStore(store).record(next_day, "decided") == "skipped"  # one in flight
    assert "1 run(s) already in flight" in DecisionStore(store).get(next_day.id)["message"]  # type: ignore[index]
    assert (
        DecisionStore(store).record(
            _decision(AS_OF + timedelta(days=2)), "started", max_in_flight=2
        )
        == "started"
    )
    DecisionStore(store).mark(first.id, "failed", message="boom")
    retry = _decision()
    assert (
        DecisionStore(store).record(retry, "started", max_in_flight=3) == "started"
    )  # failed keys retry
    other_model = _decision(model="other")
    assert DecisionStore(store).record(other_model, "started") == "started"  # slots are per model


def test_history_and_list_are_newest_first(store: Store) -> None:
    decisions = []
    for i, hour in enumerate((5, 9, 7)):
        d = _decision(AS_OF - timedelta(days=i)).model_copy(
            update={"decided_at": datetime(2026, 4, 1, hour, tzinfo=UTC)}
        )
        DecisionStore(store).record(d, "skipped")
        decisions.append(d)
    history = DecisionStore(store).history(MODEL)
    assert [h.id for h in history] == [decisions[1].id, decisions[2].id, decisions[0].id]
    assert history[0].status == "skipped" and history[0].as_of == AS_OF - timedelta(days=1)
    assert history[0].decided_at == datetime(2026, 4, 1, 9, tzinfo=UTC)
    rows = DecisionStore(store).list(limit=2)
    assert [r["id"] for r in rows] == [decisions[1].id, decisions[2].id]
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert DecisionStore(store).list(model_name="other") == []
    with pytest.raises(ValueError, match="limit must be at least 1"):
        DecisionStore(store).list(limit=0)


def test_fact_reads_for_the_decision(store: Store) -> None:
    rows = [
        {
            "date": d,
            "origin_station": o,
            "destination_station": "Z",
            "cargo_type": "coal",
            "origin_region": region,
            "destination_region": "South",
            "volume_tonnes": tonnes,
            "wagons": 1,
        }
        for o, region, tonnes in (("A", "West", 10.0), ("B", "East", 2.5))
        for d in pd.date_range("2026-03-01", "2026-03-10")
        if not (o == "B" and d.day > 5)
    ]
    store.facts.ingest(pd.DataFrame(rows))
    counted = store.facts.days_between(date(2026, 3, 4), date(2026, 3, 20))
    assert (counted.rows, counted.days, counted.first, counted.last) == (
        7 + 2,
        7,
        date(2026, 3, 4),
        date(2026, 3, 10),
    )
    none = store.facts.days_between(date(2026, 4, 1), date(2026, 4, 30))
    assert (none.rows, none.days, none.first, none.last) == (0, 0, None, None)
    volume = store.facts.volume_by_series(date(2026, 3, 5), date(2026, 3, 31))
    volume = volume.sort_values("origin_station").reset_index(drop=True)
    assert list(volume["origin_station"]) == ["A", "B"]
    assert list(volume["origin_region"]) == ["West", "East"]
    assert list(volume["tonnes"]) == [60.0, 2.5]


def test_latest_snapshot_until_a_day(store: Store) -> None:
    for i, as_of in enumerate((date(2026, 3, 29), date(2026, 3, 31), date(2026, 4, 2))):
        SnapshotStore(store).save(sample_snapshot(id=f"s{i}", as_of=as_of))
    assert SnapshotStore(store).latest(MODEL, until=date(2026, 4, 1)).id == "s1"  # type: ignore[union-attr]
    assert SnapshotStore(store).latest(MODEL, until=date(2026, 3, 30)).id == "s0"  # type: ignore[union-attr]
    assert SnapshotStore(store).latest(MODEL, until=date(2026, 3, 1)) is None
    assert SnapshotStore(store).latest(MODEL).id == "s2"  # type: ignore[union-attr]


def test_concurrent_claims_of_one_key_start_one_run(store: Store) -> None:
    """Real concurrent claimers (threads, each with its own pooled connection, let go at
    once by a barrier) record decisions with the same key: exactly one holds it, every other
    is stored skipped, none fails. Five rounds, a model (so a key and an in-flight slot) of
    its own each."""
    claimers = 8
    for round_ in range(5):
        as_of = AS_OF + timedelta(days=round_)
        decisions = [_decision(as_of, model=f"{MODEL}-{round_}") for _ in range(claimers)]
        assert len({d.key for d in decisions}) == 1 and len({d.id for d in decisions}) == claimers
        results = run_at_once(DecisionStore(store).record, [(d, "started") for d in decisions])
        assert sorted(results) == ["skipped"] * (claimers - 1) + ["started"], results
        rows = [r for r in DecisionStore(store).list(limit=100) if r["as_of"] == as_of]
        assert sorted(r["status"] for r in rows) == sorted(results)


def test_a_store_made_before_the_key_index_gets_it(tmp_path: Path) -> None:
    """create_all on a store whose retraining table predates the unique key index adds it."""
    store = fresh_store("sqlite", tmp_path)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ux_retraining_decisions_key_held")
    assert "ux_retraining_decisions_key_held" not in {
        i["name"] for i in sa.inspect(store.engine).get_indexes("retraining_decisions")
    }
    store.create_all()
    assert "ux_retraining_decisions_key_held" in {
        i["name"] for i in sa.inspect(store.engine).get_indexes("retraining_decisions")
    }
    store.close()


def test_latest_snapshot_of_one_environment(store: Store) -> None:
    """Each serving environment's monitor stores its own snapshot; reading one never
    returns another environment's, and the unfiltered read still sees every one."""
    snapshots = SnapshotStore(store)
    for i, env in enumerate(("freightml-prod", "freightml-dev", None)):
        snapshots.save(sample_snapshot(id=f"e{i}", as_of=date(2026, 4, 1 + i), environment=env))
    prod = snapshots.latest(MODEL, environment="freightml-prod")
    assert prod is not None and (prod.id, prod.environment) == ("e0", "freightml-prod")
    assert snapshots.latest(MODEL, environment="freightml-dev").id == "e1"  # type: ignore[union-attr]
    assert snapshots.latest(MODEL, environment="freightml-staging") is None
    assert snapshots.latest(MODEL).id == "e2"  # type: ignore[union-attr]
