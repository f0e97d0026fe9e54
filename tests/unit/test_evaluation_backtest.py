"""The rolling-origin backtest: fold layout, no training data after a cutoff, outputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from test_features import make_facts

from freightml.evaluation import BacktestResult, load_methodology, run_backtest
from freightml.evaluation.plots import plot_backtest
from freightml.features.build import SeriesPanel
from freightml.features.levels import LevelAdjustment, adjust_levels
from freightml.models import GlobalGBM, SeasonalNaive

pytestmark = [pytest.mark.unit]

METHODOLOGY = load_methodology(Path(__file__).resolve().parents[2] / "configs/methodology.yaml")


class SpyModel(SeasonalNaive):
    """The baseline, remembering what it was trained on."""

    seen: ClassVar[list[pd.DataFrame]] = []

    def fit(self, examples: pd.DataFrame, y: object = None) -> SpyModel:
        SpyModel.seen.append(examples[["origin_date", "target_date", "y"]].copy())
        return super().fit(examples)


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    return make_facts(n_series=12, n_days=400, seed=11)


@pytest.fixture(scope="module")
def result(facts: pd.DataFrame) -> BacktestResult:
    SpyModel.seen = []
    return run_backtest(
        facts,
        SpyModel,
        METHODOLOGY,
        feature_kwargs={"horizons_per_origin": 4, "train_window_days": 150},
    )


def test_folds_score_every_horizon_after_their_cutoff(result: BacktestResult, facts) -> None:
    last = facts["date"].max()
    assert result.cutoffs == [last - pd.Timedelta(days=d) for d in (84, 56, 28)]
    pred = result.predictions
    assert sorted(pred["fold"].unique()) == [0, 1, 2]
    for fold, cutoff in enumerate(result.cutoffs):
        part = pred.loc[pred["fold"] == fold]
        assert (part["cutoff"] == cutoff).all()
        assert sorted(part["horizon"].unique()) == list(range(1, 29))
        assert ((part["target_date"] - cutoff).dt.days == part["horizon"]).all()
        assert part["y"].notna().all()
    assert not pred.duplicated(
        ["fold", "origin_station", "destination_station", "cargo_type", "horizon"]
    ).any()


def test_no_training_example_is_dated_after_its_cutoff(result: BacktestResult) -> None:
    assert len(SpyModel.seen) == len(result.cutoffs)
    for seen, cutoff in zip(SpyModel.seen, result.cutoffs, strict=True):
        assert seen["target_date"].max() <= cutoff
        assert seen["origin_date"].max() < cutoff
        assert seen["origin_date"].min() >= cutoff - pd.Timedelta(days=150)
        assert seen["y"].notna().all()


def test_baseline_is_scored_on_the_same_rows(result: BacktestResult) -> None:
    pred = result.predictions
    # SpyModel *is* the baseline here, so both forecasts must coincide exactly
    np.testing.assert_array_equal(pred["yhat"], pred["yhat_baseline"])
    assert result.summary().iloc[0]["wape_ratio"] == pytest.approx(1.0)


def test_views_and_flat_metrics(result: BacktestResult) -> None:
    assert len(result.by_horizon()) == 28 and len(result.by_fold()) == 3
    assert set(result.by_segment("cargo_type")["cargo_type"]) == {
        "coal",
        "grain",
        "oil",
        "containers",
    }
    metrics = result.metrics_dict()
    for key in [
        "wape",
        "wape_baseline",
        "wape_ratio",
        "bias",
        "mae",
        "fold_0_wape",
        "h07_wape",
        "h28_wape_baseline",
        "seg_origin_region_West_Siberian_wape",
        "seg_cargo_type_coal_wape_ratio",
    ]:
        assert key in metrics, key
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-/ ]+", k) for k in metrics)
    assert metrics["wape"] == pytest.approx(result.summary().iloc[0]["wape"])


def test_plots_are_written(result: BacktestResult, tmp_path: Path) -> None:
    paths = plot_backtest(result, tmp_path / "plots")
    assert [p.name for p in paths] == [
        "wape_by_horizon.png",
        "wape_by_segment.png",
        "actual_vs_forecast.png",
    ]
    for path in paths:
        assert path.read_bytes()[:4] == b"\x89PNG"


def test_gbm_backtest_runs_and_beats_the_baseline(facts: pd.DataFrame) -> None:
    result = run_backtest(
        facts,
        lambda: GlobalGBM(max_iter=60, min_samples_leaf=20),
        METHODOLOGY,
        feature_kwargs={"horizons_per_origin": 7},
    )
    summary = result.summary().iloc[0]
    known = result.predictions.dropna(subset=["y"])
    by_hand = (known["yhat"] - known["y"]).abs().sum() / known["y"].abs().sum()
    assert summary["wape"] == pytest.approx(by_hand, rel=1e-9)
    assert summary["wape_ratio"] < 1.0


def test_backtest_rejects_short_history_and_bad_kwargs(facts: pd.DataFrame) -> None:
    short = facts.loc[facts["date"] < facts["date"].min() + pd.Timedelta(days=200)]
    with pytest.raises(ValueError, match="too short for 3 folds"):
        run_backtest(short, SeasonalNaive, METHODOLOGY)
    with pytest.raises(ValueError, match="unknown feature_kwargs"):
        run_backtest(facts, SeasonalNaive, METHODOLOGY, feature_kwargs={"lags": 3})
    with pytest.raises(ValueError, match="horizon_max"):
        run_backtest(facts, SeasonalNaive, METHODOLOGY, feature_kwargs={"horizon_max": 14})


def test_the_model_reads_its_level_adjusted_history_and_is_scored_on_raw_actuals(
    facts: pd.DataFrame, result: BacktestResult
) -> None:
    """A recipe's level adjustment restates what the model learns and forecasts from in the
    folds on or after the change; the actuals and the seasonal-naive baseline stay raw."""
    cargo = str(facts["cargo_type"].iloc[0])
    change = result.cutoffs[1].date()  # known to folds 1 and 2, not to fold 0
    step = LevelAdjustment("cargo_type", cargo, change, 3.0)
    kwargs = {"horizons_per_origin": 4, "train_window_days": 150}
    adjusted = run_backtest(facts, SpyModel, METHODOLOGY, kwargs, level_adjustments=[step])
    restated = run_backtest(adjust_levels(facts, [step]), SpyModel, METHODOLOGY, kwargs)
    raw, pred, ahead = result.predictions, adjusted.predictions, restated.predictions
    assert pred[["target_date", "y", "yhat_baseline"]].equals(
        raw[["target_date", "y", "yhat_baseline"]]
    )
    hit = (pred["cargo_type"].astype(str) == cargo).to_numpy()
    late = (pred["fold"] >= 1).to_numpy()
    assert hit.any() and not hit.all()
    # fold 0 reads the raw history; folds 1-2 the restated one, for the model only
    np.testing.assert_array_equal(pred["yhat"][~late], raw["yhat"][~late])
    np.testing.assert_array_equal(pred["yhat"][late], ahead["yhat"][late])
    assert not np.allclose(pred["yhat"][late & hit], raw["yhat"][late & hit])
    np.testing.assert_array_equal(pred["yhat"][~hit], raw["yhat"][~hit])
    with pytest.raises(ValueError, match="need the facts, not a SeriesPanel"):
        run_backtest(SeriesPanel.from_facts(facts), SpyModel, METHODOLOGY, level_adjustments=[step])
