"""The monitoring demo's moving parts: facts after the training window with a level shift in
one region, and a day of requests sent to a real predictor whose payload events land in
a real collector. `freightml demo --monitor` strings them together with the training,
batch-scoring and monitoring commands."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from freightml.data.synthetic import SIZES, generate
from freightml.domain import ACTIVE_DAYS, SERIES_KEY
from freightml.features.build import LOOKBACK_DAYS

log = logging.getLogger("freightml")

SHIFT_REGION = (
    "East Siberian"  # at most 7% of any cargo type's tonnes: the shift is the region's alone
)
SHIFT_FACTOR = 1.6
LATER_DAYS = 28  # facts after the training window: the forecasts' full horizon
REQUESTS = 2000  # "a day of requests": one per active series (at most), the next 28 days


@dataclass(frozen=True)
class DemoFacts:
    """The facts of the demo: the history the champion was trained on (its tail, for the
    store) and the later facts with the injected shift."""

    history: pd.DataFrame
    later: pd.DataFrame
    origin: date  # the last day of the history: the forecast origin
    shift_region: str
    shift_factor: float


def demo_facts(
    history: pd.DataFrame,
    size: str,
    seed: int,
    *,
    region: str = SHIFT_REGION,
    factor: float = SHIFT_FACTOR,
    days: int = LATER_DAYS,
) -> DemoFacts:
    """``LOOKBACK_DAYS`` of history up to the last day of ``history`` (the generator's
    ``size``/``seed`` data the champion was trained on) and ``days`` later days, with every
    series loaded in ``region`` scaled by ``factor`` from the first later day.

    Both come from one run of the generator over the longer period, so the later days
    continue the same noise and level wander as the history before them (a separate run
    would restart them, and the first days after the origin would look worse for every
    series); the level shift changes only the later days. Same lanes, same process: the
    champion sees the data it was trained for, shifted in one region."""

    origin = pd.Timestamp(history["date"].max()).date()
    spec = replace(
        SIZES[size],
        end=origin + timedelta(days=days),
        level_shift=(origin + timedelta(days=1), factor),
        level_shift_region=region,
        level_shift_origin_only=True,
    )
    extended = generate(spec, seed=seed)
    after = extended["date"] > pd.Timestamp(origin)
    later = extended.loc[after].reset_index(drop=True)
    known = history[list(SERIES_KEY)].drop_duplicates()
    unknown = later[list(SERIES_KEY)].drop_duplicates().merge(known, how="left", indicator=True)
    if (unknown["_merge"] == "left_only").any():
        raise ValueError(
            f"the later facts name series the history does not have: is {size!r} seed {seed} "
            "the data the champion was trained on?"
        )
    before = extended.loc[~after]
    tail = before.loc[before["date"] > pd.Timestamp(origin - timedelta(days=LOOKBACK_DAYS))]
    return DemoFacts(tail.reset_index(drop=True), later, origin, region, factor)


def request_bodies(history: pd.DataFrame, n: int, seed: int) -> list[dict]:
    """Up to ``n`` V1 bodies, each asking one series active in the last 28 days for the
    next 28 days, in a random order: a planning day on which every active lane is looked at
    once (the demo's requests look like the training population, so drift in them means
    something changed)."""
    recent = history.loc[history["date"] > history["date"].max() - pd.Timedelta(days=ACTIVE_DAYS)]
    volume = recent.groupby(list(SERIES_KEY), observed=True)["volume_tonnes"].sum()
    active = volume.index[volume > 0]
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(active))[:n]
    return [
        {"instances": [{**dict(zip(SERIES_KEY, map(str, active[i]), strict=True)), "horizon": 28}]}
        for i in picks
    ]


def _wait(proc: subprocess.Popen, what: str, url: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"freightml {what} exited {proc.returncode}; "
                f"last output:\n{log_path.read_text()[-2000:]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f}s; see {log_path}")


@contextlib.contextmanager
def freightml_service(
    args: list[str], ready_url: str, log_path: Path, env: dict[str, str], timeout_s: float = 180
) -> Iterator[subprocess.Popen]:
    """``freightml ARGS`` as a child process until the block ends (SIGTERM, so the
    predictor drains its queue of payload events first)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "freightml.cli", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(proc, " ".join(args), ready_url, log_path, timeout_s)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def send_requests(url: str, model: str, bodies: list[dict]) -> int:
    """POST each body to the predictor's V1 endpoint; returns the forecast rows answered.
    A non-200 answer stops the demo with the predictor's reason."""
    rows = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, body in enumerate(bodies):
            answer = client.post(
                f"/v1/models/{model}:predict", json=body, headers={"x-request-id": f"demo-{i}"}
            )
            if answer.status_code != 200:
                raise RuntimeError(f"request {i} got {answer.status_code}: {answer.text[:300]}")
            rows += len(answer.json()["predictions"])
    return rows
