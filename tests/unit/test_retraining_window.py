"""The shift-aware training window: each branch of the rule on synthetic facts, its
settings, its record, and that the settings it gives train (GBM weights, training stage)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from freightml.config import Settings
from freightml.data.synthetic import generate
from freightml.features import build_examples
from freightml.features.build import SERIES_KEY
from freightml.features.levels import adjust_levels, adjustments_of
from freightml.models import GlobalGBM
from freightml.retraining.changepoint import segment_shifts
from freightml.retraining.window import (
    DOWN_WEIGHT,
    FULL_WINDOW,
    PARAM_PREFIX,
    POST_CHANGE,
    RESTATED,
    LevelAdjustment,
    WindowChoice,
    WindowSettings,
    choose_window,
    level_adjustments,
    regime_start,
)

pytestmark = [pytest.mark.unit]

AS_OF = date(2025, 3, 31)  # the last day of the "small" data
N_SERIES = 300
EARLY_SHIFT = date(2024, 11, 20)  # 132 days before AS_OF: enough for post_change
LATE_SHIFT = date(2025, 2, 10)  # 50 days: down_weight
POST_91 = WindowSettings(min_post_change_days=91)  # the cut rule within the data's period
SMALL_GBM = {"max_iter": 20, "min_samples_leaf": 20, "max_train_rows": 5_000}


def facts_with(**injection: object) -> pd.DataFrame:
    return generate("small", seed=1, n_series=N_SERIES, **injection)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def plain() -> pd.DataFrame:
    return facts_with()


@pytest.fixture(scope="module")
def early_shift() -> pd.DataFrame:
    return facts_with(level_shift=(EARLY_SHIFT, 1.6), level_shift_cargo="coal")


def test_no_abrupt_change_keeps_the_full_window(plain: pd.DataFrame) -> None:
    choice = choose_window(plain, as_of=AS_OF, settings=WindowSettings(), cause="drift")
    assert choice.rule == FULL_WINDOW
    assert (choice.change_date, choice.start, choice.weight_before) == (None, None, None)
    assert choice.change_points == () and choice.new_segments == {}
    assert "no level shift in the last 182 days" in choice.reason
    settings = Settings()
    assert choice.apply(settings) is settings  # today's training, untouched


def test_an_old_enough_shift_trains_from_the_change(early_shift: pd.DataFrame) -> None:
    # by default the cut needs a year after the change; after 132 days coal is restated
    assert choose_window(early_shift, as_of=AS_OF, settings=WindowSettings()).rule == RESTATED
    choice = choose_window(early_shift, as_of=AS_OF, settings=POST_91, cause="drift")
    assert choice.rule == POST_CHANGE
    assert choice.change_date is not None and abs((choice.change_date - EARLY_SHIFT).days) <= 3
    assert any(p.segment == "cargo_type=coal" for p in choice.change_points)
    post = (AS_OF - choice.change_date).days + 1
    assert choice.post_change_days == post >= 91
    assert choice.window_days == min(post + 400, 730)
    assert choice.start == AS_OF - timedelta(days=choice.window_days - 1)
    assert (choice.weight_before, choice.pre_change_weight) == (choice.change_date, 0.0)
    assert "train on examples from the change" in choice.reason

    settings = choice.apply(Settings(model={"params": {"max_iter": 50}}))
    assert settings.data.train_window_days == choice.window_days
    assert settings.model.params["weight_before"] == choice.change_date.isoformat()
    assert settings.model.params["pre_change_weight"] == 0.0
    assert settings.model.params["max_iter"] == 50  # the rest of the recipe is kept
    assert Settings.model_validate_json(settings.to_json()) == settings  # a component param


def test_a_recent_shift_is_restated_or_down_weighted() -> None:
    facts = facts_with(level_shift=(LATE_SHIFT, 1.6), level_shift_cargo="coal")
    choice = choose_window(facts, as_of=AS_OF, settings=WindowSettings(), cause="quality")
    assert choice.rule == RESTATED
    assert choice.change_date is not None and abs((choice.change_date - LATE_SHIFT).days) <= 3
    assert (choice.start, choice.window_days) == (None, None)
    assert (choice.weight_before, choice.pre_change_weight) == (None, None)  # uniform
    assert "uniform weights. The facts before the change are restated" in choice.reason
    settings = choice.apply(Settings())
    assert settings.data == Settings().data  # the configured window
    assert "weight_before" not in settings.model.params
    assert settings.model.params["level_adjustments"] == [a.describe() for a in choice.adjustments]
    # without the restatement, the examples before the change are down-weighted
    window = WindowSettings(pre_change_weight=0.3, level_adjust=False)
    choice = choose_window(facts, as_of=AS_OF, settings=window, cause="quality")
    assert choice.rule == DOWN_WEIGHT and choice.adjustments == ()
    assert (choice.weight_before, choice.pre_change_weight) == (choice.change_date, 0.3)
    assert "weigh 0.3" in choice.reason
    settings = choice.apply(Settings())
    assert settings.data == Settings().data
    assert settings.model.params["pre_change_weight"] == 0.3
    assert "level_adjustments" not in settings.model.params


def test_a_new_region_named_by_the_decision_is_a_change() -> None:
    appears = date(2025, 2, 1)
    facts = facts_with(new_region="Crimean", new_region_from=appears)
    choice = choose_window(
        facts, as_of=AS_OF, settings=WindowSettings(), new_segments=["Crimean"], cause="new"
    )
    assert choice.new_segments == {"Crimean": appears}
    # 59 days of the new region: nothing to restate or to down-weight, the change recorded
    assert choice.rule == FULL_WINDOW and choice.adjustments == ()
    assert choice.change_date is not None and 0 <= (choice.change_date - appears).days <= 3
    assert "new Crimean from 2025-02-01" in choice.reason
    assert "the series there before kept their level" in choice.reason
    settings = Settings()
    assert choice.apply(settings) is settings
    # with a shorter requirement, the same facts train from the change
    short = WindowSettings(min_post_change_days=56)
    assert choose_window(facts, as_of=AS_OF, settings=short, new_segments=["Crimean"]).rule == (
        POST_CHANGE
    )


def test_a_new_region_that_takes_traffic_from_established_lanes_restates_them() -> None:
    # shippers loading coal in West Siberia send 30% of it through the new region from its
    # first day: the established lanes step down as the new ones open
    appears = date(2025, 2, 1)
    facts = facts_with(
        new_region="Crimean",
        new_region_from=appears,
        level_shift=(appears, 0.7),
        level_shift_region="West Siberian",
        level_shift_origin_only=True,
        level_shift_cargo="coal",
    )
    choice = choose_window(facts, as_of=AS_OF, settings=WindowSettings(), new_segments=["Crimean"])
    assert choice.new_segments == {"Crimean": appears}
    assert choice.rule == RESTATED  # not the new-series-only full window
    assert choice.change_date is not None and abs((choice.change_date - appears).days) <= 3
    (step,) = choice.adjustments[:1]
    assert (step.column, step.value) in {("cargo_type", "coal"), ("origin_region", "West Siberian")}
    assert step.factor < 1  # the old level restated down to the new one
    assert "new Crimean from 2025-02-01" in choice.reason


def test_the_latest_change_starts_the_regime() -> None:
    facts = facts_with(
        level_shift=(EARLY_SHIFT, 1.6),
        level_shift_cargo="coal",
        new_region="Crimean",
        new_region_from=date(2025, 3, 1),
    )
    choice = choose_window(facts, as_of=AS_OF, settings=WindowSettings(), new_segments=["Crimean"])
    assert choice.change_date is not None and choice.change_date >= date(2025, 3, 1)
    assert choice.rule == RESTATED  # coal's earlier shift is restated
    assert [(a.column, a.value) for a in choice.adjustments] == [("cargo_type", "coal")]


def test_changes_within_a_week_are_one_event() -> None:
    d = date(2025, 1, 20)
    assert regime_start([d, d + timedelta(days=1), d - timedelta(days=2)]) == d - timedelta(days=2)
    assert regime_start([d - timedelta(days=60), d]) == d  # the latest event starts the regime
    assert regime_start([d - timedelta(days=7), d]) == d


def test_the_window_is_capped(early_shift: pd.DataFrame) -> None:
    capped = WindowSettings(min_post_change_days=91, max_window_days=300)
    choice = choose_window(early_shift, as_of=AS_OF, settings=capped)
    assert choice.rule == POST_CHANGE and choice.window_days == 300
    configured = choose_window(early_shift, as_of=AS_OF, settings=POST_91, train_window_days=365)
    assert configured.window_days == 365


def test_as_params_record_the_choice(early_shift: pd.DataFrame) -> None:
    choice = choose_window(early_shift, as_of=AS_OF, settings=POST_91, cause="drift")
    params = choice.as_params()
    assert all(k.startswith(PARAM_PREFIX) and isinstance(v, str) for k, v in params.items())
    assert params[PARAM_PREFIX + "rule"] == POST_CHANGE
    assert params[PARAM_PREFIX + "cause"] == "drift"
    assert params[PARAM_PREFIX + "as_of"] == "2025-03-31"
    assert params[PARAM_PREFIX + "pre_change_weight"] == "0"
    assert "cargo_type=coal" in params[PARAM_PREFIX + "change_points"]
    full = WindowChoice(rule=FULL_WINDOW, cause="scheduled", as_of=AS_OF, reason="x" * 900)
    full_params = full.as_params()
    assert full_params[PARAM_PREFIX + "start"] == full_params[PARAM_PREFIX + "weight_before"] == ""
    assert len(full_params[PARAM_PREFIX + "reason"]) == 500


def test_bad_inputs_are_named(plain: pd.DataFrame) -> None:
    window = WindowSettings()
    with pytest.raises(ValueError, match="new segment 'Atlantis' is not a region"):
        choose_window(plain, as_of=AS_OF, settings=window, new_segments=["Atlantis"])
    with pytest.raises(ValueError, match="the facts end on 2025-03-31, long before"):
        choose_window(plain, as_of=date(2025, 6, 30), settings=window)
    with pytest.raises(ValueError, match="no facts"):
        choose_window(plain.iloc[:0], as_of=AS_OF, settings=window)
    choice = WindowChoice(
        rule=DOWN_WEIGHT,
        cause="x",
        as_of=AS_OF,
        reason="",
        weight_before=LATE_SHIFT,
        pre_change_weight=0.5,
    )
    with pytest.raises(
        ValueError, match=r"model 'seasonal_naive' lacks \['weight_before', 'pre_change_weight'\]"
    ):
        choice.apply(Settings(model={"name": "seasonal_naive", "params": {}}))
    with pytest.raises(ValueError, match="a restated window needs level adjustments"):
        WindowChoice(rule=RESTATED, cause="x", as_of=AS_OF, reason="").apply(Settings())
    with pytest.raises(ValueError, match="needs weight_before and pre_change_weight"):
        WindowChoice(rule=POST_CHANGE, cause="x", as_of=AS_OF, reason="").apply(Settings())


# -- the level adjustment --------------------------------------------------------------------

ADJUSTING = WindowSettings()


def test_a_cargo_shift_is_adjusted_in_its_cargo_not_in_the_regions_that_load_it() -> None:
    facts = facts_with(level_shift=(LATE_SHIFT, 1.6), level_shift_cargo="coal")
    before = segment_shifts(facts, as_of=AS_OF)
    assert {s.segment for s in before} > {"cargo_type=coal"}  # seen diluted in regions too
    adjustments = level_adjustments(facts, as_of=AS_OF, settings=ADJUSTING)
    assert len(adjustments) == 1
    (step,) = adjustments
    assert (step.column, step.value) == ("cargo_type", "coal")
    assert abs((step.before - LATE_SHIFT).days) <= 3
    assert 1.45 <= step.factor <= 1.75
    # the adjusted facts hold no level shift left, and the days after the change are untouched
    adjusted = adjust_levels(facts, adjustments)
    assert segment_shifts(adjusted, as_of=AS_OF) == []
    late = pd.to_datetime(facts["date"]) >= pd.Timestamp(step.before)
    assert np.array_equal(adjusted.loc[late, "volume_tonnes"], facts.loc[late, "volume_tonnes"])

    # the rule carries it: recorded, and the model's parameter after apply()
    choice = choose_window(facts, as_of=AS_OF, settings=ADJUSTING)
    assert choice.rule == RESTATED
    assert choice.adjustments == adjustments
    assert choice.as_params()[PARAM_PREFIX + "level_adjustments"] == step.describe()
    assert "restated: " + step.describe() in choice.reason
    params = choice.apply(Settings()).model.params
    assert params["level_adjustments"] == [step.describe()]
    assert LevelAdjustment.parse(step.describe()) == step  # the recorded factor is the one used
    off = choose_window(facts, as_of=AS_OF, settings=WindowSettings(level_adjust=False))
    assert (off.rule, off.adjustments) == (DOWN_WEIGHT, ())
    assert "level_adjustments" not in off.apply(Settings()).model.params
    with pytest.raises(ValueError, match="max_adjustments must be >= 1"):
        level_adjustments(facts, as_of=AS_OF, settings=ADJUSTING, max_adjustments=0)


def test_no_shift_or_a_new_region_has_nothing_to_adjust(plain: pd.DataFrame) -> None:
    assert level_adjustments(plain, as_of=AS_OF, settings=ADJUSTING) == ()
    facts = facts_with(new_region="Crimean", new_region_from=date(2025, 2, 1))
    assert level_adjustments(facts, as_of=AS_OF, settings=ADJUSTING) == ()
    choice = choose_window(facts, as_of=AS_OF, settings=ADJUSTING, new_segments=["Crimean"])
    assert choice.adjustments == ()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lookback_days": 60, "min_segment_days": 28}, "must cover two segments"),
        ({"min_segment_days": 3}, "greater than or equal to 7"),
        ({"pre_change_weight": 0.0}, "greater than 0"),
        ({"pre_change_weight": 1.5}, "less than or equal to 1"),
        ({"min_post_change_days": 7}, "greater than or equal to 28"),
        ({"segment_columns": ()}, "at least one fact column"),
        ({"threshold": -1}, "greater than 0"),
        ({"window": 30}, "Extra inputs are not permitted"),
    ],
)
def test_window_settings_validation(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WindowSettings(**fields)


def test_window_settings_document_every_field() -> None:
    for name, info in WindowSettings.model_fields.items():
        assert info.description, name


# -- the weights in training ------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples(early_shift: pd.DataFrame) -> pd.DataFrame:
    return build_examples(early_shift, horizons_per_origin=4, origin_step_days=14)


def test_gbm_leaves_out_examples_before_the_change_at_weight_zero(examples: pd.DataFrame) -> None:
    change = pd.Timestamp(EARLY_SHIFT)
    post = int((examples["y"].notna() & (examples["origin_date"] >= change)).sum())
    unsampled = {**SMALL_GBM, "max_train_rows": None}
    weighted = GlobalGBM(**unsampled, weight_before=EARLY_SHIFT.isoformat(), pre_change_weight=0)
    weighted.fit(examples)
    assert 0 < post < int(examples["y"].notna().sum())
    assert weighted.n_train_rows_ == post and weighted.n_down_weighted_rows_ == 0
    half = GlobalGBM(**SMALL_GBM, weight_before=EARLY_SHIFT.isoformat(), pre_change_weight=0.5)
    half.fit(examples)
    known = int(examples["y"].notna().sum())
    assert half.n_train_rows_ == min(known, 5_000) and half.n_down_weighted_rows_ > 0
    plain = GlobalGBM(**SMALL_GBM).fit(examples)
    test = examples.loc[examples["origin_date"] == examples["origin_date"].max()]
    assert not np.allclose(weighted.predict(test), plain.predict(test))
    assert not np.allclose(half.predict(test), plain.predict(test))


def test_gbm_example_weights(examples: pd.DataFrame) -> None:
    gbm = GlobalGBM(weight_before="2025-01-01", pre_change_weight=0.25)
    w = gbm.example_weights(examples)
    early = (examples["origin_date"] < pd.Timestamp("2025-01-01")).to_numpy()
    assert set(w[early]) == {0.25} and set(w[~early]) == {1.0}
    # a backtest fold that ends before the change: every example weighs the same
    before = examples.loc[early]
    assert (gbm.example_weights(before) == 1.0).all()
    assert (GlobalGBM().example_weights(examples) == 1.0).all()
    with pytest.raises(ValueError, match="weight_before must be an ISO date, got 'soon'"):
        GlobalGBM(weight_before="soon").example_weights(examples)
    with pytest.raises(ValueError, match=r"pre_change_weight must be in \[0, 1\], got 2"):
        GlobalGBM(weight_before="2025-01-01", pre_change_weight=2).example_weights(examples)
    with pytest.raises(ValueError, match=r"lack columns \['origin_date'\]"):
        gbm.example_weights(examples.drop(columns="origin_date"))


@pytest.mark.slow
def test_the_training_stages_run_with_a_shift_aware_choice(
    settings: Settings, early_shift: pd.DataFrame, tmp_path: Path
) -> None:
    """Ingest -> features -> train on the settings the choice gives (synthetic "small"):
    the window is cut, the pre-change examples are out of the fit and of the profile."""
    from freightml.monitoring.profile import PROFILE_FILE, ReferenceProfile
    from freightml.stages.features import build_features
    from freightml.stages.ingest import ingest_data
    from freightml.stages.train import train_model

    base = Settings.model_validate(
        {
            **settings.model_dump(),
            "data": {"synthetic_size": "small", "seed": 1},
            "model": {"params": SMALL_GBM},
        }
    )
    # the choice made on the shifted facts, applied to settings whose source is the plain
    # small data: the stages only need the window and the weights
    choice = choose_window(early_shift, as_of=AS_OF, settings=POST_91, cause="test")
    chosen = choice.apply(base)
    info = ingest_data(chosen, tmp_path / "facts.parquet")
    assert info.window_days == choice.window_days
    assert info.start == str(choice.start)
    build_features(chosen, tmp_path / "facts.parquet", tmp_path / "examples.parquet")
    trained = train_model(chosen, tmp_path / "examples.parquet", tmp_path / "model")
    examples = pd.read_parquet(tmp_path / "examples.parquet")
    assert choice.change_date is not None
    post = examples["y"].notna() & (examples["origin_date"] >= pd.Timestamp(choice.change_date))
    assert 0 < post.sum() < examples["y"].notna().sum()
    profile = ReferenceProfile.load(tmp_path / "model" / PROFILE_FILE)
    assert profile.window_start > choice.change_date  # the regime the model learned
    assert profile.window_rows == int(post.sum())
    assert trained.model == "gbm"
    # the level adjustment: coal's targets before the change are restated, nothing else
    (step,) = choice.adjustments
    assert (step.column, step.value) == ("cargo_type", "coal")
    key = ["target_date", *SERIES_KEY]
    raw = pd.read_parquet(tmp_path / "facts.parquet").rename(columns={"date": "target_date"})
    merged = (
        examples.loc[examples["y"].notna()]
        .astype({c: str for c in SERIES_KEY})
        .merge(raw.astype({c: str for c in SERIES_KEY}), on=key, validate="many_to_one")
    )
    hit = (merged["cargo_type"] == "coal") & (merged["target_date"] < pd.Timestamp(step.before))
    assert hit.any() and not hit.all()
    np.testing.assert_allclose(merged.loc[hit, "y"], merged.loc[hit, "volume_tonnes"] * step.factor)
    np.testing.assert_allclose(merged.loc[~hit, "y"], merged.loc[~hit, "volume_tonnes"])
    import mlflow.sklearn

    saved = mlflow.sklearn.load_model(str(tmp_path / "model"))
    assert adjustments_of(saved) == choice.adjustments  # what serving will read
