"""The warm history window and its sources."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.features.build import FEATURE_COLUMNS, build_inference_frame
from freightml.features.window import (
    HistorySource,
    HistoryUnavailable,
    HistoryWindow,
    facts_signature,
    recent_facts,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    return generate("small", seed=3)


def test_400_day_window_reproduces_full_history_features(facts: pd.DataFrame) -> None:
    window = HistoryWindow.build(facts, window_days=400)
    assert window.origin == facts["date"].max()
    full = build_inference_frame(facts, window.origin, range(1, 29))
    assert len(full) == len(window.features)
    cols = [*FEATURE_COLUMNS, "scale", "history_days"]
    # history_days is capped by the window; everything the model reads is identical
    same = [c for c in cols if c != "history_days"]
    pd.testing.assert_frame_equal(
        window.features[same].reset_index(drop=True), full[same].reset_index(drop=True)
    )
    assert (
        window.n_series
        == facts.groupby(
            ["origin_station", "destination_station", "cargo_type"], observed=True
        ).ngroups
    )


def test_short_window_differs_where_it_must(facts: pd.DataFrame) -> None:
    short = HistoryWindow.build(facts, window_days=100)
    assert short.features["yoy_ratio"].isna().all()  # a year ago is outside 100 days


def test_feature_rows_are_series_major(facts: pd.DataFrame) -> None:
    window = HistoryWindow.build(facts)
    key = window.series_keys[5]
    rows = window.features.iloc[5 * 28 : 6 * 28]
    assert rows["horizon"].tolist() == list(range(1, 29))
    assert tuple(rows.iloc[0][["origin_station", "destination_station", "cargo_type"]]) == key
    assert window.date_horizon[window.dates[7]] == 7
    assert window.capacity[5] > 0


def test_recent_facts_and_signature(facts: pd.DataFrame) -> None:
    recent = recent_facts(facts, 30)
    assert recent["date"].nunique() == 30
    revised = recent.copy()
    revised.iloc[0, revised.columns.get_loc("volume_tonnes")] += 1.0
    assert facts_signature(recent) != facts_signature(revised)
    assert facts_signature(recent) == facts_signature(recent.copy())


def test_window_rejects_unusable_facts(facts: pd.DataFrame) -> None:
    with pytest.raises(HistoryUnavailable, match=r"lack columns \['volume_tonnes'\]"):
        HistoryWindow.build(facts.drop(columns="volume_tonnes"))
    with pytest.raises(HistoryUnavailable, match="empty"):
        HistoryWindow.build(facts.iloc[:0])


def test_sources_file_frame_and_callables(facts: pd.DataFrame, tmp_path: Path) -> None:
    path = save_facts(facts, tmp_path / "facts.parquet")
    from_file = HistorySource(path).read()
    assert len(from_file) == len(facts)
    since = HistorySource(path).read(start=date(2025, 3, 1))
    assert since["date"].min() == pd.Timestamp("2025-03-01") and len(since) < len(facts)
    assert HistorySource(facts).read() is facts
    assert len(HistorySource(lambda: facts).read(start=date(2025, 3, 1))) == len(facts)

    seen = []

    def store_like(start: date | None = None, end: date | None = None) -> pd.DataFrame:
        seen.append(start)
        return facts

    source = HistorySource(store_like)
    source.read()
    source.read(start=date(2024, 1, 1))
    assert seen == [None, date(2024, 1, 1)]


def test_file_stamp_changes_when_the_file_does(facts: pd.DataFrame, tmp_path: Path) -> None:
    path = save_facts(facts, tmp_path / "facts.parquet")
    source = HistorySource(path)
    first = source.stamp()
    assert first is not None and first == source.stamp()
    save_facts(facts.iloc[:-5], path)
    later = time.time() + 5
    os.utime(path, (later, later))
    assert source.stamp() != first
    assert HistorySource(lambda: facts).stamp() is None


def test_source_failures_are_named(tmp_path: Path) -> None:
    with pytest.raises(HistoryUnavailable, match="could not read the history facts from .*nope"):
        HistorySource(tmp_path / "nope.parquet").read()

    def broken() -> pd.DataFrame:
        raise ConnectionError("database is down")

    with pytest.raises(HistoryUnavailable, match="ConnectionError: database is down"):
        HistorySource(broken).read()
    with pytest.raises(HistoryUnavailable, match="returned list, expected a pandas DataFrame"):
        HistorySource(lambda: [1, 2]).read()


def test_unobserved_series_are_not_forecast() -> None:
    facts = generate("small", seed=1)
    key = facts.iloc[0][["origin_station", "destination_station", "cargo_type"]]
    mask = (
        (facts["origin_station"] == key.iloc[0])
        & (facts["destination_station"] == key.iloc[1])
        & (facts["cargo_type"] == key.iloc[2])
    )
    facts.loc[mask, "volume_tonnes"] = np.nan  # never a usable fact
    window = HistoryWindow.build(facts)
    assert tuple(str(v) for v in key) not in window.series_index


def test_the_origin_waits_for_a_quorum_of_series(facts: pd.DataFrame) -> None:
    """A day half delivered, a lone future fact or a new lane does not move the origin."""
    from freightml.features.window import WindowRules, forecast_origin

    last = facts["date"].max()
    day = facts.loc[facts["date"] == last].copy()
    nxt = day.assign(date=last + pd.Timedelta(days=1))
    n = len(nxt)
    partial = pd.concat([facts, nxt.iloc[: int(n * 0.3)]])
    assert forecast_origin(partial["date"]) == last
    assert recent_facts(partial)["date"].max() == last  # later facts wait
    most = pd.concat([facts, nxt.iloc[: int(n * 0.6)]])
    assert forecast_origin(most["date"]) == last + pd.Timedelta(days=1)
    assert forecast_origin(most["date"], quorum=0.9) == last
    future = pd.concat([facts, nxt.iloc[:1].assign(date=last + pd.Timedelta(days=900))])
    assert forecast_origin(future["date"]) == last
    # a network that shrinks by half still moves on
    half = nxt.iloc[: n // 2 + 1]
    assert forecast_origin(pd.concat([facts, half])["date"]) == last + pd.Timedelta(days=1)
    with pytest.raises(ValueError, match="origin_quorum"):
        WindowRules(origin_quorum=0)
