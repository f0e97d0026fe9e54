"""The feature build is a function of each series' own facts: built on any subset of the
series (a shard) with the whole panel's calendar and origins, a series gets exactly the
rows the whole build gives it. The sampled horizons come from one stream over all pairs, so
the Spark engine builds every horizon per shard and draws the sample over the collected
pairs (freightml.compute.sample_like_pandas), exactly as the pandas build does."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from freightml.compute import example_origins, panel_span, sample_like_pandas
from freightml.data.synthetic import generate
from freightml.features.build import SERIES_KEY, SeriesPanel, build_examples

KW = {"min_history_days": 91}
ORDER = ["origin_date", *SERIES_KEY, "horizon"]


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    """A small synthetic network where series start and stop on different days."""
    f = generate("small", seed=11)
    key = f[SERIES_KEY].astype(str).agg("|".join, axis=1)
    codes = pd.factorize(key)[0]
    dates = pd.to_datetime(f["date"])
    late_start = (codes % 5 == 1) & (dates < dates.min() + pd.Timedelta(days=60))
    early_stop = (codes % 7 == 2) & (dates > dates.max() - pd.Timedelta(days=45))
    return f.loc[~(late_start | early_stop)].reset_index(drop=True)


def _shards(facts: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    key = facts[SERIES_KEY].astype(str).agg("|".join, axis=1)
    shard = key.map(lambda k: int(hashlib.sha256(k.encode()).hexdigest(), 16) % n)
    return [facts.loc[shard == i] for i in range(n) if (shard == i).any()]


def _sharded(facts: pd.DataFrame, n: int) -> pd.DataFrame:
    span, origins = panel_span(facts), example_origins(facts)
    parts = [
        build_examples(
            SeriesPanel.from_facts(part, span=span), origins=origins, horizons_per_origin=None, **KW
        )
        for part in _shards(facts, n)
    ]
    return pd.concat(parts).sort_values(ORDER, kind="stable").reset_index(drop=True)


def test_a_shard_gets_the_rows_of_the_whole_build(facts: pd.DataFrame) -> None:
    whole = build_examples(facts, horizons_per_origin=None, **KW)
    pd.testing.assert_frame_equal(whole, _sharded(facts, 4), check_exact=True)


def test_the_pandas_sample_drawn_over_the_collected_pairs(facts: pd.DataFrame) -> None:
    every = _sharded(facts, 3)
    for seed in (0, 7):
        sampled = build_examples(facts, horizons_per_origin=7, seed=seed, **KW)
        drawn = sample_like_pandas(every, 28, 7, seed)
        pd.testing.assert_frame_equal(sampled, drawn, check_exact=True)


def test_rows_out_of_the_build_order_are_refused(facts: pd.DataFrame) -> None:
    every = _sharded(facts, 2)
    with pytest.raises(ValueError, match="build's order"):
        sample_like_pandas(every.iloc[::-1].reset_index(drop=True), 28, 7, 0)
    with pytest.raises(ValueError, match="all its horizons"):
        sample_like_pandas(every.iloc[:-1], 28, 7, 0)
    assert np.array_equal(every["horizon"].to_numpy()[:28], np.arange(1, 29))


def test_a_span_that_does_not_hold_the_facts_is_refused(facts: pd.DataFrame) -> None:
    start, last = panel_span(facts)
    with pytest.raises(ValueError, match="does not hold the facts"):
        SeriesPanel.from_facts(facts, span=(start + pd.Timedelta(days=1), last))
