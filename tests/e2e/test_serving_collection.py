"""Serve -> request -> the collector holds request, response and forecast -> facts -> join
-> the next history refresh moves the forecast origin to the newest fact day.

Everything is real: the session's kfp.local training run registered the champion (a copy
of its home here), `freightml collector serve` and `freightml serve` run as processes on
127.0.0.1, kserve's InferenceRESTClient sends a V2 request, and `freightml facts ingest`
adds the actual volumes.
"""

import asyncio
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from freightml.domain import MODEL_NAME as NAME
from helpers import copy_home, free_port, freightml_process, running

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def stack(tmp_path: Path, trained_home):
    """A copy of the session's trained home (champion v1 trained up to ``origin``), its
    history ingested as facts, and the collector and the predictor as processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FREIGHTML_"))}
    collector_port, serving_port = free_port(), free_port()
    env.update(
        FREIGHTML_HOME=str(tmp_path / "home"),
        # tracking.uri wins over the MLFLOW_TRACKING_URI the test session sets
        FREIGHTML_TRACKING__URI=f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}",
        FREIGHTML_COLLECTOR__PORT=str(collector_port),
        FREIGHTML_SERVING__HTTP_PORT=str(serving_port),
        FREIGHTML_SERVING__HISTORY_SECONDS="1",
    )
    copy_home(trained_home.home, tmp_path / "home")
    history, later, origin = trained_home.facts, trained_home.later, trained_home.origin
    freightml_process(
        "facts", "ingest", str(tmp_path / "home" / "data" / "small-seed42.parquet"), env=env
    )

    cli_cmd = [sys.executable, "-m", "freightml.cli"]
    with ExitStack() as stack:
        stack.enter_context(
            running(
                [*cli_cmd, "collector", "serve"],
                f"http://127.0.0.1:{collector_port}/healthz",
                tmp_path / "collector.log",
                env=env,
                timeout_s=120,
            )
        )
        stack.enter_context(
            running(
                [*cli_cmd, "serve"],
                f"http://127.0.0.1:{serving_port}/v2/models/{NAME}/ready",
                tmp_path / "serve.log",
                env=env,
                timeout_s=120,
            )
        )
        yield {
            "env": env,
            "url": f"http://127.0.0.1:{serving_port}",
            "history": history,
            "later": later,
            "origin": origin,
            "tmp": tmp_path,
        }


def test_forecast_is_collected_and_joined_with_its_fact(stack) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    from freightml.collector.inferences import InferenceStore
    from freightml.store import Store

    series = (
        stack["history"]
        .groupby(["origin_station", "destination_station", "cargo_type"], observed=True)[
            "volume_tonnes"
        ]
        .sum()
        .idxmax()
    )
    dates = [str((stack["origin"] + pd.Timedelta(days=h)).date()) for h in (1, 2)]
    columns = {
        "origin_station": [series[0]] * 2,
        "destination_station": [series[1]] * 2,
        "cargo_type": [series[2]] * 2,
        "target_date": dates,
    }
    inputs = []
    for name, values in columns.items():
        tensor = InferInput(name, [2], "BYTES")
        tensor.set_data_from_numpy(np.array(values, dtype=object))
        inputs.append(tensor)

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            return await client.infer(
                stack["url"],
                InferRequest(NAME, inputs, request_id="e2e-1"),
                model_name=NAME,
                headers={"x-request-id": "e2e-1"},
            )
        finally:
            await client.close()

    response = asyncio.run(call())
    tonnes = {o.name: o for o in response.outputs}["tonnes"].data
    assert len(tonnes) == 2

    store = Store(f"sqlite:///{stack['tmp'] / 'home' / 'collector.db'}")
    deadline = time.monotonic() + 30
    inference = None
    while time.monotonic() < deadline:
        ids = InferenceStore(store).by_correlation("e2e-1")
        inference = InferenceStore(store).get(ids[0]) if ids else None
        if inference and inference["complete"] and inference.get("forecasts"):
            break
        time.sleep(0.3)
    assert inference and inference["complete"], f"request/response not collected: {inference}"
    assert len(inference["forecasts"]) == 2

    actual = stack["later"]
    mask = (
        (actual["origin_station"] == series[0])
        & (actual["destination_station"] == series[1])
        & (actual["cargo_type"] == series[2])
        & actual["date"].isin(pd.to_datetime(dates))
    )
    facts_file = stack["tmp"] / "actuals.csv"
    actual[mask].to_csv(facts_file, index=False)
    done = freightml_process("facts", "ingest", str(facts_file), env=stack["env"])
    out = done.stdout + done.stderr
    assert "2 new" in " ".join(out.split())
    joined = store.forecasts.with_facts()
    online = joined[(joined["source"] == "online") & joined["volume_tonnes"].notna()]
    assert len(online) == 2
    np.testing.assert_allclose(sorted(online["tonnes"]), sorted(tonnes))
    np.testing.assert_allclose(
        sorted(online["volume_tonnes"]), sorted(actual[mask]["volume_tonnes"])
    )

    bad = httpx.post(
        f"{stack['url']}/v1/models/{NAME}:predict",
        timeout=30,
        json={
            "instances": [
                {
                    "origin_station": "NOWHERE-1",
                    "destination_station": series[1],
                    "cargo_type": series[2],
                    "horizon": 1,
                }
            ]
        },
    )
    assert bad.status_code == 400 and "NOWHERE-1" in bad.text

    # one series' facts do not move the forecast origin of the network (a quorum of series
    # must report a day first, docs/serving.md "Limits") ...
    newest = max(dates)
    assert str(stack["origin"].date()) < newest
    body = {
        "instances": [
            {
                "origin_station": series[0],
                "destination_station": series[1],
                "cargo_type": series[2],
                "horizon": 1,
            }
        ]
    }
    time.sleep(3)  # three history refreshes (every second here)
    r = httpx.post(f"{stack['url']}/v1/models/{NAME}:predict", json=body, timeout=30)
    assert r.json()["predictions"][0]["origin_date"] == str(stack["origin"].date())
    # ... the whole network's facts of those days do, at the next refresh
    network = stack["tmp"] / "network.csv"
    actual[actual["date"].isin(pd.to_datetime(dates))].to_csv(network, index=False)
    freightml_process("facts", "ingest", str(network), env=stack["env"])
    deadline = time.monotonic() + 60
    while True:
        r = httpx.post(f"{stack['url']}/v1/models/{NAME}:predict", json=body, timeout=30)
        assert r.status_code == 200, r.text
        prediction = r.json()["predictions"][0]
        if prediction["origin_date"] == newest:
            break
        assert prediction["origin_date"] == str(stack["origin"].date()), prediction
        assert time.monotonic() < deadline, "the forecast origin did not move in 60 s"
        time.sleep(0.5)
    assert prediction["date"] == str((pd.Timestamp(newest) + pd.Timedelta(days=1)).date())
    gauge = f'freightml_serving_history_last_date_seconds{{model_name="{NAME}"}} '
    (line,) = [
        x for x in httpx.get(f"{stack['url']}/metrics").text.splitlines() if x.startswith(gauge)
    ]
    assert float(line[len(gauge) :]) == pd.Timestamp(newest).timestamp()
