"""The collector's batched content mode: a JSON array of structured-mode CloudEvents,
parsed by ``events_from_batch`` and stored through ``POST /events`` (real app, SQLite,
served on loopback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from freightml.collector.app import create_app
from freightml.collector.events import BadEventError, InferenceEvent, events_from_batch
from freightml.collector.inferences import InferenceStore
from freightml.domain import REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE
from helpers import STORE_BACKENDS, fresh_store, uvicorn_in_thread

pytestmark = pytest.mark.unit
BATCH = {"content-type": "application/cloudevents-batch+json"}


def _event(event_id: str, kind: str = "request", **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "http://test/",
        "type": REQUEST_EVENT_TYPE if kind == "request" else RESPONSE_EVENT_TYPE,
        "datacontenttype": "application/json",
        "inferenceservicename": "freight-volume",
        "data": {"instances": [{"n": event_id}]},
        **extra,
    }


def test_parse_gives_an_event_or_a_named_error_per_element() -> None:
    body = json.dumps(
        [
            _event("a"),
            {"id": "b", "type": "t"},
            _event("c", specversion="0.3"),
            7,
            _event("d", data=None, data_base64="eyJ4IjogMX0="),
        ]
    ).encode()
    parsed = events_from_batch(body)
    assert isinstance(parsed[0], InferenceEvent)
    assert (parsed[0].event_id, parsed[0].kind, parsed[0].inference_service) == (
        "a",
        "request",
        "freight-volume",
    )
    assert json.loads(parsed[0].body) == {"instances": [{"n": "a"}]}
    assert [str(e) for e in parsed[1:4]] == [
        "CloudEvent is missing attribute(s) source, specversion",
        "unsupported specversion '0.3' (need 1.0)",
        "not a CloudEvent: a JSON int, not an object",
    ]
    assert isinstance(parsed[4], BadEventError) and "both data and data_base64" in str(parsed[4])
    assert events_from_batch(b"[]") == []
    with pytest.raises(BadEventError, match="must be a JSON array .* got a JSON dict"):
        events_from_batch(b'{"id": "x"}')
    with pytest.raises(BadEventError, match="not valid JSON"):
        events_from_batch(b"[{")


def test_data_base64_holding_json_is_accepted() -> None:
    event = _event("b64")
    del event["data"]
    event["data_base64"] = "eyJ4IjogMX0="  # {"x": 1}
    (parsed,) = events_from_batch(json.dumps([event]).encode())
    assert parsed.data() == {"x": 1}


@pytest.fixture(params=STORE_BACKENDS)
def collector(request: pytest.FixtureRequest, tmp_path: Path):
    store = fresh_store(request.param, tmp_path)
    with uvicorn_in_thread(create_app(store)) as base:
        yield base, store
    store.close()


def test_a_batch_is_stored_and_a_resent_batch_only_counts_duplicates(collector) -> None:
    url, store = collector
    batch = [_event("i1"), _event("i1", "response", data={"predictions": []}), _event("i2")]
    first = httpx.post(f"{url}/events", content=json.dumps(batch), headers=BATCH)
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "ok", "stored": 3, "duplicates": 0}
    again = httpx.post(f"{url}/", content=json.dumps([*batch, _event("i3")]), headers=BATCH)
    assert again.json() == {"status": "ok", "stored": 1, "duplicates": 3}
    assert store.counts()["events"] == 4
    assert InferenceStore(store).get("i1")["complete"] is True
    assert InferenceStore(store).get("i2")["request"]["body"] == {"instances": [{"n": "i2"}]}


def test_an_invalid_element_is_named_and_the_valid_ones_are_stored(collector) -> None:
    url, store = collector
    batch = [
        _event("v1"),
        {"specversion": "1.0", "id": "x", "source": "s"},
        _event("v2", datacontenttype="text/plain"),
    ]
    r = httpx.post(f"{url}/events", content=json.dumps(batch), headers=BATCH)
    assert r.status_code == 400
    assert r.json() == {
        "status": "rejected",
        "stored": 1,
        "duplicates": 0,
        "rejected": 2,
        "errors": [
            {"index": 1, "error": "CloudEvent is missing attribute(s) type"},
            {
                "index": 2,
                "error": "unsupported datacontenttype 'text/plain': the collector stores JSON data",
            },
        ],
    }
    assert InferenceStore(store).get("v1")["request"] is not None
    assert store.counts()["events"] == 1


def test_a_body_that_is_not_a_batch_is_rejected(collector) -> None:
    url, store = collector
    r = httpx.post(f"{url}/events", content=b'{"id": "x"}', headers=BATCH)
    assert r.status_code == 400 and "must be a JSON array" in r.json()["error"]
    empty = httpx.post(f"{url}/events", content=b"[]", headers=BATCH)
    assert empty.json() == {"status": "ok", "stored": 0, "duplicates": 0}
    assert store.counts()["events"] == 0
