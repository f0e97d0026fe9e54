"""The monitoring demo as a user runs it: `freightml demo --size small --monitor` (training,
requests to a real predictor whose payload events reach a real collector, batch scoring,
later facts with a level shift in one region, `monitor run`), then the stored snapshot,
the report, `monitor list`, `--fail-on-alert` and the collector's /metrics gauges."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from freightml.demo.monitor import LATER_DAYS, SHIFT_REGION
from freightml.monitoring.exporter import STATUS_VALUE
from freightml.monitoring.snapshots import SnapshotStore
from freightml.store import Store
from helpers import copy_home, free_port, freightml_process, running

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]
SHIFTED = f"origin_region={SHIFT_REGION}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, trained_home) -> dict:
    """`demo --monitor` in a copy of the session's trained home, which is what `demo --size
    small` leaves (its facts file and champion): the monitoring demo reuses that champion
    (the lifecycle test runs the demo's training from scratch)."""
    tmp = tmp_path_factory.mktemp("monitor-demo")
    copy_home(trained_home.home, tmp / "home")
    config = tmp / "freightml.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp / "home"),
                "pipeline": {"compile_dir": str(tmp / "build")},
                "collector": {"port": free_port()},
                "serving": {"http_port": free_port()},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FREIGHTML_"))}
    env["COLUMNS"] = "250"
    proc = freightml_process(
        "demo", "--size", "small", "--monitor", "--config", str(config), env=env
    )
    text = proc.stdout + proc.stderr
    assert "using the existing champion freight-volume v1" in text, text[-3000:]
    return {"tmp": tmp, "config": str(config), "env": env, "text": text}


def _snapshot(demo: dict) -> dict:
    [path] = (demo["tmp"] / "home" / "monitoring").glob("*/snapshot.json")
    return json.loads(path.read_text())


def test_the_shifted_region_is_flagged_and_no_other_segment(demo: dict) -> None:
    snapshot = _snapshot(demo)
    status = {s["segment"]: s["status"] for s in snapshot["segments"]}
    assert status[SHIFTED] != "green", status
    others = {k: v for k, v in status.items() if k not in (SHIFTED, "all")}
    assert others and set(others.values()) == {"green"}, others
    assert snapshot["window_days"] == LATER_DAYS
    assert snapshot["quality"]["forecasts_scored"] > 0
    sources = {report["source"] for report in snapshot["drift"]}
    assert sources == {"facts", "requests"}  # the requests' payload events were collected
    report = Path(demo["tmp"] / "home" / "monitoring").glob("*/report.html")
    assert SHIFT_REGION in next(report).read_text()
    assert "report: " in demo["text"] and f"{SHIFT_REGION} x" in demo["text"]


def test_snapshot_is_stored_listed_and_fails_on_alert(demo: dict) -> None:
    snapshot = _snapshot(demo)
    store = Store(f"sqlite:///{demo['tmp'] / 'home' / 'collector.db'}")
    try:
        stored = SnapshotStore(store).latest()
    finally:
        store.close()
    assert stored is not None and stored.id == snapshot["id"]
    listed = freightml_process(
        "monitor", "list", "--limit", "5", "-c", demo["config"], env=demo["env"]
    )
    assert snapshot["id"] in listed.stdout.replace("\n", "")
    again = freightml_process(
        "monitor",
        "run",
        "--as-of",
        snapshot["as_of"],
        "--window-days",
        str(LATER_DAYS),
        "--fail-on-alert",
        "--out",
        str(demo["tmp"] / "again"),
        "-c",
        demo["config"],
        env=demo["env"],
        check=False,
    )
    assert again.returncode == 3, again.stdout + again.stderr
    assert (demo["tmp"] / "again" / "report.html").is_file()


def test_collector_metrics_show_the_latest_snapshot(demo: dict) -> None:
    port = yaml.safe_load(Path(demo["config"]).read_text())["collector"]["port"]
    cmd = [sys.executable, "-m", "freightml.cli", "collector", "serve", "-c", demo["config"]]
    with running(
        cmd, f"http://127.0.0.1:{port}/healthz", demo["tmp"] / "collector.log", env=demo["env"]
    ):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    gauges = {s.labels["segment"]: s.value for s in samples if s.name == "freightml_segment_status"}
    # every segment's gauge says the stored snapshot's status (0 green, 1 amber, 2 red)
    expected = {seg["segment"]: STATUS_VALUE[seg["status"]] for seg in _snapshot(demo)["segments"]}
    assert gauges == expected
    assert gauges[SHIFTED] > 0 and set(gauges.values()) != {0}
    assert any(s.name == "freightml_feature_drift" for s in samples)
    assert any(s.name == "freightml_realised_wape" for s in samples)
