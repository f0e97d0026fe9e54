"""Models: baseline arithmetic, the global GBM's contract, and the registry."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from test_features import make_facts, one_series

from freightml.features import FEATURE_COLUMNS, build_examples
from freightml.models import (
    MODEL_REGISTRY,
    SKOPS_TRUSTED_TYPES,
    GlobalGBM,
    SeasonalNaive,
    make_model,
)
from freightml.models.baseline import SameWeekdayMean
from freightml.models.gbm import encode_categories

pytestmark = [pytest.mark.unit]

SMALL_GBM = {"max_iter": 30, "min_samples_leaf": 20, "max_train_rows": 5_000}


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return build_examples(make_facts(n_series=10, n_days=300, seed=5), horizons_per_origin=7)


def test_seasonal_naive_uses_the_lag_then_the_7_day_mean() -> None:
    frame = pd.DataFrame(
        {
            "lag_same_weekday_ratio": [0.5, np.nan, np.nan, 2.0],
            "mean_7_ratio": [9.0, 1.5, np.nan, 1.0],
            "scale": [100.0, 10.0, 40.0, 3.0],
        }
    )
    pred = SeasonalNaive().fit(frame).predict(frame)
    np.testing.assert_allclose(pred, [50.0, 15.0, 40.0, 6.0])


def test_same_weekday_mean_averages_the_last_two_same_weekdays() -> None:
    # volume = ordinal day number: the mean of the two same-weekday days is known by hand
    facts = one_series(np.arange(1.0, 201.0))
    origin = pd.Timestamp("2024-01-01") + pd.Timedelta(days=150)
    ex = build_examples(facts, origins=[origin], horizon_max=28)
    pred = SameWeekdayMean().fit(ex).predict(ex)
    last = 150 + ex["horizon"] - 7 * np.ceil(ex["horizon"] / 7)  # 0-based day of the lag
    np.testing.assert_allclose(pred, (last + 1 + last - 6) / 2, rtol=1e-5)
    with pytest.raises(ValueError, match="SameWeekdayMean needs"):
        SameWeekdayMean().fit(ex.drop(columns="same_weekday_mean_2_ratio"))


def test_seasonal_naive_repeats_last_weeks_actuals(examples: pd.DataFrame) -> None:
    facts = make_facts(n_series=10, n_days=300, seed=5)
    origin = facts["date"].max() - pd.Timedelta(days=28)
    ex = build_examples(facts, origins=[origin], horizon_max=14)
    pred = SeasonalNaive().fit(ex).predict(ex)
    lag_date = ex["target_date"] - pd.to_timedelta(7 * np.ceil(ex["horizon"] / 7), unit="D")
    actual = (
        ex[["origin_station", "destination_station"]]
        .assign(date=lag_date)
        .merge(
            facts[["origin_station", "destination_station", "date", "volume_tonnes"]], how="left"
        )["volume_tonnes"]
        .to_numpy()
    )
    known = ~np.isnan(actual)
    assert known.mean() > 0.9
    np.testing.assert_allclose(pred[known], actual[known], rtol=1e-5)


def test_seasonal_naive_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="lag_same_weekday_ratio"):
        SeasonalNaive().predict(pd.DataFrame({"scale": [1.0]}))


def test_gbm_fits_predicts_in_scale_and_pickles(examples: pd.DataFrame) -> None:
    model = GlobalGBM(**{**SMALL_GBM, "max_train_rows": 1_000}).fit(examples)
    assert model.feature_columns_ == [*FEATURE_COLUMNS, "scale"]  # the input schema
    assert model.model_features_ == FEATURE_COLUMNS
    inputs_only = examples[model.feature_columns_].head(20)  # what an MLflow signature holds
    np.testing.assert_array_equal(model.predict(inputs_only), model.predict(examples.head(20)))
    doubled = examples[[*model.feature_columns_, "scale"]].head(20)  # tolerated
    np.testing.assert_array_equal(model.predict(doubled), model.predict(examples.head(20)))
    assert model.n_train_rows_ == 1_000
    assert model.empty_features_ == ["yoy_ratio"]  # < 1 year of history
    pred = model.predict(examples)
    assert pred.shape == (len(examples),) and np.isfinite(pred).all()
    # the model predicts volume relative to the series' level: doubling the level doubles
    # the forecast, a zero level gives zero
    np.testing.assert_allclose(
        model.predict(examples.assign(scale=2 * examples["scale"])), 2 * pred, rtol=1e-12
    )
    assert (model.predict(examples.head(5).assign(scale=0.0)) == 0).all()
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(examples), pred)
    assert model.predict(examples.iloc[:0]).shape == (0,)


def test_gbm_learns_the_level(examples: pd.DataFrame) -> None:
    model = GlobalGBM(**SMALL_GBM).fit(examples)
    known = examples.dropna(subset=["y"])
    total_ratio = model.predict(known).sum() / known["y"].sum()
    assert total_ratio == pytest.approx(1.0, abs=0.05)


def test_gbm_unseen_categories_become_missing(examples: pd.DataFrame) -> None:
    model = GlobalGBM(**SMALL_GBM).fit(examples)
    assert model.vocabulary_["cargo_type"] == sorted(examples["cargo_type"].unique())
    odd = examples.head(3).assign(cargo_type="unobtainium", origin_region="Atlantis")
    missing = examples.head(3).assign(cargo_type=None, origin_region=None)
    np.testing.assert_array_equal(model.predict(odd), model.predict(missing))
    # and the categories matter: forgetting them all changes the forecasts
    forgotten = examples.assign(cargo_type=None, origin_region=None)
    assert not np.array_equal(model.predict(forgotten), model.predict(examples))
    codes = encode_categories(pd.Series(["b", "zzz", None, "a"]), ["a", "b"])
    np.testing.assert_array_equal(codes, [1.0, np.nan, np.nan, 0.0])


def test_gbm_needs_known_targets(examples: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no example has a known y"):
        GlobalGBM().fit(examples.assign(y=np.nan))
    with pytest.raises(ValueError, match="lack columns.*scale"):
        GlobalGBM().fit(examples.drop(columns="scale"))


def test_gbm_is_an_mlflow_sklearn_model(examples: pd.DataFrame, tmp_path) -> None:
    import mlflow.sklearn as mlflow_sklearn

    model = GlobalGBM(**SMALL_GBM).fit(examples)
    mlflow_sklearn.save_model(
        model, tmp_path / "model", skops_trusted_types=SKOPS_TRUSTED_TYPES, pip_requirements=[]
    )
    loaded = mlflow_sklearn.load_model(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded.predict(examples.head(50)), model.predict(examples.head(50)))
    # the real-data recipe's parameters (configs/real-data.yaml) load the same way
    params = {"loss": "absolute_error", "target_base": "seasonal_naive"}
    real = GlobalGBM(**SMALL_GBM, **params, exclude_features=["month", "day_of_year"])
    real.fit(examples)
    mlflow_sklearn.save_model(
        real, tmp_path / "real", skops_trusted_types=SKOPS_TRUSTED_TYPES, pip_requirements=[]
    )
    loaded = mlflow_sklearn.load_model(str(tmp_path / "real"))
    assert loaded.model_features_ == real.model_features_
    np.testing.assert_allclose(loaded.predict(examples.head(50)), real.predict(examples.head(50)))


def test_make_model_builds_registered_models() -> None:
    assert set(MODEL_REGISTRY) == {"gbm", "seasonal_naive", "portfolio"}
    model = make_model("gbm", {"max_iter": 10, "learning_rate": 0.2})
    assert isinstance(model, GlobalGBM) and model.max_iter == 10
    assert clone(model).get_params() == model.get_params()
    assert isinstance(make_model("seasonal_naive", {}), SeasonalNaive)


def test_make_model_rejects_unknown_names_and_params() -> None:
    with pytest.raises(ValueError, match="unknown model 'prophet'.*gbm"):
        make_model("prophet", {})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['depth'\].*max_iter"):
        make_model("gbm", {"depth": 3})


def test_the_estimator_defaults_are_the_configured_recipe() -> None:
    """One recipe: GlobalGBM() and the settings' default model.params agree key by key."""
    from freightml.config import MODEL_PARAMS

    params = GlobalGBM().get_params()
    assert {k: params[k] for k in MODEL_PARAMS} == MODEL_PARAMS


def test_gbm_weekday_level_target_adds_the_trees_to_the_weekday_level() -> None:
    # a strong weekly schedule: 100 t on weekdays, 20 t at weekends, a little noise
    rng = np.random.default_rng(3)
    days = pd.date_range("2024-01-01", periods=200, freq="D")
    schedule = np.where(days.dayofweek < 5, 100.0, 20.0)
    facts = pd.concat(
        [
            one_series(schedule * rng.uniform(0.95, 1.05, len(days))).assign(origin_station=f"S{i}")
            for i in range(4)
        ],
        ignore_index=True,
    )
    ex = build_examples(facts, min_history_days=56, horizons_per_origin=7)
    params = {**SMALL_GBM, "max_iter": 5, "loss": "absolute_error"}
    model = GlobalGBM(**params, target_base="weekday_level").fit(ex)
    # the forecast is (weekday profile x 7-day mean + the trees' correction) x scale
    base = ex["weekday_profile_4w"] * ex["mean_7_ratio"]
    trees = model.model_.predict(model.encode(ex))
    np.testing.assert_allclose(
        model.predict(ex), np.maximum((base + trees) * ex["scale"], 0.0), rtol=1e-6
    )
    # so five trees already follow the schedule; from the plain level they do not
    known = ex.dropna(subset=["y"])
    weekend = pd.to_datetime(known["target_date"]).dt.dayofweek >= 5
    pred = model.predict(known)
    assert np.median(pred[~weekend]) == pytest.approx(100, rel=0.05)
    assert np.median(pred[weekend]) == pytest.approx(20, rel=0.1)
    plain = GlobalGBM(**params).fit(ex).predict(known)
    assert np.abs(plain - known["y"]).sum() > 2 * np.abs(pred - known["y"]).sum()
    # from the seasonal-naive forecast: the same composition with the baseline as base
    naive = GlobalGBM(**params, target_base="seasonal_naive").fit(ex)
    trees = naive.model_.predict(naive.encode(ex))
    base = SeasonalNaive().fit(ex).predict(ex) / ex["scale"]
    np.testing.assert_allclose(
        naive.predict(ex), np.maximum((base + trees) * ex["scale"], 0.0), rtol=1e-6
    )
    assert np.abs(plain - known["y"]).sum() > 2 * np.abs(naive.predict(known) - known["y"]).sum()


def test_gbm_names_a_bad_loss_or_target_base(examples: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="loss must be one of.*'huber'"):
        GlobalGBM(loss="huber").fit(examples)
    with pytest.raises(ValueError, match="target_base must be one of.*'yesterday'"):
        GlobalGBM(target_base="yesterday").fit(examples)


def test_gbm_exclude_features_hides_columns_from_the_trees(examples: pd.DataFrame) -> None:
    season = ["month", "day_of_year", "cargo_type"]
    model = GlobalGBM(**SMALL_GBM, exclude_features=season).fit(examples)
    assert model.model_features_ == [c for c in FEATURE_COLUMNS if c not in season]
    assert "cargo_type" not in model.categorical_features_
    assert model.feature_columns_ == [*FEATURE_COLUMNS, "scale"]  # the input schema stays
    known = examples.dropna(subset=["y"])
    pred = model.predict(known)
    # the excluded columns cannot change a forecast; an included one does
    moved = known.assign(month=np.float32(99), day_of_year=np.float32(-5), cargo_type="unseen")
    np.testing.assert_array_equal(model.predict(moved), pred)
    full = GlobalGBM(**SMALL_GBM).fit(examples)
    assert not np.array_equal(full.predict(moved), full.predict(known))
    with pytest.raises(ValueError, match=r"exclude_features names unknown features \['moon'\]"):
        GlobalGBM(exclude_features=["moon"]).fit(examples)


def test_saved_models_declare_freightmls_dependencies_pinned() -> None:
    from importlib.metadata import version

    from freightml.models.requirements import model_requirements

    reqs = model_requirements()
    assert f"scikit-learn=={version('scikit-learn')}" in reqs
    assert f"skops=={version('skops')}" in reqs and f"pandas=={version('pandas')}" in reqs
    assert len({r.split("==")[0] for r in reqs}) == len(reqs)
    assert not any(r.startswith(("pytest", "ruff")) for r in reqs)  # no dev dependencies
