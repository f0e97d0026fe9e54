"""The command-line entry points: ingest a facts file, run the collector as a process."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
from cloudevents.conversion import to_binary

from freightml.collector import FactsRejected, ingest_facts_file
from freightml.collector.events import kserve_cloudevent
from freightml.collector.inferences import InferenceStore
from freightml.collector.service import store_url_for
from freightml.data.schema import MissingColumnsError
from freightml.store import Store
from helpers import facts_frame, free_port, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _facts(tonnes: float = 50.0) -> pd.DataFrame:
    return facts_frame(4, tonnes=[tonnes, tonnes + 1, tonnes + 2, tonnes + 3], wagons=1)


def test_ingest_csv_then_parquet_of_the_same_facts(tmp_path: Path) -> None:
    url = store_url_for(tmp_path / "home")
    csv, parquet = tmp_path / "facts.csv", tmp_path / "facts.parquet"
    _facts().to_csv(csv, index=False)
    _facts().assign(volume_tonnes=lambda f: f["volume_tonnes"] + [0, 0, 0, 9]).to_parquet(parquet)
    first = ingest_facts_file(csv, url)
    second = ingest_facts_file(parquet, url)
    assert (first.inserted, first.revised, first.duplicates) == (4, 0, 0)
    assert (second.inserted, second.revised, second.duplicates) == (0, 1, 3)
    assert (tmp_path / "home" / "collector.db").exists()


def test_ingest_with_a_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "theirs.csv"
    _facts().rename(columns={"volume_tonnes": "tonnes"}).to_csv(path, index=False)
    result = ingest_facts_file(
        path, f"sqlite:///{tmp_path / 'c.db'}", column_mapping={"tonnes": "volume_tonnes"}
    )
    assert result.inserted == 4


def test_a_file_failing_validation_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    _facts().assign(volume_tonnes=[1.0, -2.0, 3.0, 4.0]).to_csv(path, index=False)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with pytest.raises(FactsRejected, match="negative volume_tonnes") as info:
        ingest_facts_file(path, url)
    assert info.value.report is not None and not info.value.report.ok
    assert Store(url).counts()["facts"] == 0


def test_a_file_missing_a_column_is_rejected_by_name(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    _facts().drop(columns="wagons").to_csv(path, index=False)
    with pytest.raises(MissingColumnsError, match=r"missing required column\(s\) \['wagons'\]"):
        ingest_facts_file(path, f"sqlite:///{tmp_path / 'c.db'}")


def test_serve_collector_runs_as_a_process(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'collector.db'}"
    code = (
        "from pathlib import Path; from freightml.collector import serve_collector; "
        f"serve_collector({url!r}, port={port}, log_level='warning', home=Path({str(tmp_path)!r}))"
    )
    base = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-c", code], f"{base}/healthz", tmp_path / "collector.log"):
        headers, body = to_binary(kserve_cloudevent("request", "p-1", {"instances": []}))
        # the embedded default asks for the token it wrote on first start
        assert httpx.post(base, headers=headers, content=body).status_code == 401
        token = (tmp_path / "collector.token").read_text().strip()
        headers["authorization"] = f"Bearer {token}"
        assert httpx.post(base, headers=headers, content=body).json() == {"status": "stored"}
    assert InferenceStore(Store(url)).get("p-1") is not None
