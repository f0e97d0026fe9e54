"""The portfolio: statistical forecasts, the blend, interval calibration, nested selection."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin

from freightml.config import Settings
from freightml.data.synthetic import generate
from freightml.evaluation import load_methodology, run_backtest
from freightml.evaluation.backtest import backtest_cutoffs
from freightml.evaluation.selection import history_plan, select_candidate
from freightml.features.build import SERIES_KEY, SeriesPanel, build_examples
from freightml.models import MODEL_REGISTRY, make_model, recursive
from freightml.models.intervals import (
    LEVELS,
    IntervalTable,
    calibrate,
    coverage,
    interpolate_quantile,
    quantile_column,
)
from freightml.models.portfolio import Portfolio
from freightml.models.statistical import add_statistical, stat_column, statistical_forecasts
from freightml.stages.features import auto_origin_step, planned_feature_kwargs

pytestmark = [pytest.mark.unit]

SMALL_GBM = {"max_iter": 30, "min_samples_leaf": 20, "max_train_rows": 20_000}


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    return generate("small", seed=3)


@pytest.fixture(scope="module")
def methodology():
    return load_methodology("configs/methodology.yaml")


# -- intervals ---------------------------------------------------------------------------
def _planted(n: int, rng: np.random.Generator, spread: dict[str, float]) -> pd.DataFrame:
    """Rows whose actual is forecast + N(0, spread[cargo]) x scale: known quantiles."""
    cargo = rng.choice(list(spread), n)
    scale = rng.uniform(10, 1000, n)
    yhat = scale * rng.uniform(0.5, 1.5, n)
    sd = np.array([spread[c] for c in cargo])
    return pd.DataFrame(
        {
            "cargo_type": cargo,
            "horizon": rng.integers(1, 29, n),
            "scale": scale,
            "yhat": yhat,
            "y": yhat + rng.normal(0, 1, n) * sd * scale,
        }
    )


def test_intervals_recover_planted_quantiles_per_segment() -> None:
    """Residuals with a known spread per cargo type: the calibrated quantiles are the normal
    ones of each spread, and fresh rows fall inside the 80% / 95% intervals at those rates."""
    rng = np.random.default_rng(0)
    spread = {"coal": 0.1, "oil": 0.4}
    table = calibrate(_planted(40_000, rng, spread), "cargo_type")
    for cargo, sd in spread.items():
        for bucket in table.cells[cargo]:
            assert bucket is not None
            expected = stats.norm.ppf(LEVELS) * sd
            assert np.allclose(bucket, expected, atol=0.06 * sd * 4)
    fresh = _planted(20_000, rng, spread)
    quantiles = table.quantiles(fresh, fresh["yhat"].to_numpy())
    frame = pd.concat([fresh, quantiles], axis=1)
    # negative quantiles are cut at 0 tonnes; these forecasts are far from 0
    got = coverage(frame)
    assert got["coverage_80"] == pytest.approx(0.80, abs=0.015)
    assert got["coverage_95"] == pytest.approx(0.95, abs=0.01)
    for cargo in spread:
        part = frame.loc[frame["cargo_type"] == cargo]
        assert coverage(part)["coverage_80"] == pytest.approx(0.80, abs=0.02)


def test_intervals_pool_thin_cells_and_stay_ordered_and_non_negative() -> None:
    rng = np.random.default_rng(1)
    rows = _planted(5_000, rng, {"coal": 0.2})
    rows.loc[:9, "cargo_type"] = "grain"  # 10 residuals: too few for a cell of its own
    table = calibrate(rows, "cargo_type")
    assert all(q is None for q in table.cells["grain"])
    grain = pd.DataFrame({"cargo_type": ["grain"], "horizon": [3], "scale": [100.0]})
    unknown = grain.assign(cargo_type="never seen")
    for frame in (grain, unknown):  # both read the horizon bucket's pooled quantiles
        got = table.quantiles(frame, np.array([50.0])).iloc[0].to_numpy()
        expected = np.maximum(50.0 + np.array(table.pooled[0]) * 100.0, 0.0)
        assert np.allclose(got, np.maximum.accumulate(expected))
    low = table.quantiles(grain, np.array([0.0])).iloc[0].to_numpy()
    assert (low >= 0).all() and (np.diff(low) >= 0).all()
    assert list(table.quantiles(grain, np.array([1.0])).columns) == [
        quantile_column(q) for q in LEVELS
    ]
    assert quantile_column(0.025) == "tonnes_p2_5" and quantile_column(0.9) == "tonnes_p90"
    # between two calibrated levels the quantile is linear; outside them an error
    matrix = table.quantiles(grain, np.array([50.0])).to_numpy()
    at_85 = interpolate_quantile(LEVELS, matrix, 0.85)
    p75, p90 = matrix[0, LEVELS.index(0.75)], matrix[0, LEVELS.index(0.9)]
    assert at_85[0] == pytest.approx(p75 + (p90 - p75) * (0.85 - 0.75) / 0.15)
    assert interpolate_quantile(LEVELS, matrix, 0.9)[0] == pytest.approx(p90)
    with pytest.raises(ValueError, match="outside the calibrated"):
        interpolate_quantile(LEVELS, matrix, 0.99)
    # the JSON form round-trips (the model stores the table as a plain dict)
    assert IntervalTable.model_validate(table.model_dump(mode="json")) == table


def test_calibration_rejects_what_it_cannot_use() -> None:
    with pytest.raises(ValueError, match=r"needs columns \['scale'\]"):
        calibrate(pd.DataFrame({"y": [1.0], "yhat": [1.0], "horizon": [1], "s": ["a"]}), "s")
    empty = pd.DataFrame({"y": [np.nan], "yhat": [1.0], "scale": [1.0], "horizon": [1], "s": ["a"]})
    with pytest.raises(ValueError, match="no out-of-sample residual"):
        calibrate(empty, "s")


# -- statistical forecasts ---------------------------------------------------------------
def test_statistical_forecasts_read_nothing_after_the_origin(facts) -> None:
    panel = SeriesPanel.from_facts(facts)
    origin = panel.last_date - pd.Timedelta(days=60)
    later = facts["date"] > origin
    rewritten = facts.assign(volume_tonnes=np.where(later, 1e6, facts["volume_tonnes"]))
    names = ["seasonal_window_average", "mstl", "lightgbm"]
    a = statistical_forecasts(panel, origin, 28, names)
    b = statistical_forecasts(SeriesPanel.from_facts(rewritten), origin, 28, names)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(panel.series) * 28 and (a[stat_column("mstl")] >= 0).all()
    assert a[stat_column("lightgbm")].notna().all() and (a[stat_column("lightgbm")] >= 0).all()
    assert a["target_date"].min() == origin + pd.Timedelta(days=1)
    # the seasonal window average is the mean of the last 4 same-weekday values
    first = panel.series.iloc[0]
    series = facts.loc[
        (facts["origin_station"] == first["origin_station"])
        & (facts["destination_station"] == first["destination_station"])
        & (facts["cargo_type"] == first["cargo_type"])
    ].set_index("date")["volume_tonnes"]
    day1 = origin + pd.Timedelta(days=1)
    weeks = [day1 - pd.Timedelta(days=7 * k) for k in range(1, 5)]
    if all(w in series.index for w in weeks):
        got = a.loc[
            (a["origin_station"] == first["origin_station"])
            & (a["destination_station"] == first["destination_station"])
            & (a["cargo_type"] == first["cargo_type"])
            & (a["target_date"] == day1),
            stat_column("seasonal_window_average"),
        ].iloc[0]
        assert got == pytest.approx(series.loc[weeks].mean(), rel=1e-6)


def test_the_recursive_lightgbm_is_one_model_over_every_series(facts) -> None:
    """A sample of series gets the forecasts the whole panel gets (one global fit over every
    series with enough history, whichever are forecast), the fit is repeatable, and with
    under MIN_TRAIN_DAYS of history anywhere it answers NaN (the fallback's turn)."""
    panel = SeriesPanel.from_facts(facts)
    origin = panel.last_date - pd.Timedelta(days=30)
    column = stat_column("lightgbm")
    whole = statistical_forecasts(panel, origin, 14, ["lightgbm"])
    rows = np.array([0, 3, 5])
    sample = statistical_forecasts(panel, origin, 14, ["lightgbm"], series_rows=rows)
    keys = panel.series.iloc[rows][SERIES_KEY]
    expected = whole.merge(keys, on=SERIES_KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(sample.reset_index(drop=True), expected)
    again = statistical_forecasts(panel, origin, 14, ["lightgbm"], series_rows=rows)
    pd.testing.assert_frame_equal(sample, again)
    # the forecasts move with the series: not one number for everyone
    assert whole.groupby(SERIES_KEY)[column].mean().nunique() > len(panel.series) // 2
    young = panel.start + pd.Timedelta(days=recursive.MIN_TRAIN_DAYS - 2)
    short = statistical_forecasts(panel, young, 7, ["lightgbm", "seasonal_window_average"])
    assert len(short) and short[column].isna().all()
    assert short[stat_column("seasonal_window_average")].notna().all()


def test_the_holiday_aware_lightgbm_learns_a_planted_holiday_effect(facts) -> None:
    """Volume planted at a fifth on Russian public holidays: the recursive LightGBM that
    reads the calendar forecasts the New Year days far better than the one that does not,
    which only sees the drop after it happened; it needs a calendar to read."""
    from freightml.features.calendar import country_holidays

    days = pd.to_datetime(facts["date"])
    holidays = country_holidays(days.min(), days.max(), "RU")
    on_holiday = days.values.astype("datetime64[D]")
    planted = facts.assign(
        volume_tonnes=np.where(
            np.isin(on_holiday, holidays), facts["volume_tonnes"] * 0.2, facts["volume_tonnes"]
        )
    )
    panel = SeriesPanel.from_facts(planted)
    origin = pd.Timestamp("2024-12-24")
    names = ["lightgbm", "lightgbm_holidays"]
    got = statistical_forecasts(panel, origin, 28, names, history_days=400, holiday_country="RU")
    actual = planted.set_index([*SERIES_KEY, "date"])["volume_tonnes"]
    got = got.join(actual, on=[*SERIES_KEY, "target_date"]).fillna({"volume_tonnes": 0.0})
    hol = got.loc[np.isin(got["target_date"].values.astype("datetime64[D]"), holidays)]
    assert len(hol) == len(panel.series) * 10  # 30 December .. 8 January
    errors = {
        n: np.abs(hol[stat_column(n)] - hol["volume_tonnes"]).sum() / hol["volume_tonnes"].sum()
        for n in names
    }
    assert errors["lightgbm_holidays"] < 0.5 * errors["lightgbm"], errors
    with pytest.raises(ValueError, match="needs a holiday_country"):
        recursive.forecast(pd.DataFrame(columns=["unique_id", "ds", "y"]), 7, name=names[1])
    with pytest.raises(ValueError, match="unknown recursive model"):
        recursive.forecast(pd.DataFrame(columns=["unique_id", "ds", "y"]), 7, name="xgb")


def test_young_series_get_no_statistical_forecast_and_unknown_models_fail(facts) -> None:
    panel = SeriesPanel.from_facts(facts)
    origin = panel.start + pd.Timedelta(days=20)  # 21 days of history: under 28
    assert statistical_forecasts(panel, origin, 7, ["seasonal_window_average"]).empty
    examples = build_examples(panel, origins=[origin], horizon_max=7, min_history_days=1)
    added = add_statistical(examples, panel, ["seasonal_window_average"], horizon_max=7)
    assert added[stat_column("seasonal_window_average")].isna().all()
    assert added.index.equals(examples.index)
    with pytest.raises(ValueError, match="unknown statistical model"):
        statistical_forecasts(panel, origin, 7, ["prophet"])


# -- the blend ---------------------------------------------------------------------------
def test_portfolio_blends_where_the_statistical_forecast_exists(facts) -> None:
    examples = build_examples(facts, horizon_max=28, horizons_per_origin=7)
    known = examples.loc[examples["y"].notna()]
    model = Portfolio(ml="gbm", ml_params=SMALL_GBM, statistical="mstl", ml_weight=0.7)
    model.fit(known)
    ml = model.ml_model_.predict(known)
    stat = np.where(np.arange(len(known)) % 2 == 0, 100.0, np.nan)
    got = model.predict(known.assign(stat_mstl=stat))
    assert np.allclose(got, np.where(np.isnan(stat), ml, 0.7 * ml + 0.3 * 100.0))
    assert np.allclose(model.predict(known), ml)  # no column: the ML part alone
    only_stat = Portfolio(ml=None, statistical="mstl", ml_weight=0.0).fit(known)
    naive = make_model("seasonal_naive").fit(known).predict(known)
    assert np.allclose(
        only_stat.predict(known.assign(stat_mstl=stat)), np.where(np.isnan(stat), naive, 100.0)
    )
    assert model.statistical_models == ["mstl"] and only_stat.level_adjustments is None
    with pytest.raises(ValueError, match="no calibrated intervals"):
        model.predict_quantiles(known)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ml": None, "statistical": None}, "needs an ml part"),
        ({"ml_weight": 1.5, "statistical": "mstl"}, r"ml_weight must be in \[0, 1\]"),
        ({"ml": None, "statistical": "mstl", "ml_weight": 0.5}, "without an ml part"),
        ({"ml_weight": 0.5}, "without a statistical part"),
        ({"statistical": "prophet", "ml_weight": 0.5}, "unknown statistical model"),
        ({"ml": "portfolio"}, "ml must be one of"),
    ],
)
def test_portfolio_rejects_bad_recipes(facts, params: dict, message: str) -> None:
    examples = build_examples(facts, horizon_max=7, horizons_per_origin=1).dropna(subset=["y"])
    with pytest.raises(ValueError, match=message):
        Portfolio(**{"ml_params": SMALL_GBM, **params}).fit(examples)


# -- the history plan and the selection ------------------------------------------------------
def test_history_plan_adapts_to_short_panels(methodology) -> None:
    start = pd.Timestamp("2001-01-01")
    long = history_plan(
        start, start + pd.Timedelta(days=800), methodology, min_history_days=91, inner_folds=2
    )
    reported = backtest_cutoffs(start + pd.Timedelta(days=800), methodology)
    assert long.reported == reported and long.min_history_days == 91
    assert long.inner == [reported[0] - pd.Timedelta(days=56), reported[0] - pd.Timedelta(days=28)]
    short = history_plan(
        start, start + pd.Timedelta(days=180), methodology, min_history_days=91, inner_folds=2
    )
    assert len(short.inner) == 1 and short.min_history_days == (short.inner[0] - start).days - 28
    with pytest.raises(ValueError, match="too short for a validation fold"):
        history_plan(
            start, start + pd.Timedelta(days=130), methodology, min_history_days=91, inner_folds=2
        )
    assert auto_origin_step(730 - 91) == 7 and auto_origin_step(140) == 1
    assert auto_origin_step(274) == 3


def test_holiday_evidence_tells_a_calendar_that_moves_the_panel_from_one_that_does_not() -> None:
    """Daily totals with weekly noise: the Russian holidays planted at 60% are found (and
    the evidence says so in words); the same totals without them, or judged with another
    country's calendar, are not; a history with too few holidays is no evidence."""
    from freightml.features.calendar import HolidayEvidence, country_holidays, holiday_evidence

    rng = np.random.default_rng(5)
    days = pd.date_range("2023-01-01", "2024-12-31", freq="D")
    plain = pd.Series(
        1000 * (1 + 0.2 * (days.dayofweek < 5)) * rng.lognormal(0, 0.05, len(days)), days
    )
    on_holiday = days.isin(pd.DatetimeIndex(country_holidays(days[0], days[-1], "RU")))
    planted = plain.where(~on_holiday, plain * 0.6)

    found = holiday_evidence(planted, "RU")
    assert isinstance(found, HolidayEvidence) and found.moves and found.holidays > 20
    assert found.p_value is not None and found.p_value < 1e-6
    assert found.holiday_median > 0.3 > 0.1 > found.ordinary_median
    assert "RU holiday calendar moves this panel" in found.describe()
    assert not holiday_evidence(plain, "RU").moves
    assert not holiday_evidence(planted, "BR").moves  # Brazil's holidays are other days
    young = holiday_evidence(planted[:40], "RU")  # 1-8 January without a week before
    assert not young.moves and young.p_value is None and "needed to judge" in young.describe()


def test_the_selection_offers_the_holiday_model_only_where_the_calendar_moves_the_panel(
    facts, methodology
) -> None:
    """The synthetic panel has Russian holidays: the holiday-aware LightGBM is a candidate,
    ordered before the plain one; judged with Brazil's calendar it is not offered and the
    ML candidates do not read the holiday features."""
    settings = Settings()
    kw = planned_feature_kwargs(settings, facts)
    selection = settings.selection.model_copy(
        update={
            "ml_recipes": {"gbm": {}},
            "statistical": ["lightgbm", "lightgbm_holidays"],
            "max_train_rows": 20_000,
            "ensembles": False,
        }
    )
    params = {**settings.model.params, **SMALL_GBM}

    def run(country: str):
        return select_candidate(
            facts,
            methodology,
            model_name="gbm",
            model_params=params,
            selection=selection,
            feature_kwargs={**kw, "holiday_country": country},
        )

    russian = run("RU")
    labels = [c.label for c in russian.candidates]
    assert labels.index("lightgbm_holidays") < labels.index("lightgbm")
    assert "RU holiday calendar moves this panel" in russian.notes[0]
    foreign = run("BR")
    labels = [c.label for c in foreign.candidates]
    assert "lightgbm_holidays" not in labels and "lightgbm" in labels
    assert "does not measurably move" in foreign.notes[0]
    gbm = next(c for c in foreign.candidates if c.label == "gbm")
    assert {"is_holiday", "days_to_holiday"} <= set(gbm.params["ml_params"]["exclude_features"])


class ReportedFoldPeeker(RegressorMixin, BaseEstimator):
    """Reads the actual on target days after ``reveal_after`` (the first reported cutoff)
    and answers 3x it before: perfect on the reported folds only."""

    reveal_after: ClassVar[pd.Timestamp | None] = None

    def fit(self, examples: pd.DataFrame, y: Any = None) -> ReportedFoldPeeker:
        self.feature_columns_ = ["y", "target_date"]
        return self

    def predict(self, examples: pd.DataFrame) -> np.ndarray:
        y = examples["y"].fillna(0).to_numpy(dtype=float)
        late = pd.to_datetime(examples["target_date"]) > self.reveal_after
        return np.where(late, y, 3 * y)


def test_selection_never_chooses_a_candidate_that_wins_only_on_the_reported_folds(
    facts, methodology, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nested selection: the peeker is the best candidate on the reported folds by far, and
    the selection, which only sees folds ending on the first reported cutoff, drops it."""
    monkeypatch.setitem(MODEL_REGISTRY, "peeker", ReportedFoldPeeker)
    settings = Settings()
    kw = planned_feature_kwargs(settings, facts)
    reported = backtest_cutoffs(pd.to_datetime(facts["date"]).max(), methodology)
    monkeypatch.setattr(ReportedFoldPeeker, "reveal_after", reported[0])
    honest = run_backtest(facts, ReportedFoldPeeker, methodology, kw).summary().iloc[0]
    assert honest["wape"] == 0.0  # on the reported folds it is perfect

    selection = settings.selection.model_copy(
        update={
            "ml_recipes": {"gbm": {}, "peek": {"model": "peeker"}},
            "statistical": ["seasonal_window_average", "lightgbm"],
            "max_train_rows": 20_000,
            "calendar_ablation": False,
        }
    )
    result = select_candidate(
        facts,
        methodology,
        model_name="gbm",
        model_params={**settings.model.params, **SMALL_GBM},
        selection=selection,
        feature_kwargs=kw,
    )
    scores = {c.label: c for c in result.candidates}
    assert scores["peek"].wape == pytest.approx(2.0)  # 3x the actuals on the inner folds
    assert result.chosen != "peek" and not scores["peek"].chosen
    assert all(pd.Timestamp(c) + pd.Timedelta(days=28) <= reported[0] for c in result.inner_cutoffs)
    chosen = scores[result.chosen]
    lowest = min(c.wape for c in result.candidates if c.label != "peek")
    assert chosen.wape <= lowest * (1 + selection.tolerance)
    assert set(scores) >= {"gbm", "seasonal_window_average", "lightgbm"}
    assert scores["lightgbm"].kind == "recursive"
    assert result.recipe == chosen.params
    assert "| peek | ml |" in result.to_markdown()
    # the chosen recipe builds, and its intervals come from the inner-fold residuals
    Portfolio(**result.recipe)
    assert result.intervals.n_residuals == result.scored_rows


def test_the_reference_profile_holds_predictions_only_when_they_are_the_served_ones(
    facts,
) -> None:
    """A model with a part fitted at the origin gets no prediction profile (its in-sample
    predictions would be its ML part's or seasonal naive's, not what it serves); an ML-only
    model does."""
    from freightml.monitoring.profile import PREDICTION, TARGET
    from freightml.stages.train import reference_profile

    examples = build_examples(facts, horizon_max=28, horizons_per_origin=7)
    settings = Settings()
    ml_only = Portfolio(ml="gbm", ml_params=SMALL_GBM).fit(examples.loc[examples["y"].notna()])
    blended = Portfolio(ml="gbm", ml_params=SMALL_GBM, statistical="lightgbm", ml_weight=0.5)
    blended.fit(examples.loc[examples["y"].notna()])
    names = {f.name for f in reference_profile(settings, examples, ml_only).features}
    assert {PREDICTION, TARGET} <= names
    names = {f.name for f in reference_profile(settings, examples, blended).features}
    assert PREDICTION not in names and TARGET in names and len(names) > 10
