"""Benchmark the collector: CloudEvents over HTTP into a collector on SQLite.

Starts the collector (``serve_collector``: uvicorn, one process) on a temporary SQLite
store (or ``--store-url``), then sends ``--events`` KServe-style CloudEvents built with
the cloudevents SDK in binary mode (request + response pairs, each response holding
``--rows`` forecast rows; in half of the pairs the response goes first) from
``--clients`` client processes with ``--concurrency`` keep-alive connections each.
Reports events/s, latency percentiles and CPU seconds of server and clients, and checks
that nothing was lost: the store's event count equals the events sent, every pair joined
into one complete inference, every forecast row landed, and a resent sample is answered
"duplicate" without changing any count.

The default client is a minimal HTTP/1.1 client (``--client raw``): httpx spends about
1-3 ms of CPU per request, so on a small machine (2 CPUs) httpx clients would use more
CPU than the collector and the benchmark would measure them. ``--client httpx`` is there
to compare.

Runs the collector with bearer tokens required (the default) and without, one after the
other, and reports the ratio; each run also times the 413 of oversized bodies.

    uv run python bench/collector_bench.py --events 20000
    uv run python bench/collector_bench.py --events 6000 --client httpx
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import psutil
from ports import free_port

OUT = Path(__file__).parent / "out"
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


def make_events(n_events: int, rows: int, seed: int = 0) -> list[tuple[dict[str, str], bytes]]:
    """Binary-mode CloudEvents as KServe's logger sends them (built with the SDK)."""
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent

    rng = random.Random(seed)
    origin = date(2025, 12, 31)
    out: list[tuple[dict[str, str], bytes]] = []
    for pair in range(n_events // 2):
        inference_id = f"bench-{pair:07d}"
        series = (f"S{rng.randrange(400):04d}", f"S{rng.randrange(400):04d}", "coal")
        common = {
            "id": inference_id,
            "source": "http://localhost:9081/",
            "specversion": "1.0",
            "inferenceservicename": "freight-volume",
            "namespace": "freightml",
            "component": "predictor",
            "endpoint": "default",
            "datacontenttype": "application/json",
        }
        request = {
            "instances": [
                {
                    "origin_station": series[0],
                    "destination_station": series[1],
                    "cargo_type": series[2],
                    "origin_date": origin.isoformat(),
                    "horizons": list(range(1, rows + 1)),
                }
            ]
        }
        response = {
            "model_name": "freight-volume",
            "model_version": "3",
            "predictions": [
                {
                    "origin_station": series[0],
                    "destination_station": series[1],
                    "cargo_type": series[2],
                    "origin_date": origin.isoformat(),
                    "date": (origin + timedelta(days=h)).isoformat(),
                    "horizon": h,
                    "tonnes": round(rng.uniform(50, 2000), 1),
                    "wagons": rng.randrange(1, 40),
                }
                for h in range(1, rows + 1)
            ],
        }
        pair_events = [
            to_binary(CloudEvent({**common, "type": REQUEST}, request)),
            to_binary(CloudEvent({**common, "type": RESPONSE}, response)),
        ]
        if pair % 2:
            pair_events.reverse()  # the response arrives before its request
        out += [(dict(h), b) for h, b in pair_events]
    return out


class _RawConnection:
    """A minimal HTTP/1.1 keep-alive client (POST only, Content-Length bodies): far less
    CPU per request than httpx, so the clients do not starve the server of the CPU."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        assert self.reader is not None
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _send_raw(url: str, events: list, concurrency: int) -> tuple[list[float], dict[str, int]]:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    position = 0

    async def worker() -> None:
        nonlocal position
        conn = _RawConnection(host, int(port))
        try:
            while position < len(events):
                headers, body = events[position]
                position += 1
                started = time.perf_counter()
                status, content = await conn.post("/", headers, body)
                latencies.append(time.perf_counter() - started)
                key = json.loads(content).get("status", str(status)) if status < 500 else "5xx"
                outcomes[key] = outcomes.get(key, 0) + 1
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, outcomes


async def _send_all(url: str, events: list, concurrency: int) -> tuple[list[float], dict[str, int]]:
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    position = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal position
            while position < len(events):
                headers, body = events[position]
                position += 1
                started = time.perf_counter()
                r = await client.post("/", headers=headers, content=body)
                latencies.append(time.perf_counter() - started)
                key = r.json().get("status", str(r.status_code)) if r.status_code < 500 else "5xx"
                outcomes[key] = outcomes.get(key, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, outcomes


def _client(url: str, events: list, concurrency: int, raw: bool, start: float, q: mp.Queue) -> None:
    while time.time() < start:  # all clients start together
        time.sleep(0.001)
    try:
        sender = _send_raw if raw else _send_all
        latencies, outcomes = asyncio.run(sender(url, events, concurrency))
    except BaseException as exc:  # report instead of leaving the parent waiting
        q.put(("error", f"{type(exc).__name__}: {exc}", 0.0))
        raise
    q.put((latencies, outcomes, time.process_time()))


def send(url: str, events: list, clients: int, concurrency: int, raw: bool) -> dict:
    """Send ``events`` from ``clients`` processes; wall time, latencies and outcomes."""
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    start = time.time() + 0.5
    chunks = [events[i::clients] for i in range(clients)]
    procs = [ctx.Process(target=_client, args=(url, c, concurrency, raw, start, q)) for c in chunks]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    wall = time.time() - start
    for p in procs:
        p.join()
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        raise RuntimeError(f"client failed: {errors[0]}")
    client_cpu = sum(r[2] for r in results)
    latencies = sorted(x for lat, _, _ in results for x in lat)
    outcomes: dict[str, int] = {}
    for _, o, _ in results:
        for k, v in o.items():
            outcomes[k] = outcomes.get(k, 0) + v

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "wall_s": wall,
        "events_per_s": len(events) / wall,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "outcomes": outcomes,
        "client_cpu_s": client_cpu,
    }


def start_server(store_url: str, port: int, home: Path, auth: bool) -> subprocess.Popen:
    code = (
        "from pathlib import Path; from freightml.collector.service import serve_collector; "
        "from freightml.config import CollectorSettings; "
        f"serve_collector({store_url!r}, port={port}, log_level='warning', home=Path("
        f"{str(home)!r}), collector_settings=CollectorSettings(auth={auth}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited with code {proc.returncode}")
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("collector did not become healthy within 60 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events to send (pairs x 2)")
    parser.add_argument("--rows", type=int, default=28, help="forecast rows per response")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=32, help="connections per client")
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="raw",
        help="a minimal keep-alive HTTP/1.1 client (little CPU), or httpx.AsyncClient",
    )
    parser.add_argument("--resend", type=int, default=2_000, help="events resent as duplicates")
    parser.add_argument(
        "--store-url",
        help="store to write to (default: a temporary SQLite file); its "
        "collector tables are DROPPED first",
    )
    parser.add_argument("--target", type=float, default=2_000, help="events/s to pass")
    parser.add_argument(
        "--auth",
        choices=["on", "off", "both"],
        default="both",
        help="bearer tokens required (the default collector) or not; both: one after the other",
    )
    args = parser.parse_args()

    modes = ["off", "on"] if args.auth == "both" else [args.auth]
    rows, results, ok = [], {}, True
    for mode in modes:
        result = run_one(args, mode == "on")
        results[mode] = result
        ok &= result["pass"]
        rows.append(result["row"])
    OUT.mkdir(exist_ok=True)
    backend = next(iter(results.values()))["backend"]
    (OUT / f"collector-{backend}-{args.client}.json").write_text(json.dumps(results, indent=2))
    print(
        "| store | auth | client | events | rows/response | clients x conns | events/s | "
        "p50 ms | p99 ms | server CPU s | client CPU s | lost | resent -> counted again | "
        "413 of a 5 MiB body, p50 ms | pass |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if len(results) == 2:
        ratio = results["on"]["run"]["events_per_s"] / results["off"]["run"]["events_per_s"]
        print(f"\nevents/s with authentication on / off: {ratio:.2f}x")
    return 0 if ok else 1


def run_one(args: argparse.Namespace, auth: bool) -> dict:
    """One collector (tokens required or not), the events, the resend and the 413s."""
    events = make_events(args.events, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        store_url = args.store_url or f"sqlite:///{tmp}/collector.db"
        if args.store_url:  # start from empty tables
            from freightml.store import Store

            Store(store_url, create=False).drop_all()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(store_url, port, Path(tmp), auth)
        admin: dict[str, str] = {}
        if auth:  # the token the collector wrote on its first start, as a client reads it
            token = (Path(tmp) / "collector.token").read_text().strip()
            admin = {"authorization": f"Bearer {token}"}
            events = [({**h, **admin}, b) for h, b in events]
        try:
            server_cpu = psutil.Process(server.pid)
            cpu0 = sum(server_cpu.cpu_times()[:2])
            run = send(url, events, args.clients, args.concurrency, args.client == "raw")
            run["server_cpu_s"] = sum(server_cpu.cpu_times()[:2]) - cpu0
            stats = httpx.get(f"{url}/stats", headers=admin).json()
            resent = random.Random(1).sample(events, min(args.resend, len(events)))
            again = send(url, resent, args.clients, args.concurrency, args.client == "raw")
            after = httpx.get(f"{url}/stats", headers=admin).json()
            too_large = _too_large_ms(url, {**events[0][0]})
        finally:
            server.terminate()
            server.wait(30)

    pairs = len(events) // 2
    checks = {
        "all events stored": stats["events"] == len(events)
        and run["outcomes"].get("stored") == len(events),
        "all pairs joined": stats["inferences_complete"] == pairs,
        "all forecasts stored": stats["forecasts"] == pairs * args.rows,
        "resent are duplicates": again["outcomes"].get("duplicate") == len(resent),
        "counts unchanged by resend": after == stats,
        "oversized bodies refused": too_large["statuses"] == [413],
    }
    ok = all(checks.values()) and run["events_per_s"] >= args.target
    for name, passed in checks.items():
        if not passed:
            print(f"FAILED ({'auth' if auth else 'no auth'}): {name}", file=sys.stderr)
    backend = store_url.split(":", 1)[0].split("+", 1)[0]
    lost = len(events) - stats["events"]
    row = (
        f"| {backend} | {'on' if auth else 'off'} | {args.client} | {len(events):,} | "
        f"{args.rows} | {args.clients} x {args.concurrency} | "
        f"{run['events_per_s']:,.0f} | {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | "
        f"{run['server_cpu_s']:.1f} | {run['client_cpu_s']:.1f} | {lost} | "
        f"{len(resent):,} -> {after['events'] - stats['events']} | "
        f"{too_large['p50_ms']:.1f} | {'yes' if ok else 'NO'} |"
    )
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, "
        f"Python {platform.python_version()}",
        "args": vars(args),
        "auth": auth,
        "backend": backend,
        "run": run,
        "resend": again,
        "stats": stats,
        "too_large": too_large,
        "checks": checks,
        "pass": ok,
        "row": row,
    }


def _too_large_ms(url: str, headers: dict[str, str], n: int = 20) -> dict:
    """``n`` events of 5 MiB (over the 4 MiB default limit): their statuses and the median
    time to the answer."""
    body = b'{"instances": [' + b"0," * (5 * 1024**2 // 2) + b"0]}"
    times, statuses = [], set()
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            statuses.add(client.post(url + "/", content=body, headers=headers).status_code)
            times.append(time.perf_counter() - started)
    return {"statuses": sorted(statuses), "p50_ms": sorted(times)[n // 2] * 1000}


if __name__ == "__main__":
    sys.exit(main())
