"""Nothing is lost when the database fails: a throwaway PostgreSQL server (Debian's initdb and
pg_ctl, on a free loopback port) is killed in the middle of a stream of CloudEvents sent to
the real collector over HTTP. The collector answers 503 (with Retry-After) and /healthz
503 while it is down; after a restart, re-sending what got 503 stores every event exactly
once, and every event acknowledged with 200 before the crash is still there."""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from cloudevents.conversion import to_binary

from freightml.collector.app import create_app
from freightml.collector.events import kserve_cloudevent
from freightml.store import Store
from helpers import facts_records, free_port, skip_or_fail, uvicorn_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL server of our own: stop and start it at will."""

    bindir: Path
    root: Path
    port: int
    as_owner: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://freightml@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        cmd = [*self.as_owner, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-l", str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")

    def kill(self) -> None:
        """Stop the server the hard way (immediate mode: no checkpoint, like a crash;
        connections are cut mid-transaction and the next start runs crash recovery)."""
        self._ctl("-m", "immediate", "-w", "stop")


def _version(pg_ctl: str) -> int:
    return int(Path(pg_ctl).parts[-3]) if Path(pg_ctl).parts[-3].isdigit() else 0


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if not found:
        skip_or_fail(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get "
            "install postgresql) to start a throwaway server"
        )
    bindir = Path(found[-1]).parent
    # initdb refuses to run as root: run the server as the postgres OS user then. Its data
    # directory is outside pytest's tmp_path, whose parents only root may enter.
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="freightml-pg-"))
    if as_owner:
        shutil.chown(root, "postgres", "postgres")
    server = ThrowawayPostgres(bindir, root, free_port(), as_owner)
    subprocess.run(
        [
            *as_owner,
            str(bindir / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            "freightml",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server._ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _forecast_response(i: int) -> dict:
    rows = [
        {
            "origin_station": f"S{i:03d}",
            "destination_station": "VLD",
            "cargo_type": "coal",
            "origin_date": "2025-01-01",
            "date": f"2025-01-0{d}",
            "horizon": d - 1,
            "tonnes": 100.0 + d,
            "wagons": 2,
        }
        for d in (2, 3, 4)
    ]
    return {"model_name": "freight-volume", "model_version": "3", "predictions": rows}


def _wait_health(client: httpx.Client, status: int, timeout_s: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        r = client.get("/healthz")
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_a_database_crash_mid_stream_loses_nothing_and_stores_everything_once(
    postgres: ThrowawayPostgres,
) -> None:
    n_inferences, rows_per_response = 150, 3
    wire: list[tuple[dict[str, str], bytes]] = []
    for i in range(n_inferences):
        request = {
            "instances": [
                {"origin_station": f"S{i:03d}", "destination_station": "VLD", "cargo_type": "coal"}
            ]
        }
        for kind, data in (("request", request), ("response", _forecast_response(i))):
            headers, body = to_binary(kserve_cloudevent(kind, f"inf-{i}", data))  # type: ignore[arg-type]
            wire.append((dict(headers), body))
    kill_after, gate = len(wire) // 6, len(wire) // 2  # acks before the crash; sent after it

    store = Store(postgres.url)
    answers: dict[int, int | str] = {}  # event index -> HTTP status (or the client error)
    acked = threading.Semaphore(0)
    db_down = threading.Event()
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(wire)):
        todo.put(i)

    with uvicorn_in_thread(create_app(store, max_batch=50)) as base:

        def sender() -> None:
            with httpx.Client(base_url=base, timeout=60) as client:
                while True:
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    if i >= gate:
                        db_down.wait(120)  # the second half goes out once the crash is seen
                    headers, body = wire[i]
                    try:
                        answers[i] = client.post(
                            "/events", headers=headers, content=body
                        ).status_code
                    except httpx.HTTPError as exc:
                        answers[i] = type(exc).__name__
                    acked.release()

        with httpx.Client(base_url=base, timeout=60) as client:
            assert client.get("/healthz").json() == {"status": "ok", "writer": True}
            threads = [threading.Thread(target=sender, daemon=True) for _ in range(6)]
            for th in threads:
                th.start()
            for _ in range(kill_after):
                assert acked.acquire(timeout=60), "the collector stopped answering"
            postgres.kill()  # while the senders are still sending the first half

            health = _wait_health(client, 503)
            assert health.status_code == 503, health.text
            assert health.json()["status"] == "unavailable"
            assert "database unreachable" in health.json()["error"]
            facts = facts_records(3)
            r = client.post("/facts", json=facts)
            assert r.status_code == 503 and "database unavailable" in r.json()["error"]
            assert r.headers["retry-after"] == "1"
            assert client.get("/stats").status_code == 503

            db_down.set()
            for th in threads:
                th.join(180)
                assert not th.is_alive(), "a sender hung"

            # every event sent while the database was down was refused with 503, not lost
            assert len(answers) == len(wire)
            assert {answers[i] for i in range(gate, len(wire))} == {503}
            assert set(answers.values()) <= {200, 503}, answers
            refused = sorted(i for i, status in answers.items() if status != 200)
            accepted_before = [i for i in range(gate) if answers[i] == 200]
            assert len(accepted_before) >= kill_after  # all acknowledged before the crash
            metrics = client.get("/metrics").text
            errors = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("freightml_collector_events_total{")
                and 'outcome="error"' in line
            )
            assert errors == len(refused)

            postgres.start()
            health = _wait_health(client, 200)
            assert health.json() == {"status": "ok", "writer": True}, health.text

            # the senders retry what got 503: each is stored now (or found already stored,
            # if its commit went through just before the crash)
            retried = {}
            for i in refused:
                headers, body = wire[i]
                r = client.post("/events", headers=headers, content=body)
                retried[i] = (r.status_code, r.json()["status"])
            assert {status for status, _ in retried.values()} == {200}
            assert client.post("/facts", json=facts).json()["inserted"] == 3

    # exactly once, read straight from the database
    with store.engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT event_id, event_type, count(*) FROM inference_events "
                "GROUP BY event_id, event_type"
            )
        ).fetchall()
    sent = {(h["ce-id"], h["ce-type"]) for h, _ in wire}
    assert {(row[0], row[1]) for row in stored} == sent
    assert {row[2] for row in stored} == {1}
    counts = store.counts()
    assert counts["events"] == len(wire)
    assert counts["inferences_complete"] == n_inferences == counts["inferences"]
    assert counts["forecasts"] == n_inferences * rows_per_response
    assert counts["facts"] == 3
    store.close()
