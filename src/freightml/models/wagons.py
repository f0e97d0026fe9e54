"""Wagons from tonnes: the one rule every forecast (online and batch) uses."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def wagons_for(tonnes: npt.ArrayLike, capacity: npt.ArrayLike) -> np.ndarray:
    """Wagons as the facts count them: tonnes / wagon capacity rounded to the nearest whole
    wagon, at least one wagon for any positive load, and none for zero tonnes.

    ``capacity`` is tonnes per wagon of each row's cargo (see
    ``freightml.data.schema.WAGON_CAPACITY_T``). Negative or non-finite tonnes, or a
    non-positive capacity, are errors: a forecast of them is a bug upstream.
    """
    t = np.asarray(tonnes, dtype=np.float64)
    c = np.broadcast_to(np.asarray(capacity, dtype=np.float64), t.shape)
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"wagons_for: {int(bad.sum())} tonnes value(s) are negative or not finite "
            f"(first: {t.ravel()[i]!r} at position {i})"
        )
    if not (np.isfinite(c) & (c > 0)).all():
        raise ValueError("wagons_for: wagon capacity must be a positive number of tonnes")
    wagons = np.rint(t / c).astype(np.int64)
    return np.maximum(wagons, (t > 0).astype(np.int64))
