"""Timing of the stages' own work, for the training benchmark."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

# The benchmark sets $FREIGHTML_TIMINGS in its own process; kfp.local's task subprocesses
# inherit it. freightml.config reads it (the one reader of FREIGHTML_* variables).
from freightml.config import TIMINGS_ENV, timings_path

__all__ = ["TIMINGS_ENV", "timed", "timings_path"]


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
