"""The micro-batcher: concurrent requests share model calls, results go back in order."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from freightml.serving.batcher import MicroBatcher

pytestmark = pytest.mark.unit


class Recorder:
    """A fake model: doubles the row ids, records each call and its thread."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[object, list[int]]] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, key: object, rows: np.ndarray) -> np.ndarray:
        self.calls.append((key, rows.tolist()))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            import time

            time.sleep(self.delay)
        return rows * 2.0


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_submits_share_a_call_and_split_back() -> None:
    model = Recorder(delay=0.01)
    batcher = MicroBatcher(model, max_rows=100, max_wait_s=0.002)

    async def main():
        first = asyncio.create_task(batcher.submit("s", np.array([0])))  # idle: goes alone
        await asyncio.sleep(0.002)
        rest = [batcher.submit("s", np.arange(i, i + 3)) for i in range(10, 50, 10)]
        return await first, await asyncio.gather(*rest)

    first, rest = _run(main())
    assert first.tolist() == [0.0]
    assert [r.tolist() for r in rest] == [
        [20.0, 22.0, 24.0],
        [40.0, 42.0, 44.0],
        [60.0, 62.0, 64.0],
        [80.0, 82.0, 84.0],
    ]
    assert len(model.calls) == 2  # the lone first request, then the four merged
    assert model.calls[1][1] == [10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42]
    assert model.threads == {"freightml-predict_0"}
    batcher.shutdown()


def test_max_rows_caps_a_batch_but_never_splits_a_request() -> None:
    model = Recorder(delay=0.005)
    batcher = MicroBatcher(model, max_rows=5, max_wait_s=0.0)

    async def main():
        return await asyncio.gather(
            *[batcher.submit("s", np.arange(3)) for _ in range(4)],
            batcher.submit("s", np.arange(9)),
        )

    results = _run(main())
    assert [len(r) for r in results] == [3, 3, 3, 3, 9]
    assert all(len(rows) <= 5 or len(rows) == 9 for _, rows in model.calls)
    batcher.shutdown()


def test_rows_of_different_states_are_never_merged() -> None:
    model = Recorder(delay=0.01)
    batcher = MicroBatcher(model, max_rows=100)
    old, new = object(), object()

    async def main():
        blocker = asyncio.create_task(batcher.submit(old, np.array([1])))
        await asyncio.sleep(0.002)
        both = await asyncio.gather(
            batcher.submit(old, np.array([2])), batcher.submit(new, np.array([3]))
        )
        return await blocker, both

    _run(main())
    for key, rows in model.calls:
        assert (key is old and set(rows) <= {1, 2}) or (key is new and rows == [3])
    batcher.shutdown()


def test_model_errors_reach_every_waiting_request() -> None:
    def broken(key: object, rows: np.ndarray) -> np.ndarray:
        raise ValueError("trees fell over")

    batcher = MicroBatcher(broken)

    async def main():
        return await asyncio.gather(
            batcher.submit("s", np.array([1])),
            batcher.submit("s", np.array([2])),
            return_exceptions=True,
        )

    errors = _run(main())
    assert all(isinstance(e, ValueError) and "trees fell over" in str(e) for e in errors)
    batcher.shutdown()


def test_cancelled_requests_are_skipped() -> None:
    model = Recorder(delay=0.02)
    batcher = MicroBatcher(model, max_wait_s=0.0)

    async def main():
        busy = asyncio.create_task(batcher.submit("s", np.array([1])))
        await asyncio.sleep(0.005)
        gone = asyncio.create_task(batcher.submit("s", np.array([2])))
        kept = asyncio.create_task(batcher.submit("s", np.array([3])))
        await asyncio.sleep(0)
        gone.cancel()
        return await busy, await kept

    _, kept = _run(main())
    assert kept.tolist() == [6.0]
    assert [rows for _, rows in model.calls] == [[1], [3]]
    batcher.shutdown()


def test_call_runs_on_the_model_thread_and_survives_new_event_loops() -> None:
    batcher = MicroBatcher(Recorder())
    assert batcher.call(lambda: threading.current_thread().name) == "freightml-predict_0"
    for _ in range(2):  # a fresh loop each time (tests, a restarted server)
        assert _run(batcher.submit("s", np.array([4]))).tolist() == [8.0]
    batcher.shutdown()


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows must be >= 1"):
        MicroBatcher(Recorder(), max_rows=0)
