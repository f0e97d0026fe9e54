"""Schema-driven fuzzing (schemathesis) of the HTTP APIs against their OpenAPI documents.

The collector: every schemathesis check, zero failures, on SQLite and PostgreSQL. The
predictor's FreightML endpoints (V1 and V2 predict): no 5xx, and every 4xx names the
problem. Both servers run for real on 127.0.0.1; schemathesis runs as its command line
does, in a subprocess, with a bounded number of examples per operation.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from freightml.collector.app import create_app
from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.features.build import build_examples
from freightml.models import make_model
from helpers import (
    STORE_BACKENDS,
    free_port,
    fresh_store,
    running,
    save_model,
    uvicorn_in_thread,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Rules of POST /facts that a JSON Schema cannot state (no date after today, one value per
# series and day; a CSV body is only "a string") make some schema-valid bodies a
# documented 422, and a string that is no CSV table a documented 400. A withdrawal of
# facts the store never held is a documented 404, and its rules a schema cannot state
# (days the store can hold, names that are not only whitespace) a documented 422.
COLLECTOR_CONFIG = """
[[operations]]
include-path = "/facts"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "422"]

[[operations]]
include-path = "/facts/withdrawals"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "422"]
"""


def schemathesis(
    schema_url: str, tmp_path: Path, *args: str, config: str = "", max_examples: int = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``schemathesis run`` against ``schema_url``; its report is the output."""
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config)
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "run",
        schema_url, "--max-examples", str(max_examples), "--workers", "1", "--no-color",
        "--report-dir", str(tmp_path / "report"), "--generation-database", "none", *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )


@pytest.fixture(params=STORE_BACKENDS)
def collector_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    store = fresh_store(request.param, tmp_path)
    with uvicorn_in_thread(create_app(store)) as base:
        yield base
    store.close()


def test_the_collector_keeps_its_openapi_contract(collector_url: str, tmp_path: Path) -> None:
    run = schemathesis(
        f"{collector_url}/openapi.json", tmp_path, "--checks", "all", config=COLLECTOR_CONFIG
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # every operation was exercised, and nothing was skipped for want of a schema
    assert "9 selected / 9 total" in run.stdout and "Tested: 9" in run.stdout, run.stdout


def test_the_collector_with_tokens_keeps_its_openapi_contract(tmp_path: Path) -> None:
    """The same contract with the gate on (issue "Trust what is collected"): the document
    declares the bearer scheme and the 401/403/413 answers; schemathesis sends the admin
    token, and its authentication checks find every guarded route refusing without it."""
    from freightml.collector.guard import Tokens

    admin = "admin-token-for-the-fuzzer-0123456789"
    store = fresh_store("sqlite", tmp_path)
    app = create_app(store, tokens=Tokens.of({"admin": [admin]}))
    with uvicorn_in_thread(app) as base:
        run = schemathesis(
            f"{base}/openapi.json",
            tmp_path,
            "--checks",
            "all",
            "-H",
            f"Authorization: Bearer {admin}",
            config=COLLECTOR_CONFIG,
        )
    store.close()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "9 selected / 9 total" in run.stdout and "Tested: 9" in run.stdout, run.stdout


# -- the predictor ------------------------------------------------------------------------

MODEL = "freight-volume"
KEY = ["origin_station", "destination_station", "cargo_type"]
PREDICTOR_EXAMPLES = 50  # per operation and mode: keeps the fuzzing itself to seconds
# A 4xx must name what was wrong: a field, an input or the body, not just "Bad Request".
NAMED = re.compile(
    r"instances|origin_station|destination_station|cargo_type|dates?\b|horizon|inputs?\b|"
    r"target_date|outputs?\b|body|JSON|datatype|shape|parameters|id\b|rows|request format",
)


def predictor_openapi(stations: list[str], cargo_types: list[str], days: list[str]) -> dict:
    """A small OpenAPI document of the predictor's FreightML endpoints (the request schema
    of freightml.serving.schema). The served stations, cargo types and days are offered
    next to arbitrary values, so the fuzzer gets past the first check now and then."""

    def known_or_any(values: list[str]) -> dict:
        return {"anyOf": [{"type": "string", "enum": values}, {"type": "string"}]}

    instance = {
        "type": "object",
        "required": ["origin_station", "destination_station", "cargo_type"],
        "properties": {
            "origin_station": known_or_any(stations),
            "destination_station": known_or_any(stations),
            "cargo_type": known_or_any(cargo_types),
            "dates": {"type": "array", "minItems": 1, "items": known_or_any(days)},
            "horizon": {"type": "integer", "minimum": 1, "maximum": 28},
        },
        "additionalProperties": False,
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {
                "type": "string",
                "enum": ["origin_station", "destination_station", "cargo_type", "target_date"],
            },
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": ["BYTES", "FP32", "INT64"]},
            "data": {"type": "array", "items": known_or_any([*stations, *cargo_types, *days])},
        },
    }
    error = {
        "description": "What was wrong",
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
            }
        },
    }
    ok = {"description": "Forecasts", "content": {"application/json": {"schema": {}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "FreightML predictor", "version": "1"},
        "paths": {
            f"/v1/models/{MODEL}:predict": {
                "post": {
                    "operationId": "v1_predict",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["instances"],
                                    "properties": {
                                        "instances": {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 5,
                                            "items": instance,
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"200": ok, "400": error},
                }
            },
            f"/v2/models/{MODEL}/infer": {
                "post": {
                    "operationId": "v2_infer",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["inputs"],
                                    "properties": {
                                        "id": {"type": "string"},
                                        "inputs": {"type": "array", "items": tensor},
                                        "outputs": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {"name": {"type": "string"}},
                                            },
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"200": ok, "400": error},
                }
            },
        },
    }


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The FreightPredictor in a real kserve ModelServer on 127.0.0.1 (a subprocess), over
    a small model trained here on synthetic facts."""

    tmp = tmp_path_factory.mktemp("predictor-fuzz")
    facts = generate("small")
    model = make_model("gbm", {"max_iter": 20}).fit(build_examples(facts, horizons_per_origin=7))
    save_model(model, tmp / "model")
    save_facts(facts, tmp / "facts.parquet")
    port = free_port()
    cmd = [
        sys.executable, "-m", "freightml.serving", "--listen-port", str(port),
        "--model-dir", str(tmp / "model"), "--model-version", "1",
        "--history", str(tmp / "facts.parquet"), "--reload-seconds", "0",
        "--history-seconds", "0",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running(cmd, f"{url}/v1/models/{MODEL}", tmp / "server.log",
                 env={"FREIGHTML_HOME": str(tmp / "home")}):  # fmt: skip
        origin = facts["date"].max()
        key = facts[KEY].astype(str).iloc[0].tolist()
        day = str((origin + pd.Timedelta(days=3)).date())
        yield {
            "series": key,
            "day": day,
            "url": url,
            "log": tmp / "server.log",
            "schema": predictor_openapi(
                sorted(
                    {
                        *facts["origin_station"].astype(str),
                        *facts["destination_station"].astype(str),
                    }
                ),
                sorted(facts["cargo_type"].astype(str).unique()),
                [str((origin + pd.Timedelta(days=h)).date()) for h in (0, 1, 2, 14, 28, 29)],
            ),
        }


@pytest.mark.parametrize("operation", ["v1_predict", "v2_infer"])
def test_the_predictor_never_fails_with_5xx_and_names_every_4xx(
    predictor: dict, operation: str
) -> None:
    import schemathesis as st
    from hypothesis import HealthCheck, given, settings

    schema = st.openapi.from_dict(predictor["schema"])
    found = schema.find_operation_by_id(operation)
    # schema-valid requests and schema-violating ones (wrong types, missing fields, ...)
    strategy = found.as_strategy(st.GenerationMode.POSITIVE) | found.as_strategy(
        st.GenerationMode.NEGATIVE
    )
    seen: dict[int, int] = {}

    @given(case=strategy)
    @settings(max_examples=PREDICTOR_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case: st.Case) -> None:
        response = case.call(base_url=predictor["url"], timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (
            f"{response.status_code} for {case.body!r}: {response.text[:500]}\n"
            + predictor["log"].read_text()[-2000:]
        )
        if response.status_code >= 400:
            answer = response.json()
            # the predictor's own errors: {"error": "..."}; KServe's request parsing (before
            # the predictor sees the request): {"detail": "..." or [{"loc": [...], ...}]}
            error = str(answer.get("error") or answer.get("detail") or "")
            assert NAMED.search(error), (
                f"{response.status_code} does not name the problem: {response.text[:300]} "
                f"(request {case.body!r})"
            )

    # the server forecasts when asked properly (so the 400s are not all it can say)
    o, d, c = predictor["series"]
    if operation == "v1_predict":
        path = f"/v1/models/{MODEL}:predict"
        body: dict = {
            "instances": [
                {
                    "origin_station": o,
                    "destination_station": d,
                    "cargo_type": c,
                    "dates": [predictor["day"]],
                }
            ]
        }
    else:
        path = f"/v2/models/{MODEL}/infer"
        values = {
            "origin_station": o,
            "destination_station": d,
            "cargo_type": c,
            "target_date": predictor["day"],
        }
        body = {
            "inputs": [
                {"name": k, "shape": [1], "datatype": "BYTES", "data": [v]}
                for k, v in values.items()
            ]
        }
    assert httpx.post(predictor["url"] + path, json=body, timeout=30).status_code == 200

    check()
    assert seen.get(400, 0) > 0, seen  # the fuzzer did reach the checks
