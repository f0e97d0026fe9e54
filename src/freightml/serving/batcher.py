"""An asyncio micro-batcher: concurrent requests share one model call.

A model call has a fixed cost (input validation, OpenMP start-up, the Python around it)
that dwarfs the per-row cost, so rows of requests arriving together are merged, predicted
once on a dedicated worker thread (the event loop keeps parsing requests meanwhile) and
split back. An idle batcher dispatches a lone request at once; under load it waits up to
``max_wait_s`` for more rows, or until ``max_rows`` are merged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

RunBatch = Callable[[Any, np.ndarray], np.ndarray]


class MicroBatcher:
    """Merge ``submit(key, rows)`` calls into ``run(key, all_rows)`` calls.

    ``key`` is the context the rows refer to (the serving state: model and history); only
    rows with the same key are merged, so a model swap never mixes versions in one call.
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        max_rows: int = 2048,
        max_wait_s: float = 0.002,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self._run = run
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._pending: list[tuple[Any, np.ndarray, asyncio.Future]] = []
        self._pending_rows = 0
        self._busy = False  # the last batch merged requests or left some waiting
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="freightml-predict")

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the model thread and wait (from any thread but that one).

        Every model computation of the process should run on this one thread: libgomp gives
        each thread that starts a parallel region its own pool, and once two pools exist on
        a small machine their threads stop spinning and sleep between the ~200 parallel
        regions of one predict (one per tree); a 1000-row forecast then takes 3x longer.
        """
        return self._executor.submit(fn, *args, **kwargs).result()

    async def submit(self, key: Any, rows: np.ndarray) -> np.ndarray:
        """Predictions for ``rows`` (in order), computed with other requests' rows."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._runner is None or self._runner.done():
            self._start(loop)
        future = loop.create_future()
        self._pending.append((key, rows, future))
        self._pending_rows += len(rows)
        self._wake.set()  # type: ignore[union-attr]
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._wake = asyncio.Event()
        self._runner = loop.create_task(self._run_forever(), name="freightml-micro-batcher")

    async def _run_forever(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            await wake.wait()
            wake.clear()
            while self._pending:
                await self._gather()
                await self._execute(self._take())

    async def _gather(self) -> None:
        """Let requests that are already readable join; under load, wait a little more."""
        await asyncio.sleep(0)
        if self.max_wait_s <= 0 or not self._busy:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        wake = self._wake
        assert wake is not None
        while self._pending_rows < self.max_rows:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[tuple[Any, np.ndarray, asyncio.Future]]:
        batch: list[tuple[Any, np.ndarray, asyncio.Future]] = []
        rows = 0
        while self._pending:
            n = len(self._pending[0][1])
            if batch and rows + n > self.max_rows:
                break
            batch.append(self._pending.pop(0))
            rows += n
        self._pending_rows -= rows
        self._busy = len(batch) > 1 or bool(self._pending)
        return batch

    async def _execute(self, batch: list[tuple[Any, np.ndarray, asyncio.Future]]) -> None:
        groups: dict[int, list[tuple[Any, np.ndarray, asyncio.Future]]] = {}
        for job in batch:
            groups.setdefault(id(job[0]), []).append(job)
        loop = asyncio.get_running_loop()
        for jobs in groups.values():
            jobs = [j for j in jobs if not j[2].done()]  # the client may have gone away
            if not jobs:
                continue
            parts = [rows for _, rows, _ in jobs]
            rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
            try:
                result = await loop.run_in_executor(self._executor, self._run, jobs[0][0], rows)
            except Exception as exc:
                for _, _, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(rows), len(jobs))
            start = 0
            for _, part, future in jobs:
                end = start + len(part)
                if not future.done():
                    future.set_result(result[start:end])
                start = end

    async def aclose(self) -> None:
        """Stop the runner; waiting requests get CancelledError."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._runner
            self._runner = None
        for _, _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pending_rows = 0

    def shutdown(self) -> None:
        """Release the worker thread (after the event loop is done with the batcher)."""
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
