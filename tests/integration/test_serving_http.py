"""The predictor over real HTTP: a live kserve.ModelServer on 127.0.0.1 in a subprocess.

Contract tests use KServe's own InferenceRESTClient (V1 and V2, JSON and binary tensors);
bad requests go through raw httpx and must get 400 with the reason. The real collector
(its app over a SQLite store, on loopback) receives and stores the payload-log CloudEvents.
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import ExitStack
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest

from freightml.collector.app import create_app
from freightml.collector.inferences import InferenceStore
from freightml.collector.payloads import parse_forecast_body
from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.domain import MODEL_NAME as NAME
from freightml.domain import REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE, SERIES_KEY
from freightml.features.build import build_examples, build_inference_frame
from freightml.models import make_model
from freightml.store import Store
from helpers import free_port, running, save_model, uvicorn_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = list(SERIES_KEY)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):

    tmp = tmp_path_factory.mktemp("serving-http")
    facts = generate("small")
    model = make_model("gbm", {"max_iter": 30}).fit(build_examples(facts, horizons_per_origin=7))
    save_model(model, tmp / "model")
    save_facts(facts, tmp / "facts.parquet")
    store = Store(f"sqlite:///{tmp / 'collector.db'}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        collector = stack.enter_context(uvicorn_in_thread(create_app(store)))
        proc = stack.enter_context(
            running(
                [
                    sys.executable,
                    "-m",
                    "freightml.serving",
                    "--listen-port",
                    str(port),
                    "--model-dir",
                    str(tmp / "model"),
                    "--model-version",
                    "5",
                    "--history",
                    str(tmp / "facts.parquet"),
                    "--collector-url",
                    f"{collector}/events",
                    "--namespace",
                    "test-ns",
                    "--reload-seconds",
                    "0",
                    "--history-seconds",
                    "0",
                ],
                f"{url}/v1/models/{NAME}",
                tmp / "server.log",
                env={"FREIGHTML_HOME": str(tmp / "home")},
            )
        )
        yield {
            "url": url,
            "facts": facts,
            "model": model,
            "store": store,
            "proc": proc,
            "log": tmp / "server.log",
        }
    store.close()


def _collected(world: dict, correlation: str, timeout: float = 20.0) -> dict[str, Any]:
    """The inference the client called ``correlation`` (its x-request-id or ce-id) in the
    collector's store, once request and response are in."""
    deadline = time.monotonic() + timeout
    while True:
        found = None
        ids = InferenceStore(world["store"]).by_correlation(correlation)
        if ids:
            assert len(ids) == 1 and ids[0] != correlation
            found = InferenceStore(world["store"]).get(ids[0])
        if found and found["complete"]:
            return found
        assert time.monotonic() < deadline, f"inference {correlation} not collected: {found}"
        time.sleep(0.05)


def _expected(world: dict, key: tuple[str, str, str], horizons: list[int]) -> np.ndarray:
    facts = world["facts"]
    frame = build_inference_frame(
        facts, facts["date"].max(), horizons, pd.DataFrame([key], columns=KEY)
    )
    return world["model"].predict(frame)


def _keys(world: dict, n: int) -> list[tuple[str, str, str]]:
    keys = world["facts"][KEY].drop_duplicates().astype(str)
    return [tuple(k) for k in keys.head(n).itertuples(index=False)]


def _next_day(key: tuple[str, str, str]) -> dict:
    """A V1 body asking for one series' forecast one day ahead."""
    origin, destination, cargo = key
    return {
        "instances": [
            {
                "origin_station": origin,
                "destination_station": destination,
                "cargo_type": cargo,
                "horizon": 1,
            }
        ]
    }


def _dates(world: dict, horizons: list[int]) -> list[str]:
    origin = world["facts"]["date"].max()
    return [str((origin + pd.Timedelta(days=h)).date()) for h in horizons]


def _client(protocol: str):
    from kserve import InferenceRESTClient, RESTConfig

    return InferenceRESTClient(RESTConfig(protocol=protocol, retries=0, timeout=30))


def test_v1_contract_through_kserves_client(world) -> None:
    (a, b) = _keys(world, 2)
    body = {
        "instances": [
            {
                "origin_station": a[0],
                "destination_station": a[1],
                "cargo_type": a[2],
                "dates": _dates(world, [1, 14, 28]),
            },
            {"origin_station": b[0], "destination_station": b[1], "cargo_type": b[2], "horizon": 2},
        ]
    }

    async def call():
        client = _client("v1")
        try:
            return await client.infer(world["url"], body, model_name=NAME)
        finally:
            await client.close()

    out = asyncio.run(call())
    assert out["model_name"] == NAME and out["model_version"] == "5"
    preds = out["predictions"]
    assert len(preds) == 5
    assert set(preds[0]) == {
        "origin_station",
        "destination_station",
        "cargo_type",
        "origin_date",
        "date",
        "horizon",
        "tonnes",
        "wagons",
    }
    assert [p["horizon"] for p in preds] == [1, 14, 28, 1, 2]
    assert [p["date"] for p in preds[:3]] == _dates(world, [1, 14, 28])
    np.testing.assert_allclose([p["tonnes"] for p in preds[:3]], _expected(world, a, [1, 14, 28]))
    np.testing.assert_allclose([p["tonnes"] for p in preds[3:]], _expected(world, b, [1, 2]))
    assert all(isinstance(p["wagons"], int) for p in preds)


@pytest.mark.parametrize("binary_inputs", [False, True])
def test_v2_contract_through_kserves_client(world, binary_inputs: bool) -> None:
    from kserve import InferInput, InferRequest, InferResponse

    a = _keys(world, 1)[0]
    dates = _dates(world, [3, 7])
    columns = {
        "origin_station": [a[0]] * 2,
        "destination_station": [a[1]] * 2,
        "cargo_type": [a[2]] * 2,
        "target_date": dates,
    }
    inputs = []
    for name, values in columns.items():
        tensor = InferInput(name, [2], "BYTES")
        tensor.set_data_from_numpy(np.array(values, dtype=object), binary_data=binary_inputs)
        inputs.append(tensor)
    request = InferRequest(NAME, inputs, request_id="req-42")

    async def call():
        client = _client("v2")
        try:
            return await client.infer(world["url"], request, model_name=NAME)
        finally:
            await client.close()

    response = asyncio.run(call())
    assert isinstance(response, InferResponse)
    assert response.model_name == NAME and response.id == "req-42"
    out = {o.name: o for o in response.outputs}
    assert {
        "origin_station",
        "destination_station",
        "cargo_type",
        "target_date",
        "tonnes",
        "wagons",
    } <= set(out)
    assert (out["tonnes"].datatype, out["wagons"].datatype, out["target_date"].datatype) == (
        "FP64",
        "INT64",
        "BYTES",
    )
    assert out["tonnes"].shape == [2]
    assert list(out["target_date"].data) == dates
    np.testing.assert_allclose(out["tonnes"].data, _expected(world, a, [3, 7]))
    # KServe's client drops model_version when decoding (InferResponse.from_bytes): read it raw
    raw = httpx.post(
        f"{world['url']}/v2/models/{NAME}/infer",
        timeout=30,
        json={
            "inputs": [
                {"name": n, "shape": [2], "datatype": "BYTES", "data": v}
                for n, v in columns.items()
            ]
        },
    )
    assert raw.json()["model_version"] == "5"


BAD = [
    (
        "v1",
        (
            b'{"instances": [{"origin_station": "NOWHERE-1", "destination_station": "X", '
            b'"cargo_type": "coal", "horizon": 1}]}'
        ),
        "application/json",
        "unknown origin_station 'NOWHERE-1'",
    ),
    (
        "v1",
        (
            b'{"instances": [{"origin_station": "%(o)s", "destination_station": "%(d)s", '
            b'"cargo_type": "sand", "horizon": 1}]}'
        ),
        "application/json",
        "unknown cargo_type 'sand'",
    ),
    (
        "v1",
        (
            b'{"instances": [{"origin_station": "%(o)s", "destination_station": "%(d)s", '
            b'"cargo_type": "%(c)s", "dates": ["%(origin)s"]}]}'
        ),
        "application/json",
        "is not after the forecast origin",
    ),
    (
        "v1",
        (
            b'{"instances": [{"origin_station": "%(o)s", "destination_station": "%(d)s", '
            b'"cargo_type": "%(c)s", "dates": ["2099-01-01"]}]}'
        ),
        "application/json",
        "the limit is 28 days",
    ),
    (
        "v1",
        b'{"instances": [{"origin_station": "%(o)s", "cargo_type": "%(c)s", "horizon": 3}]}',
        "application/json",
        "missing the field 'destination_station'",
    ),
    (
        "v1",
        (
            b'{"instances": [{"origin_station": "%(o)s", "destination_station": "%(d)s", '
            b'"cargo_type": "%(c)s"}]}'
        ),
        "application/json",
        'exactly one of "dates"',
    ),
    ("v1", b'{"instances": [{"origin', "application/json", "Unrecognized request format"),
    ("v1", b"origin=WSB-001", "text/plain", "request body is not JSON"),
    ("v1", b'{"rows": []}', "application/json", 'has no "instances"'),
    ("v1", b'{"instances": 5}', "application/json", '"instances" must be a non-empty list'),
    (
        "v2",
        (
            b'{"inputs": [{"name": "origin_station", "shape": [1], "datatype": "BYTES", '
            b'"data": ["%(o)s"]}]}'
        ),
        "application/json",
        "missing input(s)",
    ),
    (
        "v2",
        (
            b'{"inputs": [{"name": "origin_station", "shape": [1], "datatype": "FP32", '
            b'"data": [1.0]}]}'
        ),
        "application/json",
        "has datatype FP32; expected BYTES",
    ),
    ("v2", b'{"inputz": []}', "application/json", "inputs: Field required"),
    ("v2", b'{"inputs": [', "application/json", "request body is not JSON"),
    ("v2", b"[1, 2, 3]", "application/json", "invalid V2 inference request"),
]


@pytest.mark.parametrize(("protocol", "raw", "content_type", "message"), BAD)
def test_bad_requests_get_400_naming_the_problem(
    world, protocol, raw, content_type, message
) -> None:
    a = _keys(world, 1)[0]
    origin = str(world["facts"]["date"].max().date())
    body = (
        raw
        % {
            b"o": a[0].encode(),
            b"d": a[1].encode(),
            b"c": a[2].encode(),
            b"origin": origin.encode(),
        }
        if b"%(" in raw
        else raw
    )
    path = f"/v1/models/{NAME}:predict" if protocol == "v1" else f"/v2/models/{NAME}/infer"
    r = httpx.post(
        world["url"] + path, content=body, headers={"content-type": content_type}, timeout=30
    )
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_unknown_model_is_404_and_health_routes_answer(world) -> None:
    url = world["url"]
    assert httpx.post(f"{url}/v1/models/other:predict", json={"instances": []}).status_code == 404
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v2/health/live").status_code == 200
    meta = httpx.get(f"{url}/v2/models/{NAME}").json()
    assert [i["name"] for i in meta["inputs"]] == [*KEY, "target_date"]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]}["tonnes"] == "FP64"


def test_concurrent_requests_are_merged_and_all_answered(world) -> None:
    keys = _keys(world, 16)

    def body(k):
        return {
            "instances": [
                {
                    "origin_station": k[0],
                    "destination_station": k[1],
                    "cargo_type": k[2],
                    "horizon": 3,
                }
            ]
        }

    async def burst():
        async with httpx.AsyncClient(base_url=world["url"], timeout=30) as client:
            return await asyncio.gather(
                *[
                    client.post(f"/v1/models/{NAME}:predict", json=body(keys[i % 16]))
                    for i in range(96)
                ]
            )

    def batches() -> tuple[float, float]:
        text = httpx.get(world["url"] + "/metrics").text
        count = total = 0.0
        for line in text.splitlines():
            if line.startswith("freightml_serving_batch_requests_count"):
                count = float(line.rsplit(" ", 1)[1])
            if line.startswith("freightml_serving_batch_requests_sum"):
                total = float(line.rsplit(" ", 1)[1])
        return count, total

    before = batches()
    responses = asyncio.run(burst())
    after = batches()
    assert all(r.status_code == 200 for r in responses)
    for i, r in enumerate(responses):
        assert r.json()["predictions"][0]["origin_station"] == keys[i % 16][0]
    calls, merged = after[0] - before[0], after[1] - before[1]
    assert merged == 96 and calls < 96  # some requests shared a model call


def test_metrics_beside_kserves(world) -> None:
    a = _keys(world, 1)[0]
    httpx.post(
        f"{world['url']}/v1/models/{NAME}:predict",
        timeout=30,
        json=_next_day(a),
    )
    bad = httpx.post(f"{world['url']}/v1/models/{NAME}:predict", timeout=30, json={"rows": []})
    assert bad.status_code == 400
    text = httpx.get(world["url"] + "/metrics").text
    assert 'freightml_serving_model_info{model_name="freight-volume",version="5"} 1.0' in text
    assert (
        'freightml_serving_requests_total{model_name="freight-volume",outcome="ok",'
        'protocol="v1"}' in text
    )
    assert 'outcome="bad_request"' in text
    assert "freightml_serving_forecasts_total" in text
    assert "freightml_serving_history_last_date_seconds" in text
    assert "request_predict_seconds_bucket" in text  # KServe's own histograms


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(httpx.get(url + "/metrics").text)
        for s in family.samples
    }


def test_inference_calls_counted_by_protocol_and_status(world) -> None:
    url, a = world["url"], _keys(world, 1)[0]

    def calls(protocol: str, code: str) -> float:
        labels = (("code", code), ("model_name", NAME), ("protocol", protocol))
        return scraped.get(("freightml_serving_http_request_duration_seconds_count", labels), 0.0)

    cases = [("v1", "200"), ("v1", "400"), ("v1", "404"), ("v2", "200"), ("v2", "400")]
    scraped = _scrape(url)
    before = {c: calls(*c) for c in cases}
    v2 = {
        "inputs": [
            {"name": n, "shape": [1], "datatype": "BYTES", "data": [v]}
            for n, v in zip([*KEY, "target_date"], [*a, _dates(world, [2])[0]], strict=True)
        ]
    }
    answers = [
        httpx.post(f"{url}/v1/models/{NAME}:predict", json=_next_day(a), timeout=30),
        httpx.post(f"{url}/v1/models/{NAME}:predict", json=_next_day(a), timeout=30),
        httpx.post(f"{url}/v1/models/{NAME}:predict", json={"instances": [{}]}, timeout=30),
        httpx.post(f"{url}/v1/models/nope:predict", json=_next_day(a), timeout=30),
        httpx.post(f"{url}/v2/models/{NAME}/infer", json=v2, timeout=30),
        httpx.post(f"{url}/v2/models/{NAME}/infer", json={"inputs": 1}, timeout=30),
        httpx.get(f"{url}/v2/health/ready", timeout=30),  # not an inference call
    ]
    assert [r.status_code for r in answers] == [200, 200, 400, 404, 200, 400, 200]
    scraped = _scrape(url)
    assert {c: calls(*c) - before[c] for c in cases} == {
        ("v1", "200"): 2,
        ("v1", "400"): 1,
        ("v1", "404"): 1,
        ("v2", "200"): 1,
        ("v2", "400"): 1,
    }
    protocols = {
        dict(labels)["protocol"]
        for name, labels in scraped
        if name == "freightml_serving_http_request_duration_seconds_count"
    }
    assert protocols == {"v1", "v2"}  # health, metadata and /metrics calls are not counted


def test_history_age_is_computed_at_scrape_time(world) -> None:
    key = (("model_name", NAME),)
    before = time.time()
    scraped = _scrape(world["url"])
    after = time.time()
    last = scraped[("freightml_serving_history_last_date_seconds", key)]
    age = scraped[("freightml_serving_history_age_seconds", key)]
    assert last == pd.Timestamp(world["facts"]["date"].max()).timestamp()
    assert before <= last + age <= after  # now minus the last fact date, not a stored figure


def test_cloudevents_reach_the_collector(world) -> None:
    a = _keys(world, 1)[0]
    r = httpx.post(
        f"{world['url']}/v1/models/{NAME}:predict",
        timeout=30,
        headers={"ce-id": "inference-77"},
        json={
            "instances": [
                {
                    "origin_station": a[0],
                    "destination_station": a[1],
                    "cargo_type": a[2],
                    "horizon": 2,
                }
            ]
        },
    )
    assert r.status_code == 200
    found = _collected(world, "inference-77")
    assert r.headers["x-inference-id"] == found["inference_id"]  # the answer names it
    assert (found["request"]["event_type"], found["response"]["event_type"]) == (
        REQUEST_EVENT_TYPE,
        RESPONSE_EVENT_TYPE,
    )
    attrs = found["response"]["attributes"]
    assert attrs["specversion"] == "1.0"
    assert attrs["inferenceservicename"] == NAME and attrs["component"] == "predictor"
    assert attrs["namespace"] == "test-ns" and attrs["endpoint"] == "default"
    assert attrs["source"].startswith("http://localhost:")
    assert found["response"]["body"] == r.json()
    assert found["request"]["body"]["instances"][0]["horizon"] == 2
    assert (found["model_version"], found["n_forecasts"]) == ("5", 2)
    np.testing.assert_allclose(
        [f["tonnes"] for f in found["forecasts"]], [p["tonnes"] for p in r.json()["predictions"]]
    )


def test_v2_cloudevents_parse_as_forecasts(world) -> None:
    a = _keys(world, 1)[0]
    dates = _dates(world, [1, 2, 3])
    r = httpx.post(
        f"{world['url']}/v2/models/{NAME}/infer",
        timeout=30,
        headers={"ce-id": "inference-v2"},
        json={
            "inputs": [
                {"name": n, "shape": [3], "datatype": "BYTES", "data": v}
                for n, v in {
                    "origin_station": [a[0]] * 3,
                    "destination_station": [a[1]] * 3,
                    "cargo_type": [a[2]] * 3,
                    "target_date": dates,
                }.items()
            ]
        },
    )
    assert r.status_code == 200
    found = _collected(world, "inference-v2")
    assert found["request"]["body"]["inputs"][3]["data"] == dates
    body = parse_forecast_body(found["response"]["body"])
    assert body.model_version == "5"
    assert [str(row["target_date"]) for row in body.rows] == dates
    assert [str(f["target_date"]) for f in found["forecasts"]] == dates


@pytest.mark.parametrize("action", ["unload", "load"])
def test_model_repository_load_and_unload_are_refused(world, action: str) -> None:
    r = httpx.post(f"{world['url']}/v2/repository/models/{NAME}/{action}", timeout=30)
    assert r.status_code == 403
    assert r.json()["error"].startswith(f"{action}ing of model '{NAME}' is refused")
    assert httpx.get(f"{world['url']}/v2/models/{NAME}/ready").status_code == 200
    assert httpx.get(f"{world['url']}/v2/health/ready").json() == {"ready": True}
    a = _keys(world, 1)[0]
    out = httpx.post(
        f"{world['url']}/v1/models/{NAME}:predict",
        timeout=30,
        json=_next_day(a),
    )
    assert out.status_code == 200
    np.testing.assert_allclose(
        [p["tonnes"] for p in out.json()["predictions"]], _expected(world, a, [1])
    )


def test_bad_requests_are_logged_in_one_line(world) -> None:
    httpx.post(
        f"{world['url']}/v1/models/{NAME}:predict",
        timeout=30,
        json=_next_day(("LOGGED-1", "X", "coal")),
    )
    deadline = time.monotonic() + 5
    while "LOGGED-1" not in world["log"].read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = world["log"].read_text()
    assert "bad request (400): instances[0]: unknown origin_station 'LOGGED-1'" in text
    assert "Traceback" not in text


def test_listens_on_loopback_only(world) -> None:
    port = int(world["url"].rsplit(":", 1)[1])
    proc = psutil.Process(world["proc"].pid)
    connections = getattr(proc, "net_connections", None) or proc.connections  # psutil < 6
    listening = [
        c.laddr.ip
        for c in connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    assert listening == ["127.0.0.1"]


def test_sigterm_drains_the_payload_log_into_the_collector(world, tmp_path) -> None:
    """Events still queued when the server is told to stop are posted before it exits."""
    store = Store(f"sqlite:///{tmp_path / 'collector.db'}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    facts_dir = world["log"].parent
    with uvicorn_in_thread(create_app(store)) as collector:
        with running(
            [
                sys.executable,
                "-m",
                "freightml.serving",
                "--listen-port",
                str(port),
                "--model-dir",
                str(facts_dir / "model"),
                "--model-version",
                "5",
                "--history",
                str(facts_dir / "facts.parquet"),
                "--collector-url",
                f"{collector}/events",
                "--reload-seconds",
                "0",
                "--history-seconds",
                "0",
            ],
            f"{url}/v1/models/{NAME}",
            tmp_path / "server.log",
        ) as proc:
            a = _keys(world, 1)[0]
            body = _next_day(a)
            for i in range(30):
                r = httpx.post(
                    f"{url}/v1/models/{NAME}:predict",
                    json=body,
                    timeout=30,
                    headers={"ce-id": f"last-{i}"},
                )
                assert r.status_code == 200
            proc.terminate()  # at once: most events are still waiting for their batch
            assert proc.wait(60) == 0, (tmp_path / "server.log").read_text()[-3000:]
        inferences = InferenceStore(store)
        ids = {inferences.by_correlation(f"last-{i}")[0] for i in range(30)}
        complete = {i for i in ids if (inferences.get(i) or {}).get("complete")}
        assert len(complete) == 30 and complete == ids
        assert store.counts()["events"] == 60
    store.close()


def test_bodies_over_the_limit_are_refused_before_they_are_read(world) -> None:
    """Finding 4: the predictor read 100 MB bodies before answering 400."""
    url = f"{world['url']}/v1/models/{NAME}:predict"
    big = b'{"instances": [' + b" " * (9 * 1024 * 1024) + b"]}"
    r = httpx.post(url, content=big, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and "8,388,608-byte limit" in r.json()["error"]
    assert "serving.max_request_bytes" in r.json()["error"]

    def chunks():  # no Content-Length: refused while reading
        yield b'{"instances": ['
        for _ in range(10):
            yield b" " * (1024 * 1024)
        yield b"]}"

    r = httpx.post(url, content=chunks(), headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413
    a = _keys(world, 1)[0]
    ok = httpx.post(url, json={"instances": [dict(zip(KEY, a, strict=True)) | {"horizon": 1}]})
    assert ok.status_code == 200
    text = httpx.get(f"{world['url']}/metrics").text
    assert f'freightml_serving_too_large_requests_total{{model_name="{NAME}"}} 2.0' in text
