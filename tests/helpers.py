"""Helpers shared by the test modules: ports, servers on loopback, small facts frames and
the switch that turns a skip of something CI must run into a failure."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

PG_ENV = "FREIGHTML_TEST_POSTGRES_URL"
# Set by CI (.ci/run): a test that would skip for want of PostgreSQL, Chromium or the
# like fails instead, so a clean CI run proves that everything ran.
REQUIRE_ALL_ENV = "FREIGHTML_TEST_REQUIRE_ALL"


def skip_or_fail(reason: str) -> None:
    """Skip the calling test locally; fail it when CI asked for every test to run."""
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ALL_ENV}=1: CI must run this test)")
    pytest.skip(reason)


def postgres_url() -> str:
    """The test PostgreSQL's SQLAlchemy URL, or skip (fail in CI) saying how to get one."""
    url = os.environ.get(PG_ENV, "")
    if not url:
        skip_or_fail(f"{PG_ENV} is not set (run .ci/postgres.sh and export it)")
    return url


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_in_thread(app: Any, *, startup_s: float = 20.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yield its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_s
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during startup"
        assert time.monotonic() < deadline, f"uvicorn did not start in {startup_s} s"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def wait_http(
    proc: subprocess.Popen, url: str, log: Path | None = None, timeout_s: float = 90.0
) -> None:
    """Wait until ``url`` answers 200, failing early (with the log) if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(
                f"process exited with {proc.returncode} before {url} answered:\n{tail}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s:\n{tail}")


@contextmanager
def running(
    cmd: Sequence[str],
    ready_url: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 90.0,
) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` (output to ``log``), wait for ``ready_url``, stop it afterwards."""
    proc = subprocess.Popen(
        list(cmd), env={**os.environ, **(env or {})}, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    try:
        wait_http(proc, ready_url, log, timeout_s)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def facts_frame(
    days: Sequence[int] | int = 4,
    *,
    start: str = "2025-03-01",
    tonnes: float | Sequence[float] = 100.0,
    origin: str = "NSK",
    destination: str = "VLD",
    origin_region: str = "West Siberian",
    destination_region: str = "Far Eastern",
    cargo: str = "coal",
    wagons: int | Sequence[int] = 2,
) -> pd.DataFrame:
    """One series' facts: ``days`` is a count of consecutive days or day offsets from
    ``start``; ``tonnes`` one value for every day or one per day."""
    offsets = list(range(days)) if isinstance(days, int) else list(days)
    dates = pd.Timestamp(start) + pd.to_timedelta(offsets, unit="D")
    volume = [float(tonnes)] * len(offsets) if isinstance(tonnes, int | float) else list(tonnes)
    return pd.DataFrame(
        {
            "date": dates,
            "origin_station": origin,
            "destination_station": destination,
            "origin_region": origin_region,
            "destination_region": destination_region,
            "cargo_type": cargo,
            "volume_tonnes": volume,
            "wagons": wagons if isinstance(wagons, int) else list(wagons),
        }
    )


def facts_records(days: Sequence[int] | int = 4, **kw: Any) -> list[dict[str, Any]]:
    """``facts_frame`` as JSON-able records (dates as ISO strings), for HTTP bodies."""
    frame = facts_frame(days, **kw)
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    return frame.to_dict("records")


# The collector store's backends, for ``@pytest.fixture(params=STORE_BACKENDS)``.
STORE_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def fresh_store(backend: str, tmp_path: Path) -> Any:
    """A collector Store with empty tables: a SQLite file in ``tmp_path``, or the test
    PostgreSQL (``postgres_url``) with its tables dropped and created again."""
    from freightml.collector.store import Store

    url = f"sqlite:///{tmp_path / 'collector.db'}" if backend == "sqlite" else postgres_url()
    store = Store(url, create=False)
    store.drop_all()
    store.create_all()
    return store


def save_model(model: Any, path: Path) -> Path:
    """Save a fitted FreightML model as an MLflow sklearn model (skops), as training does."""
    import mlflow.sklearn

    from freightml.models import SKOPS_TRUSTED_TYPES

    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=[],
    )
    return path


def cli(*args: str, code: int = 0) -> Any:
    """``freightml ARGS`` through Typer's real parser (CliRunner); asserts the exit code and
    returns the result (``.output``, ``.stdout``)."""
    from typer.testing import CliRunner

    from freightml.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (
        f"freightml {' '.join(args)} -> {result.exit_code}:\n{result.output}"
    )
    return result


def words(text: str) -> str:
    """Rich wraps long lines at the console width: compare with whitespace collapsed."""
    return " ".join(text.split())


REPO = Path(__file__).resolve().parents[1]


def freightml_process(
    *args: str, env: dict[str, str], check: bool = True, timeout_s: float = 900
) -> subprocess.CompletedProcess:
    """``freightml ARGS`` as its own process (``python -m freightml.cli``) from the repository
    root; with ``check``, a non-zero exit fails the test with both outputs."""
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "freightml.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"freightml {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def sample_snapshot(**overrides: Any) -> Any:
    """A small monitoring Snapshot with known content: ``all`` and region ``Восток`` green,
    region ``Запад`` red (input drift and degraded quality), one stale series in three.

    For tests of the views of a snapshot (report, gauges, store); override any field."""
    from datetime import UTC, date, datetime, timedelta

    from freightml.monitoring.config import MonitoringConfig
    from freightml.monitoring.types import (
        Alert,
        DriftReport,
        DriftResult,
        Freshness,
        QualityCell,
        QualityDay,
        QualityReport,
        SegmentStatus,
        SeriesTrace,
        Snapshot,
    )

    as_of = date(2026, 3, 31)
    start = as_of - timedelta(days=6)
    east, west = "origin_region=Восток", "origin_region=Запад"

    def drift(feature: str, segment: str, statistic: str, value: float, kind: str = "numeric"):
        threshold = 0.05 if statistic == "unseen_share" else 0.1
        return DriftResult(
            feature=feature,
            kind=kind,
            role="input" if feature != "volume_tonnes" else "target",
            segment=segment,
            statistic=statistic,
            value=value,
            threshold=threshold,
            drifted=value > threshold,
            n_reference=10_000,
            n_current=700,
        )

    results = [
        drift(f, s, st, v)
        for s, scale in (("all", 0.3), (east, 0.1), (west, 1.0))
        for f, base in (("mean_7_ratio", 0.12), ("log_scale", 0.05), ("volume_tonnes", 0.2))
        for st, v in (("psi", base * scale * 2), ("wasserstein", base * scale))
    ] + [
        drift("origin_station", s, "unseen_share", v, "categorical")
        for s, v in (("all", 0.01), (east, 0.0), (west, 0.02))
    ]
    report = DriftReport(
        source="facts",
        window_start=start,
        window_end=as_of,
        rows=4_200,
        results=results,
        drifted_segments=[west],
        unsupported_segments=["origin_region=Север"],
    )
    days = [start + timedelta(days=i) for i in range(7)]
    cells = [
        QualityCell(
            segment=s,
            horizon_bucket=b,
            n=300,
            actual_tonnes=90_000.0,
            wape=w,
            mae=120.0,
            bias=0.01,
            expected_wape=0.2,
            degraded=w > 0.25,
        )
        for s, w in (("all", 0.24), (east, 0.19), (west, 0.41))
        for b in ("1-7", "8-14", "15-28")
    ]
    daily = [
        QualityDay(
            date=d,
            segment=s,
            n=40,
            wape=w + 0.01 * i,
            mae=100.0,
            bias=0.0,
            expected_wape=0.2,
            exceeds=w + 0.01 * i > 0.25,
        )
        for i, d in enumerate(days)
        for s, w in (("all", 0.2), (east, 0.18), (west, 0.35))
    ]
    trace = SeriesTrace(
        origin_station="Запад-1",
        destination_station="Восток-2",
        cargo_type="coal",
        segment=west,
        wape=0.52,
        dates=days,
        forecast=[100.0, 110.0, 90.0, 95.0, 105.0, 100.0, 98.0],
        actual=[150.0, 160.0, 140.0, 155.0, 150.0, 149.0, 152.0],
    )
    quality = QualityReport(
        window_start=start,
        window_end=as_of,
        mature_until=as_of - timedelta(days=1),
        forecasts_scored=2_700,
        forecasts_pending=300,
        cells=cells,
        daily=daily,
        degraded_segments=[west],
        worst_series=[trace],
    )
    fields: dict[str, Any] = {
        "id": "3f0c2a6e-0000-4000-8000-000000000001",
        "created_at": datetime(2026, 4, 1, 6, 0, tzinfo=UTC),
        "as_of": as_of,
        "window_days": 7,
        "model_name": "freight-volume",
        "model_version": "3",
        "status": "red",
        "segments": [
            SegmentStatus(segment="all", status="green", reasons=[]),
            SegmentStatus(segment=east, status="green", reasons=[]),
            SegmentStatus(
                segment=west,
                status="red",
                reasons=["realised WAPE 0.41 > expected 0.20 x 1.25", "input drift"],
            ),
        ],
        "alerts": [
            Alert(kind="quality", segment=west, message="realised WAPE 0.41 > 0.25 on 5 days"),
            Alert(kind="drift", segment=west, message="3 of 4 features drifted"),
        ],
        "drift": [report],
        "quality": quality,
        "freshness": Freshness(
            newest_fact=as_of - timedelta(days=1),
            facts_age_days=1.0,
            active_series=300,
            stale_series=100,
            stale_series_share=1 / 3,
            stale=True,
        ),
        "thresholds": MonitoringConfig().model_dump(mode="json"),
    }
    fields.update(overrides)
    return Snapshot(**fields)
