"""The training sample's horizons of the whole panel, for builds over part of its series.

:func:`freightml.features.build.build_examples` samples ``horizons_per_origin`` of the
horizons of every (series, origin) pair from one random stream over all pairs in the
build's order (origin, then series key). A build over one shard of the series cannot draw
its part of that stream by itself; a :class:`HorizonDraw` holds the draw of the whole
panel per series and origin, made from a table of one row per series (its first observed
day), so every shard samples exactly the rows the whole build samples
(``build_examples(..., horizon_draw=draw)``). The table is small next to the facts: one
int16 per (series, origin, sampled horizon).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from freightml.features.build import SERIES_KEY, factorize_series, sample_horizons

SERIES_DAYS_COLUMNS = [*SERIES_KEY, "first_observed", "first_date", "last_date"]


def series_days(facts: pd.DataFrame) -> pd.DataFrame:
    """One row per series of ``facts``: its first observed day (a volume that is neither
    NaN nor negative, as :class:`~freightml.features.build.SeriesPanel` reads them; NaT
    when there is none) and its first and last fact day."""
    dates = pd.to_datetime(facts["date"]).dt.normalize()
    volume = facts["volume_tonnes"].to_numpy(dtype=np.float32)
    observed = ~np.isnan(volume) & ~(volume < 0)
    frame = facts[SERIES_KEY].assign(
        first_observed=dates.where(observed), first_date=dates, last_date=dates
    )
    out = frame.groupby(SERIES_KEY, observed=True, sort=False).agg(
        first_observed=("first_observed", "min"),
        first_date=("first_date", "min"),
        last_date=("last_date", "max"),
    )
    return out.reset_index()[SERIES_DAYS_COLUMNS]


@dataclass(frozen=True)
class HorizonDraw:
    """The horizons ``build_examples(horizons_per_origin=k, seed=seed)`` samples for every
    (series, origin) pair of a panel: ``horizons[series, origin, :]`` (0 where the pair is
    not in the build), series in the build's order (``keys``)."""

    keys: pd.DataFrame
    origins: np.ndarray  # datetime64[D], sorted and unique
    horizons: np.ndarray  # int16, (series, origins, per_origin)

    @classmethod
    def of(
        cls,
        days: pd.DataFrame,
        origins: Sequence[pd.Timestamp],
        *,
        last: pd.Timestamp,
        horizon_max: int,
        per_origin: int,
        min_history_days: int,
        seed: int,
    ) -> HorizonDraw:
        """The draw of the panel whose series are ``days`` (:func:`series_days` of all its
        facts) and whose last day is ``last``, exactly as the whole build draws it."""
        sid, keys = factorize_series(days)
        n_series = len(keys)
        last_day = np.datetime64(pd.Timestamp(last).date(), "D")
        observed = pd.to_datetime(days["first_observed"]).to_numpy().astype("datetime64[D]")
        # a series never observed starts after the panel, as SeriesPanel.first_day has it
        first = np.full(n_series, last_day + 1)
        first[sid] = np.where(np.isnat(observed), last_day + 1, observed)
        origin_days = np.unique(
            np.array([np.datetime64(pd.Timestamp(o).date(), "D") for o in origins])
        )
        history = (origin_days[:, None] - first[None, :]).astype(np.int64) + 1
        o_pos, pair_s = np.nonzero(history >= max(min_history_days, 1))
        table = np.zeros((n_series, len(origin_days), per_origin), dtype=np.int16)
        table[pair_s, o_pos] = sample_horizons(len(pair_s), horizon_max, per_origin, seed)
        return cls(keys=keys, origins=origin_days, horizons=table)

    def __call__(self, keys: pd.DataFrame, pair_s: np.ndarray, pair_days: np.ndarray) -> np.ndarray:
        """The horizons of the pairs (row ``pair_s`` of ``keys``, origin day
        ``pair_days``) of a build over part of the series: shape (pairs, per_origin)."""
        whole = pd.MultiIndex.from_frame(self.keys[SERIES_KEY].astype(object))
        rows = whole.get_indexer(pd.MultiIndex.from_frame(keys[SERIES_KEY].astype(object)))
        if (rows < 0).any():
            raise ValueError(f"{int((rows < 0).sum())} series of the shard are not in the draw")
        at = np.searchsorted(self.origins, pair_days)
        at = np.minimum(at, len(self.origins) - 1)
        if len(at) and (self.origins[at] != pair_days).any():
            raise ValueError("an origin of the shard is not one of the draw's origins")
        h = self.horizons[rows[pair_s], at]
        if (h == 0).any():
            raise ValueError("a (series, origin) pair of the shard is not in the whole build")
        return h.astype(np.int64)
