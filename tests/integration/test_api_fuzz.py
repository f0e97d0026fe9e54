"""Schema-driven fuzzing (schemathesis) of the HTTP APIs against their OpenAPI documents.

The collector: every schemathesis check, zero failures, on SQLite and PostgreSQL. The
predictor's FreightML endpoints (V1 and V2 predict): no 5xx, and every 4xx names the
problem. Both servers run for real on 127.0.0.1; schemathesis runs as its command line
does, in a subprocess, with a bounded number of examples per operation.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import postgres_url, uvicorn_in_thread

from freightml.collector.app import create_app
from freightml.collector.store import Store

pytestmark = [pytest.mark.integration]

# Rules of POST /facts that a JSON Schema cannot state (no date after today, one value per
# series and day, columns of a CSV table) make some schema-valid bodies a documented 422.
COLLECTOR_CONFIG = """
[[operations]]
include-path = "/facts"
checks.positive_data_acceptance.expected-statuses = ["2xx", "422"]
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def collector_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'collector.db'}" if request.param == "sqlite" else postgres_url()
    store = Store(url, create=False)
    store.drop_all()
    store.create_all()
    with uvicorn_in_thread(create_app(store)) as base:
        yield base
    store.close()


def test_the_collector_keeps_its_openapi_contract(collector_url: str, tmp_path: Path) -> None:
    run = schemathesis(
        f"{collector_url}/openapi.json", tmp_path, "--checks", "all", config=COLLECTOR_CONFIG
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # every operation was exercised, and nothing was skipped for want of a schema
    assert "8 selected / 8 total" in run.stdout and "Tested: 8" in run.stdout, run.stdout
