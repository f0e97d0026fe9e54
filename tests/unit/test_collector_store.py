"""The collector's store on SQLite, and on PostgreSQL when FREIGHTML_TEST_POSTGRES_URL is set:
idempotent events, request/response joins in either order, forecasts, facts with revisions."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from freightml.collector.events import InferenceEvent
from freightml.collector.inferences import InferenceStore
from freightml.data.schema import FACT_COLUMNS, FactSchema
from freightml.domain import REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE
from freightml.store import IngestResult, Store
from freightml.store.facts import UnknownFacts, WithdrawResult
from helpers import STORE_BACKENDS, facts_frame, fresh_store, run_at_once

pytestmark = [pytest.mark.unit]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store: SQLite in tmp_path, or the test PostgreSQL with its tables recreated."""
    s = fresh_store(request.param, tmp_path)
    yield s
    s.close()


def _event(kind: str, inference_id: str, body: str | None = "{}", **kw: object) -> InferenceEvent:
    return InferenceEvent(
        event_id=inference_id,
        event_type=REQUEST_EVENT_TYPE if kind == "request" else RESPONSE_EVENT_TYPE,
        source="http://localhost:9081/",
        time=f"2026-01-05T10:00:0{0 if kind == 'request' else 1}Z",
        inference_service="freight-volume",
        namespace="freightml",
        component="predictor",
        endpoint="default",
        body=body,
        **kw,  # type: ignore[arg-type]
    )


def _response_body(days: list[int], origin: str = "NSK", tonnes: float = 100.0) -> str:
    import json

    predictions = [
        {
            "origin_station": origin,
            "destination_station": "VLD",
            "cargo_type": "coal",
            "origin_date": "2026-01-01",
            "date": f"2026-01-{d:02d}",
            "horizon": d - 1,
            "tonnes": tonnes + d,
            "wagons": 2,
        }
        for d in days
    ]
    return json.dumps(
        {"model_name": "freight-volume", "model_version": "3", "predictions": predictions}
    )


def _facts(days: list[int], tonnes: float = 100.0, origin: str = "NSK") -> pd.DataFrame:
    """Facts of January 2026's ``days`` (1-based) with volume ``tonnes + day``."""
    offsets = [d - 1 for d in days]
    return facts_frame(
        offsets, start="2026-01-01", tonnes=[tonnes + d for d in days], origin=origin
    )


# -- events and inferences -------------------------------------------------------------


def test_duplicate_delivery_is_ignored(store: Store) -> None:
    request = _event("request", "inf-1", '{"instances": []}')
    assert InferenceStore(store).record([request])[0] == "stored"
    assert InferenceStore(store).record([request])[0] == "duplicate"
    assert InferenceStore(store).record([request, _event("response", "inf-1"), request]) == [
        "duplicate",
        "stored",
        "duplicate",
    ]
    counts = store.counts()
    assert (counts["events"], counts["inferences"], counts["inferences_complete"]) == (2, 1, 1)


@pytest.mark.parametrize("order", ["request first", "response first", "same batch"])
def test_request_and_response_join_in_either_order(store: Store, order: str) -> None:
    request = _event("request", "inf-2", '{"instances": [{"origin_station": "NSK"}]}')
    response = _event("response", "inf-2", _response_body([2, 3]))
    if order == "request first":
        assert [
            InferenceStore(store).record([request])[0],
            InferenceStore(store).record([response])[0],
        ] == ["stored"] * 2
    elif order == "response first":
        assert [
            InferenceStore(store).record([response])[0],
            InferenceStore(store).record([request])[0],
        ] == ["stored"] * 2
    else:
        assert InferenceStore(store).record([response, request]) == ["stored", "stored"]
    found = InferenceStore(store).get("inf-2")
    assert found is not None and found["complete"]
    assert found["request"]["body"] == {"instances": [{"origin_station": "NSK"}]}
    assert found["response"]["body"]["model_version"] == "3"
    assert (found["model_name"], found["model_version"], found["protocol"]) == (
        "freight-volume",
        "3",
        "v1",
    )
    assert (found["request_time"], found["response_time"]) == (request.time, response.time)
    assert found["inference_service"] == "freight-volume" and found["n_forecasts"] == 2
    assert [f["tonnes"] for f in found["forecasts"]] == [102.0, 103.0]
    assert store.counts()["forecasts"] == 2


def test_half_an_inference_is_incomplete(store: Store) -> None:
    InferenceStore(store).record([_event("response", "inf-3", _response_body([2]))])[0]
    found = InferenceStore(store).get("inf-3")
    assert found is not None and not found["complete"] and found["request"] is None
    assert InferenceStore(store).get("no-such-id") is None


def test_a_response_that_is_not_a_forecast_is_stored_without_forecasts(store: Store) -> None:
    assert (
        InferenceStore(store).record([_event("response", "inf-4", '{"predictions": [1.5, 2.5]}')])[
            0
        ]
        == "stored"
    )
    found = InferenceStore(store).get("inf-4")
    assert found is not None and found["protocol"] is None and found["forecasts"] == []
    assert found["response"]["body"] == {"predictions": [1.5, 2.5]}


def test_a_malformed_forecast_response_is_stored_without_forecasts(store: Store) -> None:
    bad = _response_body([2]).replace('"tonnes": 102.0', '"tonnes": "lots"')
    assert InferenceStore(store).record([_event("response", "inf-5", bad)])[0] == "stored"
    assert store.counts()["forecasts"] == 0 and store.counts()["events"] == 1


def test_other_event_types_are_stored_but_make_no_inference(store: Store) -> None:
    other = InferenceEvent("ev-9", "com.example.audit", "s", body='{"x": 1}')
    assert InferenceStore(store).record([other])[0] == "stored"
    assert store.counts()["inferences"] == 0
    found = InferenceStore(store).get("ev-9")
    assert found is not None and found["other_events"][0]["body"] == {"x": 1}


def test_same_id_with_another_type_is_a_different_event(store: Store) -> None:
    assert InferenceStore(store).record([_event("request", "inf-6")])[0] == "stored"
    assert (
        InferenceStore(store).record([InferenceEvent("inf-6", "com.example.other", "s")])[0]
        == "stored"
    )
    assert store.counts()["events"] == 2


# -- forecasts and facts ---------------------------------------------------------------


def test_write_forecasts_is_idempotent_per_run(store: Store) -> None:
    frame = pd.DataFrame(
        {
            "origin_station": ["NSK", "NSK"],
            "destination_station": ["VLD", "VLD"],
            "cargo_type": ["coal", "coal"],
            "origin_date": pd.to_datetime(["2026-01-01", "2026-01-01"]),
            "date": pd.to_datetime(["2026-01-02", "2026-01-03"]),
            "tonnes": [10.0, 11.0],
            "wagons": [1, 1],
        }
    )
    kwargs = {
        "run_id": "run-7",
        "model_name": "freight-volume",
        "model_version": 3,
        "lineage": "sha:ab",
    }
    assert store.forecasts.write(frame, **kwargs) == 2
    assert store.forecasts.write(frame, **kwargs) == 0
    assert store.forecasts.write(frame, **{**kwargs, "run_id": "run-8"}) == 2
    joined = store.forecasts.with_facts(include_pending=True, source="batch")
    assert sorted(joined["source_id"].unique()) == ["run-7", "run-8"]
    assert set(joined["lineage"]) == {"sha:ab"} and set(joined["model_version"]) == {"3"}
    horizons = joined.groupby("source_id")["horizon"].apply(list).to_dict()
    assert horizons == {"run-7": [1, 2], "run-8": [1, 2]}


def test_online_forecasts_between_origin_days_without_batch_ones(store: Store) -> None:
    def frame(origin: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "origin_station": ["NSK"],
                "destination_station": ["VLD"],
                "cargo_type": ["coal"],
                "origin_date": pd.to_datetime([origin]),
                "date": pd.to_datetime([origin]) + pd.Timedelta(days=3),
                "horizon": [3],
                "tonnes": [10.0],
            }
        )

    for i, origin in enumerate(["2026-01-01", "2026-01-05", "2026-01-09"]):
        store.forecasts.write(frame(origin), run_id=f"req-{i}", source="online")
    store.forecasts.write(frame("2026-01-05"), run_id="batch-1", source="batch")
    rows = store.forecasts.online_between("2026-01-02", "2026-01-09")
    assert list(rows["origin_date"].dt.strftime("%Y-%m-%d")) == ["2026-01-05", "2026-01-09"]
    assert list(rows["target_date"].dt.day) == [8, 12] and list(rows["horizon"]) == [3, 3]
    assert (
        rows["tonnes"].dtype == "float64"
        and store.forecasts.online_between("2026-02-01", "2026-02-02").empty
    )


def test_write_forecasts_names_missing_columns(store: Store) -> None:
    with pytest.raises(ValueError, match=r"missing column\(s\) \['destination_station'"):
        store.forecasts.write(pd.DataFrame({"origin_station": ["A"]}), run_id="r")
    with pytest.raises(ValueError, match="needs a run_id"):
        store.forecasts.write(pd.DataFrame(), run_id="")


def test_facts_are_idempotent(store: Store) -> None:
    assert store.facts.ingest(_facts([1, 2, 3])) == IngestResult(inserted=3)
    assert store.facts.ingest(_facts([1, 2, 3])) == IngestResult(duplicates=3)
    assert store.facts.ingest(_facts([3, 4])) == IngestResult(inserted=1, duplicates=1)
    assert store.counts()["facts"] == 4 and store.counts()["facts_revisions"] == 0


def test_concurrent_ingests_of_the_same_facts_store_each_once(store: Store) -> None:
    """Real concurrent writers (threads, each with its own pooled connection, let go at
    once by a barrier) ingest the same new facts: none fails, one inserts them, the others
    count them duplicates, the table holds each once. Five rounds, new days each."""
    writers = 6
    for round_ in range(5):
        days = [10 * round_ + d for d in range(1, 6)]
        results = run_at_once(store.facts.ingest, [(_facts(days),)] * writers)
        assert sorted(results, key=lambda r: r.inserted) == [IngestResult(duplicates=5)] * (
            writers - 1
        ) + [IngestResult(inserted=5)], results
    assert store.counts()["facts"] == 25 and store.counts()["facts_revisions"] == 0


def test_changed_facts_are_revisions_and_keep_their_history(store: Store) -> None:
    store.facts.ingest(_facts([1, 2]))
    late = _facts([2, 3], tonnes=150.0)  # day 2 corrected, day 3 new
    assert store.facts.ingest(late) == IngestResult(inserted=1, revised=1)
    again = late.assign(wagons=[5, 2])  # day 2: wagons corrected
    assert store.facts.ingest(again) == IngestResult(revised=1, duplicates=1)
    history = store.facts.history("NSK", "VLD", "coal", "2026-01-02")
    assert history["revision"].tolist() == [1, 2, 3]
    assert history["volume_tonnes"].tolist() == [102.0, 152.0, 152.0]
    assert history["wagons"].tolist() == [2, 2, 5]
    assert history["valid_to"].iloc[:2].notna().all() and pd.isna(history["valid_to"].iloc[2])
    assert (
        history["valid_from"].iloc[1:].to_numpy() >= history["valid_from"].iloc[:-1].to_numpy()
    ).all()
    current = store.facts.frame()
    assert current.loc[current["date"] == "2026-01-02", "volume_tonnes"].item() == 152.0
    assert store.counts()["facts_revisions"] == 2


def test_facts_frame_is_in_the_facts_schema_and_filters_dates(store: Store) -> None:
    store.facts.ingest(pd.concat([_facts([1, 2, 3]), _facts([2], origin="MSK")]))
    frame = store.facts.frame(start="2026-01-02", end=date(2026, 1, 2))
    FactSchema.validate(frame)
    assert list(frame.columns) == list(FACT_COLUMNS)
    assert frame["origin_station"].astype(str).tolist() == ["MSK", "NSK"]
    assert (frame["date"] == pd.Timestamp("2026-01-02")).all()


def test_duplicate_keys_in_one_ingest_are_an_error_and_store_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="share their \\(series, date\\) key"):
        store.facts.ingest(pd.concat([_facts([1, 2]), _facts([2])]))
    assert store.counts()["facts"] == 0


def test_forecasts_join_the_current_fact_of_their_day(store: Store) -> None:
    InferenceStore(store).record(
        [
            _event("request", "inf-7"),
            _event("response", "inf-7", _response_body([2, 3, 4], tonnes=100.0)),
        ]
    )
    store.facts.ingest(_facts([1, 2, 3], tonnes=90.0))
    joined = store.forecasts.with_facts()
    assert joined["date"].dt.day.tolist() == [2, 3]  # day 4 has no fact yet
    assert joined["tonnes"].tolist() == [102.0, 103.0]
    assert joined["volume_tonnes"].tolist() == [92.0, 93.0]
    assert joined["wagons"].tolist() == [2, 2] and joined["fact_wagons"].tolist() == [2, 2]
    assert joined["origin_region"].tolist() == ["West Siberian"] * 2
    assert (joined["source"] == "online").all() and (joined["source_id"] == "inf-7").all()
    store.facts.ingest(_facts([3], tonnes=200.0))  # a late correction
    joined = store.forecasts.with_facts(include_pending=True)
    assert joined["volume_tonnes"].tolist()[1] == 203.0
    assert joined["fact_revision"].tolist()[:2] == [1, 2]
    assert pd.isna(joined["volume_tonnes"].iloc[2]) and pd.isna(joined["fact_wagons"].iloc[2])
    assert len(store.forecasts.with_facts(start="2026-01-03", end="2026-01-03")) == 1
    assert len(store.forecasts.with_facts(model_name="other")) == 0
    assert len(store.forecasts.with_facts(limit=1)) == 1


def test_the_empty_join_has_the_columns(store: Store) -> None:
    joined = store.forecasts.with_facts()
    assert joined.empty and {"tonnes", "volume_tonnes", "fact_wagons", "date"} <= set(
        joined.columns
    )


def test_100k_facts_ingest_then_all_duplicates(store: Store) -> None:
    # bulk path (speed is measured in bench/collector_bench.py, never asserted in a test)
    days = pd.date_range("2025-01-01", periods=250)
    n_series = 400
    frame = pd.DataFrame(
        {
            "date": np.tile(days, n_series),
            "origin_station": np.repeat([f"S{i:03d}" for i in range(n_series)], len(days)),
            "destination_station": "VLD",
            "origin_region": "Moscow",
            "destination_region": "Far Eastern",
            "cargo_type": "coal",
            "volume_tonnes": np.arange(n_series * len(days), dtype=float),
            "wagons": 3,
        }
    )
    assert store.facts.ingest(frame).inserted == 100_000
    assert store.facts.ingest(frame).duplicates == 100_000
    assert store.counts()["facts"] == 100_000


def test_unsupported_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported store URL"):
        Store("mysql://u:p@localhost/db")


def test_in_memory_sqlite_works_across_threads() -> None:
    import threading

    s = Store("sqlite://")
    outcomes: list[str] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(InferenceStore(s).record([_event("request", "t")])[0])
    )
    thread.start()
    thread.join()
    assert outcomes == ["stored"] and s.counts()["events"] == 1


def test_a_withdrawn_fact_is_gone_for_readers_and_audited(store: Store) -> None:
    """Finding 1: there was no way to withdraw a fact."""
    store.facts.ingest(_facts([1, 2, 3]))
    store.facts.ingest(_facts([2], tonnes=150.0))  # day 2 revised once
    keys = _facts([2, 3])[["origin_station", "destination_station", "cargo_type", "date"]]
    result = store.facts.withdraw(keys, by="ops@example", reason="sensor fault", credential="t1")
    assert result == WithdrawResult(withdrawn=2)
    current = store.facts.frame()
    assert current["date"].dt.day.tolist() == [1]
    history = store.facts.history("NSK", "VLD", "coal", "2026-01-02")
    assert history["volume_tonnes"].tolist() == [102.0, 152.0]  # both values kept
    assert history["valid_to"].notna().all()  # none current
    audit = store.facts.withdrawals()
    assert audit[["withdrawn_by", "reason", "credential"]].iloc[0].tolist() == [
        "ops@example",
        "sensor fault",
        "t1",
    ]
    assert sorted(audit["revision"].tolist()) == [1, 2]
    # a repeat is idempotent; an unknown key withdraws nothing of the request
    assert store.facts.withdraw(keys, by="ops", reason="again") == WithdrawResult(already=2)
    other = _facts([1, 9])[keys.columns]
    with pytest.raises(UnknownFacts, match=r"1 fact\(s\) to withdraw .*2026-01-09"):
        store.facts.withdraw(other, by="ops", reason="typo")
    assert len(store.facts.frame()) == 1
    with pytest.raises(ValueError, match="why"):
        store.facts.withdraw(other, by="ops", reason=" ")
    # the value can come back later, as a new fact
    assert store.facts.ingest(_facts([2])).inserted == 1


def test_counts_cover_every_table_family(store: Store) -> None:
    InferenceStore(store).record(
        [_event("request", "inf-8"), _event("response", "inf-8", _response_body([2]))]
    )
    store.facts.ingest(_facts([1]))
    store.facts.ingest(_facts([1], tonnes=5.0))
    assert store.counts() == {
        "events": 2,
        "inferences": 1,
        "inferences_complete": 1,
        "forecasts": 1,
        "facts": 1,
        "facts_revisions": 1,
        "fact_withdrawals": 0,
        "monitoring_snapshots": 0,
        "retraining_decisions": 0,
    }


def test_nul_characters_in_names_are_an_error_and_store_nothing(store: Store) -> None:
    # PostgreSQL cannot hold NUL in text: refuse it on every backend, naming the column
    with pytest.raises(ValueError, match="facts column cargo_type has values with NUL"):
        store.facts.ingest(_facts([1]).assign(cargo_type="co\x00al"))
    assert store.counts()["facts"] == 0


def test_online_forecasts_carry_their_environment_and_are_read_apart(store: Store) -> None:
    """One collector takes dev's, staging's and prod's events: each forecast keeps the
    namespace KServe's logger named (ce-namespace), so each environment is monitored apart."""
    inferences = InferenceStore(store)
    for namespace, inference_id, tonnes in (
        ("freightml-dev", "inf-dev", 1.0),
        ("freightml-prod", "inf-prod", 500.0),
    ):
        response = dataclasses.replace(
            _event("response", inference_id, _response_body([2, 3], tonnes=tonnes)),
            namespace=namespace,
        )
        assert inferences.record([response]) == ["stored"]
    both = store.forecasts.online_between("2026-01-01", "2026-01-01")
    assert len(both) == 4
    prod = store.forecasts.online_between("2026-01-01", "2026-01-01", environment="freightml-prod")
    assert list(prod["tonnes"]) == [502.0, 503.0]
    joined = store.forecasts.with_facts(include_pending=True, environment="freightml-dev")
    assert list(joined["tonnes"]) == [3.0, 4.0]
    assert store.forecasts.online_between(
        "2026-01-01", "2026-01-01", environment="freightml-staging"
    ).empty
