"""The feature build is a function of each series' own facts: built on any subset of the
series (a shard) with the whole panel's calendar and origins, a series gets exactly the
rows the whole build gives it. The sampled horizons come from one stream over all pairs;
a HorizonDraw of the whole panel (one row per series) lets every shard sample exactly the
rows the whole build samples (freightml.features.draw)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from freightml.data.synthetic import generate
from freightml.features.build import SERIES_KEY, SeriesPanel, build_examples, default_origins
from freightml.features.draw import HorizonDraw, series_days

KW = {"min_history_days": 91}
ORDER = ["origin_date", *SERIES_KEY, "horizon"]


def panel_span(facts: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last fact day: the calendar of the whole panel."""
    dates = pd.to_datetime(facts["date"])
    return dates.min().normalize(), dates.max().normalize()


def example_origins(facts: pd.DataFrame) -> list[pd.Timestamp]:
    """The origins build_examples picks by default for the whole panel."""
    start, last = panel_span(facts)
    return default_origins(last, start)


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


def _draw(facts: pd.DataFrame, seed: int, per_origin: int = 7) -> HorizonDraw:
    return HorizonDraw.of(
        series_days(facts),
        example_origins(facts),
        last=panel_span(facts)[1],
        horizon_max=28,
        per_origin=per_origin,
        min_history_days=KW["min_history_days"],
        seed=seed,
    )


@pytest.mark.parametrize(("seed", "per_origin", "n"), [(0, 7, 4), (7, 7, 3), (1, 4, 16)])
def test_shards_sample_the_rows_of_the_whole_build(
    facts: pd.DataFrame, seed: int, per_origin: int, n: int
) -> None:
    whole = build_examples(facts, horizons_per_origin=per_origin, seed=seed, **KW)
    span, origins, draw = panel_span(facts), example_origins(facts), _draw(facts, seed, per_origin)
    parts = [
        build_examples(
            SeriesPanel.from_facts(part, span=span), origins=origins, horizon_draw=draw, **KW
        )
        for part in _shards(facts, n)
    ]
    sharded = pd.concat(parts).sort_values(ORDER, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, sharded, check_exact=True)


def test_the_draw_reads_observed_days_as_the_panel_does(facts: pd.DataFrame) -> None:
    """A series whose first facts are NaN or negative starts where its first volume is;
    a series with no usable volume has no pair; both as in the whole build."""
    f = facts.copy()
    key = f[SERIES_KEY].astype(str).agg("|".join, axis=1)
    keys = sorted(key.unique())
    dates = pd.to_datetime(f["date"])
    early = dates < dates.min() + pd.Timedelta(days=120)
    f.loc[(key == keys[0]) & early, "volume_tonnes"] = -1.0
    f.loc[(key == keys[1]) & early, "volume_tonnes"] = np.nan
    f.loc[key == keys[2], "volume_tonnes"] = np.nan
    days = series_days(f)
    assert days["first_observed"].isna().sum() == 1
    whole = build_examples(f, horizons_per_origin=7, seed=5, **KW)
    span, origins, draw = panel_span(f), example_origins(f), _draw(f, 5)
    parts = [
        build_examples(
            SeriesPanel.from_facts(p, span=span), origins=origins, horizon_draw=draw, **KW
        )
        for p in _shards(f, 4)
    ]
    sharded = pd.concat(parts).sort_values(ORDER, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, sharded, check_exact=True)


def test_a_shard_outside_the_draw_is_refused(facts: pd.DataFrame) -> None:
    span, origins = panel_span(facts), example_origins(facts)
    part = _shards(facts, 2)[0]
    draw = _draw(facts.loc[~facts.index.isin(part.index)], 0)
    with pytest.raises(ValueError, match="not in the draw"):
        build_examples(SeriesPanel.from_facts(part, span=span), origins=origins, horizon_draw=draw)
    late = [o + pd.Timedelta(days=1) for o in origins[:-1]]
    with pytest.raises(ValueError, match="origins"):
        whole = SeriesPanel.from_facts(facts, span=span)
        build_examples(whole, origins=late, horizon_draw=_draw(facts, 0), **KW)


def test_a_span_that_does_not_hold_the_facts_is_refused(facts: pd.DataFrame) -> None:
    start, last = panel_span(facts)
    with pytest.raises(ValueError, match="does not hold the facts"):
        SeriesPanel.from_facts(facts, span=(start + pd.Timedelta(days=1), last))
