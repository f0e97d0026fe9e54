"""The feature build is a function of each series' own facts: built on any subset of the
series (a shard) with the whole panel's calendar and origins, a series gets exactly the
rows the whole build gives it, sampled horizons included. The Spark engine relies on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from freightml.compute import example_origins, panel_span
from freightml.data.synthetic import generate
from freightml.features.build import SERIES_KEY, SeriesPanel, build_examples, series_hashes

KW = {"horizons_per_origin": 7, "min_history_days": 91, "seed": 5}


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    """A small synthetic network where series start and stop on different days."""
    f = generate("small", seed=11)
    key = f[SERIES_KEY].astype(str).agg("|".join, axis=1)
    codes = pd.factorize(key)[0]
    first = pd.to_datetime(f["date"]).min()
    late_start = (codes % 5 == 1) & (pd.to_datetime(f["date"]) < first + pd.Timedelta(days=60))
    early_stop = (codes % 7 == 2) & (
        pd.to_datetime(f["date"]) > pd.to_datetime(f["date"]).max() - pd.Timedelta(days=45)
    )
    return f.loc[~(late_start | early_stop)].reset_index(drop=True)


def _shard(facts: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    shard = series_hashes(facts[SERIES_KEY]) % np.uint64(n)
    return [facts.loc[shard == i] for i in range(n)]


def test_a_shard_gets_the_rows_of_the_whole_build(facts: pd.DataFrame) -> None:
    origins = example_origins(facts)
    whole = build_examples(facts, **KW)
    span = panel_span(facts)
    parts = [
        build_examples(SeriesPanel.from_facts(part, span=span), origins=origins, **KW)
        for part in _shard(facts, 4)
        if len(part)
    ]
    order = ["origin_date", *SERIES_KEY, "horizon"]
    sharded = pd.concat(parts).sort_values(order, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, sharded, check_exact=True)


def test_the_sampled_horizons_of_a_pair_do_not_depend_on_the_other_series(
    facts: pd.DataFrame,
) -> None:
    whole = build_examples(facts, **KW)
    one = facts.loc[(facts[SERIES_KEY] == facts.iloc[0][SERIES_KEY]).all(axis=1)]
    alone = build_examples(
        SeriesPanel.from_facts(one, span=panel_span(facts)), origins=example_origins(facts), **KW
    )
    mine = whole.merge(one[SERIES_KEY].drop_duplicates(), on=SERIES_KEY)
    assert len(alone) > 0
    pd.testing.assert_frame_equal(
        mine.reset_index(drop=True), alone.reset_index(drop=True), check_exact=True
    )
    # still a stratified sample: every horizon, roughly as often as any other
    counts = whole["horizon"].value_counts()
    assert set(counts.index) == set(range(1, 29))
    assert counts.max() < 1.25 * counts.min()
    # and another seed is another sample
    other = build_examples(facts, **{**KW, "seed": 6})
    assert not np.array_equal(whole["horizon"].to_numpy(), other["horizon"].to_numpy())


def test_a_span_that_does_not_hold_the_facts_is_refused(facts: pd.DataFrame) -> None:
    start, last = panel_span(facts)
    with pytest.raises(ValueError, match="does not hold the facts"):
        SeriesPanel.from_facts(facts, span=(start + pd.Timedelta(days=1), last))
