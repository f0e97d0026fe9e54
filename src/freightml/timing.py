"""Timing: of the stages' own work (for the training benchmark) and of HTTP calls (an ASGI
middleware for the collector's and the predictor's latency histograms)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

# The benchmark sets $FREIGHTML_TIMINGS in its own process; kfp.local's task subprocesses
# inherit it. freightml.config reads it (the one reader of FREIGHTML_* variables).
from freightml.config import TIMINGS_ENV, timings_path

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TIMINGS_ENV", "ResponseTimer", "timed", "timings_path"]


@contextmanager
def timed(step: str, kind: Literal["work", "tracking"] = "work") -> Iterator[None]:
    """Time a block; append ``{"step", "kind", "seconds"}`` as a JSON line to
    :func:`timings_path` when it is set.

    The benchmark uses it to split a pipeline's wall time into the library's own work
    and the pipeline/tracking overhead around it.
    """
    started = time.perf_counter()
    try:
        yield
    finally:
        target = timings_path()
        if target is not None:
            with target.open("a") as fh:
                line = {"step": step, "kind": kind, "seconds": time.perf_counter() - started}
                fh.write(json.dumps(line) + "\n")


class ResponseTimer:
    """ASGI middleware: the latency and the status actually sent of every HTTP call that
    ``select(scope)`` gives labels for (None: not timed), passed to
    ``observe(labels, status, seconds)``. An exception that escapes counts as 500. Plain ASGI
    (cheaper than Starlette's BaseHTTPMiddleware); the collector and the predictor time
    their routes with it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        select: Callable[[Scope], Any],
        observe: Callable[[Any, int, float], None],
    ) -> None:
        self.app = app
        self.select = select
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        labels = self.select(scope) if scope["type"] == "http" else None
        if labels is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.observe(labels, status, time.perf_counter() - started)
