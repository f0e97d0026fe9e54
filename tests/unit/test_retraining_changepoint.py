"""Change-point detection: synthetic daily series with and without a level shift, and the
segments of the project's synthetic facts with a shift injected in one cargo type."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from freightml.data.synthetic import generate
from freightml.retraining.changepoint import (
    ALL,
    LevelShift,
    detect_level_shift,
    first_seen,
    segment_shifts,
)

pytestmark = [pytest.mark.unit]

THRESHOLD = 7.0  # WindowSettings' default
MIN_RATIO = 1.2
WEEKDAY = np.array([1.15, 1.1, 1.1, 1.05, 1.0, 0.8, 0.7])  # a strong weekly profile


def daily(
    seed: int,
    *,
    days: int = 182,
    shift_at: int | None = None,
    factor: float = 1.6,
    noise: float = 0.10,
    wander: float = 0.03,
    trend: float = 0.0,
    start: str = "2025-01-06",
) -> pd.Series:
    """Level 1000 t/day x weekday profile x lognormal noise with AR(1) wander, optionally a
    level step of ``factor`` from day ``shift_at`` and a log-linear trend over the period."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    wander = np.zeros(days)
    shocks = rng.normal(0, wander, days)
    for d in range(1, days):
        wander[d] = 0.8 * wander[d - 1] + shocks[d]
    log_level = np.log(1000.0) + trend * t / days + wander + rng.normal(0, noise, days)
    if shift_at is not None:
        log_level[shift_at:] += np.log(factor)
    index = pd.date_range(start, periods=days, freq="D")
    return pd.Series(np.exp(log_level) * WEEKDAY[index.dayofweek], index=index)


def detect(values: np.ndarray | pd.Series, **kw: object) -> LevelShift | None:
    return detect_level_shift(
        values,
        min_segment=int(kw.pop("min_segment", 14)),  # type: ignore[call-overload]
        threshold=THRESHOLD,
        min_ratio=MIN_RATIO,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("seed", range(12))
def test_no_false_alarm_without_a_shift(seed: int) -> None:
    assert detect(daily(seed)) is None


@pytest.mark.parametrize("seed", range(6))
def test_a_gradual_trend_is_not_a_shift(seed: int) -> None:
    # +40% over half a year: drift, not an abrupt change
    assert detect(daily(seed, trend=np.log(1.4))) is None


@pytest.mark.parametrize(("seed", "shift_at"), [(0, 120), (1, 140), (2, 95), (3, 160), (4, 61)])
def test_a_1_6x_shift_is_found_within_a_few_days(seed: int, shift_at: int) -> None:
    series = daily(seed, shift_at=shift_at)
    found = detect(series)
    assert found is not None
    assert abs(found.index - shift_at) <= 3
    assert found.date == series.index[found.index].date()
    assert found.ratio == pytest.approx(1.6, rel=0.12)
    assert found.statistic >= found.threshold == THRESHOLD
    assert found.direction == "up"


def test_a_drop_is_found_with_a_ratio_below_one() -> None:
    found = detect(daily(7, shift_at=100, factor=1 / 1.6).to_numpy())
    assert found is not None and found.date is None  # a bare array has no dates
    assert abs(found.index - 100) <= 3
    assert found.ratio == pytest.approx(1 / 1.6, rel=0.12)
    assert found.direction == "down"


def test_a_small_step_in_a_smooth_series_is_below_min_ratio() -> None:
    # 10% in a nearly noiseless aggregate: a large t, but not the size of change that matters
    series = daily(3, shift_at=100, factor=1.1, noise=0.005, wander=0.002)
    loose = detect_level_shift(series, min_segment=14, threshold=THRESHOLD)
    assert loose is not None and loose.ratio == pytest.approx(1.1, rel=0.03)
    assert detect(series) is None


def test_a_shift_younger_than_min_segment_is_not_tested() -> None:
    series = daily(5, shift_at=175)  # 7 days of the new level
    assert detect(series, min_segment=14) is None
    assert detect(daily(5, shift_at=160), min_segment=14) is not None  # 22 days


def test_missing_days_are_tolerated() -> None:
    series = daily(8, shift_at=120)
    series.iloc[np.random.default_rng(0).choice(182, 25, replace=False)] = np.nan
    found = detect(series)
    assert found is not None and abs(found.index - 120) <= 3


def test_year_on_year_reference_removes_a_seasonal_step() -> None:
    # a seasonal ramp (+50% within a week) every year: a step without the reference, none
    # with last year's same days
    season = np.where(np.arange(182) >= 110, 1.5, 1.0)
    this_year = daily(9) * season
    last_year = daily(10) * season
    assert detect(this_year) is not None
    assert detect(this_year, reference=last_year.to_numpy()) is None
    shifted = daily(9, shift_at=60) * season  # a real shift stands out after differencing
    found = detect(shifted, reference=last_year.to_numpy())
    assert found is not None and abs(found.index - 60) <= 3


def test_too_short_a_series_gives_none() -> None:
    assert detect(daily(0, days=27, shift_at=14)) is None
    assert detect(np.full(40, np.nan)) is None


@pytest.mark.parametrize(
    ("values", "kw", "message"),
    [
        (
            np.array([1.0, -2.0] * 30),
            {},
            r"finite and >= 0 .*30 values .*first at position 1: -2.0",
        ),
        (np.array([1.0, np.inf] * 30), {}, "finite and >= 0"),
        (np.ones((10, 10)), {}, "one-dimensional"),
        (np.ones(60), {"min_segment": 5}, "min_segment must be at least 7"),
        (np.ones(60), {"threshold": 0.0}, "threshold must be > 0"),
        (np.ones(60), {"min_ratio": 0.5}, "min_ratio must be >= 1"),
        (np.ones(60), {"reference": np.ones(59)}, "reference has 59 days but values have 60"),
    ],
)
def test_bad_input_is_named(values: np.ndarray, kw: dict, message: str) -> None:
    args = {"min_segment": 14, "threshold": THRESHOLD, **kw}
    with pytest.raises(ValueError, match=message):
        detect_level_shift(values, **args)


# -- segments of the synthetic facts ---------------------------------------------------------

AS_OF = date(2025, 3, 31)  # the end of the "small" data
SHIFT_DAY = date(2025, 1, 20)
N_SERIES = 300  # "small"'s period with more lanes: segment totals as smooth as "demo"'s


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_segment_shift_in_unshifted_synthetic_facts(seed: int) -> None:
    facts = generate("small", seed=seed, n_series=N_SERIES)
    for back in (0, 120):
        assert segment_shifts(facts, as_of=AS_OF - timedelta(days=back)) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_cargo_type_shift_is_found_in_its_segment(seed: int) -> None:
    facts = generate(
        "small",
        seed=seed,
        n_series=N_SERIES,
        level_shift=(SHIFT_DAY, 1.6),
        level_shift_cargo="coal",
    )
    found = segment_shifts(facts, as_of=AS_OF)
    segments = {s.segment: s for s in found}
    coal = segments["cargo_type=coal"]
    assert abs((coal.date - SHIFT_DAY).days) <= 3
    assert coal.shift.ratio == pytest.approx(1.6, rel=0.15)
    assert 0.02 <= coal.share < 1
    assert coal.describe().startswith(f"cargo_type=coal {coal.date} x1.")
    # no other cargo type moves
    assert all(s.column != "cargo_type" or s.value == "coal" for s in found)
    assert [s.shift.statistic for s in found] == sorted(
        (s.shift.statistic for s in found), reverse=True
    )


def test_the_network_segment_and_the_share_floor() -> None:
    facts = generate("small", seed=0, level_shift=(SHIFT_DAY, 1.6))  # every series
    found = segment_shifts(facts, as_of=AS_OF, segment_columns=())
    assert [s.segment for s in found] == [ALL]
    assert found[0].share == 1.0
    assert segment_shifts(facts, as_of=AS_OF, segment_columns=(), include_all=False) == []
    shifted = generate("small", seed=0, level_shift=(SHIFT_DAY, 1.6), level_shift_cargo="coal")
    assert any(s.value == "coal" for s in segment_shifts(shifted, as_of=AS_OF))
    assert not any(s.value == "coal" for s in segment_shifts(shifted, as_of=AS_OF, min_share=0.99))


def test_segment_shifts_errors_name_the_problem() -> None:
    facts = generate("small", seed=0)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['region'\]"):
        segment_shifts(facts, as_of=AS_OF, segment_columns=("region",))
    with pytest.raises(ValueError, match="lookback_days \\(30\\) must cover"):
        segment_shifts(facts, as_of=AS_OF, lookback_days=30)
    assert segment_shifts(facts.iloc[:0], as_of=AS_OF) == []


def test_first_seen_finds_a_new_region() -> None:
    facts = generate("small", seed=0, new_region="Crimean", new_region_from=date(2025, 1, 1))
    seen = first_seen(facts, ["Crimean", "coal"])
    assert seen == {"Crimean": date(2025, 1, 1), "coal": date(2023, 1, 1)}
    with pytest.raises(ValueError, match="new segment 'Atlantis' is not a region"):
        first_seen(facts, ["Atlantis"])
