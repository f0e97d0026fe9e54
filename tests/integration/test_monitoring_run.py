"""One monitoring run (freightml.monitoring.run.take_snapshot) over a real collector store: a
window with facts and forecasts, and a window after the facts stopped arriving (the run
still gives a snapshot, red for staleness, instead of failing)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from freightml.evaluation.methodology import load_methodology
from freightml.features.build import build_examples
from freightml.monitoring.config import MonitoringConfig
from freightml.monitoring.profile import build_profile
from freightml.monitoring.run import take_snapshot
from freightml.monitoring.types import Expectation
from freightml.store import Store
from helpers import facts_frame

pytestmark = [pytest.mark.integration]
CONFIG = MonitoringConfig()
METHODOLOGY = load_methodology()


def _facts(days: int) -> pd.DataFrame:
    """40 series over ``days`` days from 2024-01-01, levels 10..400 t."""
    return pd.concat(
        [
            facts_frame(days, start="2024-01-01", tonnes=10.0 * (1 + s), origin=f"S{s}")
            for s in range(40)
        ],
        ignore_index=True,
    )


@pytest.fixture
def store(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


@pytest.fixture(scope="module")
def profile():
    history = _facts(500)
    examples = build_examples(history, horizons_per_origin=7)
    examples = examples.loc[examples["y"].notna()].reset_index(drop=True)
    built = build_profile(
        examples,
        None,
        config=CONFIG,
        segment_columns=METHODOLOGY.segments,
        gates=METHODOLOGY.gates,
    )
    expectation = Expectation(segment="all", horizon_bucket="1-7", wape=0.1, bias=0.0, n=100)
    return built.model_copy(update={"expectations": [expectation]})


def _run(store: Store, profile, as_of: date):
    return take_snapshot(
        store,
        profile,
        model=None,
        model_name="freight-volume",
        model_version="1",
        config=CONFIG,
        methodology=METHODOLOGY,
        as_of=as_of,
        window_days=7,
    )


def test_a_window_with_facts_and_forecasts_is_judged(store: Store, profile) -> None:
    facts = _facts(500)
    store.facts.ingest(facts)
    last = facts["date"].max()
    forecasts = facts.loc[facts["date"] > last - pd.Timedelta(days=7)].assign(
        origin_date=last - pd.Timedelta(days=7), tonnes=lambda f: f["volume_tonnes"] * 1.05
    )
    forecasts["horizon"] = (forecasts["date"] - forecasts["origin_date"]).dt.days
    store.forecasts.write(forecasts, run_id="batch-1", model_name="freight-volume")
    store.forecasts.write(forecasts, run_id="batch-2", model_name="another-model")
    snapshot = _run(store, profile, last.date())
    assert snapshot.status == "green" and snapshot.freshness.facts_age_days == 0
    assert snapshot.drift[0].rows > 0 and snapshot.drift[0].drifted_segments == []
    assert snapshot.quality is not None
    # the monitored model's forecasts only: 40 series x 7 days, all 5% over
    assert snapshot.quality.forecasts_scored == 280
    all_cell = next(c for c in snapshot.quality.cells if c.segment == "all")
    assert all_cell.wape == pytest.approx(0.05)
    # no online forecasts: a no_data alert for requests, nothing else
    assert [(a.kind, a.message) for a in snapshot.alerts] == [
        ("no_data", "no requests in the window")
    ]


def test_a_window_after_the_facts_stopped_gives_a_stale_snapshot(store: Store, profile) -> None:
    facts = _facts(500)
    store.facts.ingest(facts)
    as_of = (facts["date"].max() + pd.Timedelta(days=20)).date()
    snapshot = _run(store, profile, as_of)
    assert snapshot.drift[0].rows == 0
    assert snapshot.freshness.stale and snapshot.freshness.facts_age_days == 20
    assert snapshot.status == "red"
    assert {a.kind for a in snapshot.alerts} == {"staleness", "no_data"}
    assert "no facts in the window" in {a.message for a in snapshot.alerts}
