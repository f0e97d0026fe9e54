"""Champion reload through the MLflow registry (temporary SQLite store), over real HTTP.

v1 is the champion when the server starts; moving the alias to v2 swaps the model while
requests keep flowing (none fails, versions never go back); a v3 whose artifact is broken
is refused: v2 keeps serving and the failure is counted; so is a v4 that loads but cannot
score; while the registry's database cannot be opened, the alias polls fail, are counted,
and v2 keeps serving; a rollback to v1 is followed.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pandas as pd
import pytest

from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.domain import MODEL_NAME as NAME
from freightml.domain import SERIES_KEY
from freightml.features.build import build_examples, build_inference_frame
from freightml.models import SKOPS_TRUSTED_TYPES, make_model
from freightml.tracking import rollback
from helpers import free_port, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = list(SERIES_KEY)


def _register(model, uri: str) -> str:
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=[],
            registered_model_name=NAME,
        )
    return info


def _metric(url: str, name: str, **labels: str) -> float:
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_champion_reload_by_alias(tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    client.create_experiment("serving", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("serving")

    facts = generate("small")
    examples = build_examples(facts, horizons_per_origin=7)
    v1_model = make_model("gbm", {"max_iter": 30}).fit(examples)
    v2_model = make_model("gbm", {"max_iter": 8, "learning_rate": 0.3}).fit(examples)
    _register(v1_model, uri)
    client.set_registered_model_alias(NAME, "champion", "1")
    save_facts(facts, tmp_path / "facts.parquet")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    # NullPool: MLflow opens the database for every call, so an outage is seen at once
    env = {
        "FREIGHTML_TRACKING__URI": uri,
        "FREIGHTML_HOME": str(tmp_path),
        "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
    }
    with running(
        [
            sys.executable,
            "-m",
            "freightml.serving",
            "--model-uri",
            f"models:/{NAME}@champion",
            "--history",
            str(tmp_path / "facts.parquet"),
            "--listen-port",
            str(port),
            "--reload-seconds",
            "0.3",
            "--history-seconds",
            "0",
        ],
        f"{url}/v1/models/{NAME}",
        log,
        env=env,
    ):
        key = tuple(facts[KEY].astype(str).iloc[0])
        body = {
            "instances": [
                {
                    "origin_station": key[0],
                    "destination_station": key[1],
                    "cargo_type": key[2],
                    "horizon": 3,
                }
            ]
        }
        frame = build_inference_frame(
            facts, facts["date"].max(), [1, 2, 3], pd.DataFrame([key], columns=KEY)
        )

        def forecast() -> dict:
            r = httpx.post(f"{url}/v1/models/{NAME}:predict", json=body, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        first = forecast()
        assert first["model_version"] == "1"
        np.testing.assert_allclose(
            [p["tonnes"] for p in first["predictions"]], v1_model.predict(frame)
        )
        assert _metric(url, "freightml_serving_model_info", version="1") == 1

        # v2 becomes champion while requests keep coming: none fails, none goes back to v1
        async def traffic(until_version: str, timeout: float = 30.0) -> list[tuple[int, str]]:
            seen: list[tuple[int, str]] = []
            deadline = time.monotonic() + timeout
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                while time.monotonic() < deadline:
                    rs = await asyncio.gather(
                        *[http.post(f"/v1/models/{NAME}:predict", json=body) for _ in range(4)]
                    )
                    seen += [(r.status_code, r.json().get("model_version", "?")) for r in rs]
                    if seen[-1][1] == until_version and len(seen) > 40:
                        break
            return seen

        _register(v2_model, uri)
        client.set_registered_model_alias(NAME, "champion", "2")
        seen = asyncio.run(traffic("2"))
        assert all(code == 200 for code, _ in seen), seen
        versions = [v for _, v in seen]
        assert versions[-1] == "2" and "1" not in versions[versions.index("2") :]
        after = forecast()
        np.testing.assert_allclose(
            [p["tonnes"] for p in after["predictions"]], v2_model.predict(frame)
        )
        assert _metric(url, "freightml_serving_model_info", version="2") == 1
        assert _metric(url, "freightml_serving_model_info", version="1") == 0
        assert _metric(url, "freightml_serving_model_reloads_total", outcome="success") == 1

        # v3's artifact is corrupt: refused, v2 keeps serving, the failure is counted
        info = _register(v1_model, uri)
        artifacts = urlparse(mlflow.get_logged_model(info.model_id).artifact_location).path
        (Path(artifacts) / "model.skops").write_bytes(b"not a model")
        client.set_registered_model_alias(NAME, "champion", "3")
        deadline = time.monotonic() + 20
        while _metric(url, "freightml_serving_model_reloads_total", outcome="failure") < 1:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert forecast()["model_version"] == "2"
        assert _metric(url, "freightml_serving_model_info", version="2") == 1
        assert "loading v3 failed, still serving v2" in log.read_text()

        # v4 loads but cannot score (it asks for a feature the history does not build): the
        # reload's scoring check refuses it, v2 keeps answering, the failure is counted
        unfit = copy.deepcopy(v1_model)
        unfit.feature_columns_ = [*unfit.feature_columns_, "no_such_feature"]
        _register(unfit, uri)
        client.set_registered_model_alias(NAME, "champion", "4")
        deadline = time.monotonic() + 20
        while _metric(url, "freightml_serving_model_reloads_total", outcome="failure") < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        still = forecast()
        assert still["model_version"] == "2"
        np.testing.assert_allclose(
            [p["tonnes"] for p in still["predictions"]], v2_model.predict(frame)
        )
        assert "loading v4 failed, still serving v2" in log.read_text()

        # the registry's database cannot be opened: polls fail and are counted, v2 serves on
        database = tmp_path / "mlflow.db"
        polls_failed = _metric(url, "freightml_serving_model_reloads_total", outcome="poll_failure")
        database.rename(tmp_path / "mlflow-away.db")
        database.mkdir()  # SQLite cannot open a directory: "unable to open database file"
        try:
            deadline = time.monotonic() + 20
            while (
                _metric(url, "freightml_serving_model_reloads_total", outcome="poll_failure")
                < polls_failed + 2
            ):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            during = forecast()
            assert during["model_version"] == "2"
            np.testing.assert_allclose(
                [p["tonnes"] for p in during["predictions"]], v2_model.predict(frame)
            )
            assert "cannot read the model version from models:/freight-volume@champion" in (
                log.read_text()
            )
        finally:
            database.rmdir()
            (tmp_path / "mlflow-away.db").rename(database)
        assert _metric(url, "freightml_serving_model_info", version="2") == 1

        # an operator rolls the champion back to v1: the running predictor follows
        rollback(client, NAME, reason="v2 forecasts look off", to="1", actor="ops-oncall")
        deadline = time.monotonic() + 20
        while forecast()["model_version"] != "1":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        np.testing.assert_allclose(
            [p["tonnes"] for p in forecast()["predictions"]], v1_model.predict(frame)
        )
        assert _metric(url, "freightml_serving_model_info", version="1") == 1
