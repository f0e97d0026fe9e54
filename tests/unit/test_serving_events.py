"""CloudEventSender against the real collector app (SQLite store) served on loopback:
batching, the bounded queue, retries through a database outage, drain on close, and
exactly-once storage under concurrency. No mocked transport anywhere."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from freightml.collector.app import create_app
from freightml.collector.inferences import InferenceStore
from freightml.domain import REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE
from freightml.serving.events import CloudEventSender
from freightml.serving.spool import EventSpool
from freightml.store import Store
from helpers import postgres_url, uvicorn_in_thread

pytestmark = pytest.mark.unit


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[dict[str, Any]]:
    db = tmp_path / "collector.db"
    store = Store(f"sqlite:///{db}")
    with uvicorn_in_thread(create_app(store)) as url:
        yield {"url": url, "events_url": f"{url}/events", "store": store, "db": db}
    store.close()


def _count(service: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "freightml_serving_cloudevents_total", {"model_name": service, "outcome": outcome}
        )
        or 0.0
    )


def _posts(url: str, code: str) -> float:
    """Requests the collector answered on POST /events with ``code`` (its own histogram)."""
    prefix = (
        f'freightml_collector_request_duration_seconds_count{{code="{code}",method="POST",'
        'route="/events"} '
    )
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def _stored(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(
                "SELECT event_id, event_type FROM inference_events ORDER BY event_id, event_type"
            )
        ]


def _response(i: int) -> dict[str, Any]:
    return {
        "model_name": "freight-volume",
        "model_version": "3",
        "predictions": [
            {
                "origin_station": "NSK",
                "destination_station": "VLD",
                "cargo_type": "coal",
                "origin_date": "2025-03-01",
                "date": "2025-03-02",
                "horizon": 1,
                "tonnes": 100.0 + i,
                "wagons": 2,
            }
        ],
    }


def _request(i: int) -> dict[str, Any]:
    return {
        "instances": [
            {
                "origin_station": "NSK",
                "destination_station": "VLD",
                "cargo_type": "coal",
                "horizon": 1,
                "n": i,
            }
        ]
    }


def test_events_travel_in_batches_with_kserves_attributes(collector) -> None:
    service = "test-batching"
    sender = CloudEventSender(
        collector["events_url"],
        inference_service=service,
        namespace="ns1",
        source="http://me/",
        max_batch=10,
    )
    before = _posts(collector["url"], "200")

    async def go() -> None:
        for i in range(25):  # all queued before the sender task first runs
            sender.send(f"inf-{i:02d}", _request(i), lambda i=i: _response(i))
        await sender.aclose()

    asyncio.run(go())
    assert _posts(collector["url"], "200") - before == 5  # 50 events, 10 per batch
    assert _count(service, "sent") == 50
    assert _stored(collector["store"]) == sorted(
        (f"inf-{i:02d}", t) for i in range(25) for t in (REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE)
    )
    found = InferenceStore(collector["store"]).get("inf-07")
    assert found["complete"] and [f["tonnes"] for f in found["forecasts"]] == [107.0]
    request = found["request"]
    assert request["body"] == _request(7)
    assert found["response"]["body"] == _response(7)
    attrs = request["attributes"]
    assert (
        attrs["specversion"],
        attrs["source"],
        attrs["inferenceservicename"],
        attrs["namespace"],
        attrs["component"],
        attrs["endpoint"],
    ) == ("1.0", "http://me/", service, "ns1", "predictor", "default")
    assert attrs["time"].endswith("Z") and attrs["datacontenttype"] == "application/json"


def test_a_full_queue_drops_and_counts(collector) -> None:
    service = "test-full-queue"
    sender = CloudEventSender(collector["events_url"], inference_service=service, max_pending=3)

    async def go() -> None:
        for i in range(5):
            sender.send(f"q-{i}", _request(i), _response(i))
        sender.send("q-req-only", _request(9), None)  # still full: 1 more event dropped
        await sender.aclose()

    asyncio.run(go())
    assert _count(service, "dropped") == 2 * 2 + 1
    assert _count(service, "sent") == 6
    assert {e for e, _ in _stored(collector["store"])} == {"q-0", "q-1", "q-2"}


def test_a_database_outage_is_retried_until_every_event_is_stored(collector) -> None:
    service = "test-outage"
    sender = CloudEventSender(
        collector["events_url"],
        inference_service=service,
        backoff_s=0.05,
        max_backoff_s=0.2,
        max_attempts=1000,
    )
    db = sqlite3.connect(collector["db"], isolation_level=None)
    # the outage: the table is gone. The collector answers 500 for that (503 is for a
    # database it cannot reach, tests/integration/test_collector_outage.py); the sender
    # retries any 5xx alike.
    db.execute("ALTER TABLE inference_events RENAME TO inference_events_away")
    refused_before = _posts(collector["url"], "500") + _posts(collector["url"], "503")

    async def go() -> None:
        for i in range(3):
            sender.send(f"r-{i}", _request(i), _response(i))
        deadline = time.monotonic() + 30
        while _count(service, "retried") == 0:
            assert time.monotonic() < deadline, "the sender never retried"
            await asyncio.sleep(0.05)
        db.execute("ALTER TABLE inference_events_away RENAME TO inference_events")  # back
        await sender.aclose()

    asyncio.run(go())
    db.close()
    refused = _posts(collector["url"], "500") + _posts(collector["url"], "503")
    assert refused > refused_before  # the collector refused the batch at least once
    assert _count(service, "retried") >= 6  # the whole batch, at least once
    assert _count(service, "sent") == 6 and _count(service, "dropped") == 0
    assert _stored(collector["store"]) == sorted(
        (f"r-{i}", t) for i in range(3) for t in (REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE)
    )


def test_exhausted_retries_drop_and_count(tmp_path: Path) -> None:
    service = "test-exhausted"
    with uvicorn_in_thread(create_app(Store(f"sqlite:///{tmp_path / 'c.db'}"))) as url:
        pass  # the collector is gone: nothing listens on its port any more
    sender = CloudEventSender(
        f"{url}/events", inference_service=service, backoff_s=0.01, max_attempts=3
    )

    async def go() -> None:
        sender.send("gone-1", _request(1), _response(1))
        await sender.aclose()

    asyncio.run(go())
    assert (_count(service, "retried"), _count(service, "dropped"), _count(service, "sent")) == (
        4,
        2,
        0,
    )  # 2 events retried twice, then dropped


def _order(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT event_id FROM inference_events WHERE event_type = ? ORDER BY id",
            (REQUEST_EVENT_TYPE,),
        )
        return [r[0] for r in rows]


def test_an_outage_past_the_retry_budget_is_spooled_and_replayed_in_order(
    tmp_path: Path,
) -> None:
    """Finding 8: events were dropped once the collector was down longer than the sender's
    retry budget. Here the budget is 2 attempts; the outage lasts until every event has
    been spooled, and the collector comes back on the same port."""
    service = "test-spool"
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    with uvicorn_in_thread(create_app(store)) as url:
        pass  # the collector is down: nothing listens on its port
    port = int(url.rsplit(":", 1)[1])
    spool = EventSpool(tmp_path / "spool", name=service)
    sender = CloudEventSender(
        f"{url}/events",
        inference_service=service,
        backoff_s=0.01,
        max_backoff_s=0.05,
        max_attempts=2,
        max_batch=4,
        linger_s=0.01,
        spool=spool,
    )

    async def go() -> None:
        for i in range(12):
            sender.send(f"s-{i:02d}", _request(i), _response(i))
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 30
        while _count(service, "spooled") < 24:
            assert time.monotonic() < deadline, "the events were not spooled"
            await asyncio.sleep(0.02)
        assert spool.events == 24 and len(spool) >= 6
        assert _stored(store) == []
        with uvicorn_in_thread(create_app(store), port=port):
            while len(spool):
                assert time.monotonic() < deadline + 30, "the spool was not replayed"
                await asyncio.sleep(0.05)
            sender.send("s-12", _request(12), _response(12))  # live again, after the spool
            await sender.aclose()

    asyncio.run(go())
    assert _count(service, "dropped") == 0 and _count(service, "sent") == 26
    assert _order(store) == [f"s-{i:02d}" for i in range(13)]  # in the order sent
    assert not list((tmp_path / "spool").iterdir())
    store.close()


def test_the_spool_survives_a_restart_and_refuses_what_does_not_fit(
    collector, tmp_path: Path
) -> None:
    service = "test-spool-restart"
    spool = EventSpool(tmp_path / "spool", max_bytes=2000, name=service)
    assert spool.put(b'[{"x": 1}]', 1) and spool.put(b'[{"x": 2}]', 1)
    assert not spool.put(b"x" * 2000, 5)  # over the limit: refused, nothing written
    (tmp_path / "spool" / "0000000000000009-1.json.tmp").write_bytes(b"[")  # a cut write
    again = EventSpool(tmp_path / "spool", max_bytes=2000, name=service)
    assert (len(again), again.events) == (2, 2)
    assert again.oldest() == (b'[{"x": 1}]', 1)
    assert not (tmp_path / "spool" / "0000000000000009-1.json.tmp").exists()
    again.pop()
    assert again.put(b'[{"x": 3}]', 1)
    names = sorted(p.name for p in (tmp_path / "spool").iterdir())
    assert names == ["0000000000000001-1.json", "0000000000000002-1.json"]
    gauge = REGISTRY.get_sample_value("freightml_serving_spool_bytes", {"model_name": service})
    assert gauge == again.bytes == 20


def test_close_drains_the_queue(collector) -> None:
    service = "test-drain"
    sender = CloudEventSender(
        collector["events_url"], inference_service=service, max_batch=7, linger_s=0.5
    )

    async def go() -> None:
        for i in range(40):
            sender.send(f"d-{i}", _request(i), _response(i))
        await sender.aclose()  # immediately: nothing posted yet, all queued
        sender.send("after-close", _request(0), _response(0))  # refused once closing

    asyncio.run(go())
    assert len(_stored(collector["store"])) == 80
    assert _count(service, "sent") == 80 and _count(service, "dropped") == 2


@pytest.mark.postgres
def test_events_from_concurrent_requests_are_stored_exactly_once_on_postgresql() -> None:
    store = Store(postgres_url(), create=False)
    store.drop_all()
    store.create_all()
    try:
        with uvicorn_in_thread(create_app(store)) as url:
            _concurrent_senders({"events_url": f"{url}/events", "store": store}, "test-pg")
    finally:
        store.close()


def test_events_from_concurrent_requests_are_stored_exactly_once(collector) -> None:
    _concurrent_senders(collector, "test-concurrent")


def _concurrent_senders(collector: dict[str, Any], service: str) -> None:
    sender = CloudEventSender(
        collector["events_url"], inference_service=service, max_batch=16, linger_s=0.001
    )
    n_clients, per_client = 20, 25

    async def client(c: int) -> None:
        for i in range(per_client):
            sender.send(f"c{c:02d}-{i:02d}", _request(i), _response(i))
            await asyncio.sleep(0)  # other requests interleave, batches form and go out

    async def go() -> None:
        await asyncio.gather(*(client(c) for c in range(n_clients)))
        await sender.aclose()

    asyncio.run(go())
    stored = _stored(collector["store"])
    assert len(stored) == len(set(stored)) == 2 * n_clients * per_client
    assert _count(service, "sent") == 2 * n_clients * per_client
    counts = collector["store"].counts()
    assert counts["inferences_complete"] == n_clients * per_client
    assert counts["forecasts"] == n_clients * per_client
