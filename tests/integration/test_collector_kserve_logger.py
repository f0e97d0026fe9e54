"""The contract with KServe's real payload logger: a golden request and response event, as
KServe 0.20's agent sends them (tests/fixtures/kserve_logger, sources in its README), are
posted byte for byte to a live collector, stored, and joined into one inference."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from freightml.collector.app import create_app
from freightml.domain import REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE
from freightml.store import Store
from helpers import STORE_BACKENDS, fresh_store, uvicorn_in_thread

pytestmark = [pytest.mark.integration]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kserve_logger"


def _golden(kind: str) -> tuple[dict[str, str], bytes]:
    headers = json.loads((FIXTURES / f"{kind}.headers.json").read_text())
    return headers, (FIXTURES / f"{kind}.body.json").read_bytes()


@pytest.fixture(params=STORE_BACKENDS)
def collector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = fresh_store(request.param, tmp_path)
    with uvicorn_in_thread(create_app(store)) as base:
        yield base, store
    store.close()


@pytest.mark.parametrize("order", ["request first", "response first"])
def test_kserves_logger_events_are_stored_and_joined(
    collector: tuple[str, Store], order: str
) -> None:
    base, store = collector
    (req_headers, req_body), (resp_headers, resp_body) = _golden("request"), _golden("response")
    sends = [(req_headers, req_body), (resp_headers, resp_body)]
    if order == "response first":  # KServe's workers may deliver them in either order
        sends.reverse()
    for headers, body in sends:
        r = httpx.post(f"{base}/events", headers=headers, content=body, timeout=30)
        assert (r.status_code, r.json()) == (200, {"status": "stored"}), r.text
    again = httpx.post(f"{base}/events", headers=req_headers, content=req_body, timeout=30)
    assert again.json() == {"status": "duplicate"}  # a redelivery changes nothing

    inference_id = req_headers["Ce-Id"]
    found = httpx.get(f"{base}/inferences/{inference_id}", timeout=30).json()
    assert found["complete"] is True
    assert (found["inference_service"], found["namespace"], found["component"]) == (
        "freight-volume",
        "freightml",
        "predictor",
    )
    assert found["endpoint"] == "default"
    assert (found["request_time"], found["response_time"]) == (
        req_headers["Ce-Time"],
        resp_headers["Ce-Time"],
    )
    assert (found["protocol"], found["model_name"], found["model_version"]) == (
        "v1",
        "freight-volume",
        "4",
    )
    request, response = found["request"], found["response"]
    assert request["event_type"] == REQUEST_EVENT_TYPE
    assert response["event_type"] == RESPONSE_EVENT_TYPE
    assert request["body"] == json.loads(req_body)
    assert response["body"] == json.loads(resp_body)
    assert request["source"] == "http://localhost:9081/"
    assert request["content_type"] == "application/json"
    # the extensions KServe adds are kept with the event's attributes, as sent
    assert request["attributes"]["metadata"] == req_headers["Ce-Metadata"]
    assert request["attributes"]["recordedtime"] == req_headers["Ce-Recordedtime"]
    # the response's forecasts, row for row
    expected = json.loads(resp_body)["predictions"]
    assert found["n_forecasts"] == len(expected) == len(found["forecasts"])
    got = [
        (f["origin_station"], f["destination_station"], str(f["target_date"]), f["tonnes"])
        for f in found["forecasts"]
    ]
    assert got == [
        (p["origin_station"], p["destination_station"], p["date"], p["tonnes"]) for p in expected
    ]
    assert store.counts() == {
        "events": 2,
        "inferences": 1,
        "inferences_complete": 1,
        "forecasts": len(expected),
        "facts": 0,
        "facts_revisions": 0,
        "fact_withdrawals": 0,
        "monitoring_snapshots": 0,
        "retraining_decisions": 0,
    }
