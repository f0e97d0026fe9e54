"""Timing of the stages' own work, for the training benchmark."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

# The benchmark sets this in its own process; kfp.local's task subprocesses inherit it.
TIMINGS_ENV = "FREIGHTML_TIMINGS"


def timings_path() -> Path | None:
    """Where ``timed`` appends its lines: $FREIGHTML_TIMINGS, or nowhere when unset.

    The one FREIGHTML_* read outside freightml.config: it is a benchmark switch, not a
    setting, and must reach task subprocesses that get only the settings JSON.
    """
    target = os.environ.get(TIMINGS_ENV)
    return Path(target) if target else None


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
