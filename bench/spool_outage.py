"""A collector outage under load: the predictor's payload log with and without its spool.

A CloudEventSender with its defaults (12 attempts, 16-31 s of retries) posts request and
response events of ``--rate`` inferences per second to a collector (its own process, SQLite,
tokens required) for ``--before`` seconds; the collector is then stopped for ``--outage``
seconds and started again on the same port and store; the load goes on ``--after`` seconds.
Counted afterwards, from the store: events sent, stored, lost. Two runs side by side: the
default (spool under a temporary directory) and the spool switched off (what the sender
did before issue "Trust what is collected", finding 8).

    uv run python bench/spool_outage.py --outage 300
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from collector_bench import start_server
from ports import free_port

import freightml.collector.inferences  # noqa: F401  (registers the events' row count)
from freightml.collector.guard import local_token
from freightml.serving.events import CloudEventSender
from freightml.serving.spool import EventSpool
from freightml.store import Store

REQUEST = {
    "instances": [
        {"origin_station": "A", "destination_station": "B", "cargo_type": "coal", "horizon": 1}
    ]
}


def response(i: int) -> dict:
    return {
        "model_name": "freight-volume",
        "model_version": "1",
        "predictions": [
            {
                "origin_station": "A",
                "destination_station": "B",
                "cargo_type": "coal",
                "origin_date": "2026-01-01",
                "date": "2026-01-02",
                "horizon": 1,
                "tonnes": 100.0 + i % 50,
                "wagons": 2,
            }
        ],
    }


def run(spooled: bool, args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="spool-outage-"))
    store_url = f"sqlite:///{tmp / 'collector.db'}"
    port = free_port()
    server = start_server(store_url, port, tmp, auth=True)
    token = local_token(tmp)
    spool = EventSpool(tmp / "spool", name="bench") if spooled else None
    sender = CloudEventSender(
        f"http://127.0.0.1:{port}/events", token=token, spool=spool, inference_service="bench"
    )
    peak = {"bytes": 0, "pending": 0}

    async def load() -> int:
        sent, start = 0, time.monotonic()
        total = args.before + args.outage + args.after
        nonlocal server
        phase = "up"
        while (elapsed := time.monotonic() - start) < total:
            if phase == "up" and elapsed >= args.before:
                server.terminate()
                server.wait(30)
                phase = "down"
                print(f"{elapsed:6.1f} s collector stopped", flush=True)
            if phase == "down" and elapsed >= args.before + args.outage:
                server = await asyncio.to_thread(start_server, store_url, port, tmp, True)
                phase = "back"
                print(f"{elapsed:6.1f} s collector started again", flush=True)
            sender.send(f"inf-{sent}", REQUEST, response(sent))
            sent += 1
            if spool is not None:
                peak["bytes"] = max(peak["bytes"], spool.bytes)
            peak["pending"] = max(peak["pending"], sender.pending)
            await asyncio.sleep(max(start + sent / args.rate - time.monotonic(), 0))
        drained_at = time.monotonic()
        while (spool is not None and len(spool)) or sender.pending:
            await asyncio.sleep(0.2)
            if time.monotonic() - drained_at > 600:
                break
        await sender.aclose()
        print(
            f"replayed and drained {time.monotonic() - drained_at:.1f} s after the load", flush=True
        )
        return sent * 2

    events = asyncio.run(load())
    store = Store(store_url)
    stored = store.counts()["events"]
    store.close()
    server.terminate()
    server.wait(30)
    return {
        "run": "spool (default)" if spooled else "no spool (before)",
        "events sent": events,
        "stored": stored,
        "lost": events - stored,
        "peak spool MiB": round(peak["bytes"] / 2**20, 2),
        "peak queue (inferences)": peak["pending"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="inferences per second")
    parser.add_argument("--before", type=float, default=20.0)
    parser.add_argument("--outage", type=float, default=300.0)
    parser.add_argument("--after", type=float, default=30.0)
    parser.add_argument("--no-baseline", action="store_true", help="only the spooled run")
    args = parser.parse_args()
    rows = [run(True, args)] + ([] if args.no_baseline else [run(False, args)])
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r[h]) for h in header) + " |")


if __name__ == "__main__":
    main()
