"""Features: shapes, values, and proof that nothing after the forecast origin is used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from freightml.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    SERIES_KEY,
    SeriesPanel,
    build_examples,
    build_inference_frame,
)

pytestmark = [pytest.mark.unit]

REGIONS = ["West Siberian", "Kuzbass", "October", "Far Eastern"]
CARGO = ["coal", "grain", "oil", "containers"]


def make_facts(
    n_series: int = 12,
    n_days: int = 500,
    start: str = "2022-01-01",
    seed: int = 0,
    missing_share: float = 0.03,
) -> pd.DataFrame:
    """Small facts frame following the data contract: level x monthly season x New Year dip
    x weekday x trend x gamma noise, with some absent and zero-volume days."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days, freq="D")
    level = rng.lognormal(5.0, 1.0, n_series)
    cargo = np.array([CARGO[i % len(CARGO)] for i in range(n_series)], dtype=object)
    season = 1 + 0.25 * np.sin(
        2 * np.pi * (dates.month.to_numpy()[None, :] - 1) / 12
        + np.arange(n_series)[:, None] % len(CARGO)
    )
    new_year = np.where((dates.month == 1) & (dates.day <= 8), 0.5, 1.0)
    weekday = 1 + 0.03 * np.where(dates.dayofweek < 5, 1, -2.5)
    trend = 1 + 0.1 * np.arange(n_days) / 365
    cv = rng.uniform(0.2, 0.6, n_series)[:, None]
    noise = rng.gamma(1 / cv**2, cv**2, (n_series, n_days))
    vol = level[:, None] * season * new_year * weekday * trend * noise
    vol[rng.random(vol.shape) < 0.02] = 0.0
    s, d = np.nonzero(rng.random(vol.shape) >= missing_share)
    ids = np.arange(n_series)
    return pd.DataFrame(
        {
            "date": dates[d],
            "origin_station": np.array([f"ST{i % 5:02d}" for i in ids], dtype=object)[s],
            "destination_station": np.array([f"ST{10 + i:02d}" for i in ids], dtype=object)[s],
            "origin_region": np.array([REGIONS[i % 4] for i in ids], dtype=object)[s],
            "destination_region": np.array([REGIONS[(i + 1) % 4] for i in ids], dtype=object)[s],
            "cargo_type": pd.Categorical(cargo[s]),
            "volume_tonnes": vol[s, d],
            "wagons": np.ceil(vol[s, d] / 60).astype(np.int64),
        }
    )


def one_series(values: list[float] | np.ndarray, start: str = "2024-01-01") -> pd.DataFrame:
    """A single-series facts frame with the given daily volumes (NaN = absent day)."""
    values = np.asarray(values, dtype=float)
    frame = pd.DataFrame(
        {
            "date": pd.date_range(start, periods=len(values), freq="D"),
            "origin_station": "A",
            "destination_station": "B",
            "origin_region": "West Siberian",
            "destination_region": "October",
            "cargo_type": "coal",
            "volume_tonnes": values,
            "wagons": 1,
        }
    )
    return frame.loc[~np.isnan(values)].reset_index(drop=True)


def test_examples_have_one_row_per_series_origin_horizon() -> None:
    facts = make_facts(n_series=6, n_days=200)
    ex = build_examples(facts, min_history_days=91)
    assert set(FEATURE_COLUMNS) <= set(ex.columns)
    assert {"origin_date", "target_date", "horizon", "scale", "y", *SERIES_KEY} <= set(ex.columns)
    assert not ex.duplicated([*SERIES_KEY, "origin_date", "horizon"]).any()
    origins = sorted(ex["origin_date"].unique())
    assert origins[-1] == facts["date"].max()
    assert set(np.diff(origins).astype("timedelta64[D]").astype(int)) == {7}
    assert sorted(ex["horizon"].unique()) == list(range(1, 29))
    assert (ex["target_date"] - ex["origin_date"]).dt.days.equals(ex["horizon"].astype(np.int64))
    assert (ex["history_days"] >= 91).all()
    assert (ex["scale"] > 0).all()
    # targets after the last fact are unknown
    assert ex.loc[ex["target_date"] > facts["date"].max(), "y"].isna().all()


def test_level_features_match_hand_computation() -> None:
    values = np.arange(1.0, 121.0)  # day k (0-based) carries k + 1 tonnes
    values[100] = 0.0
    values[110] = np.nan  # absent day
    facts = one_series(values)
    origin = pd.Timestamp("2024-01-01") + pd.Timedelta(days=115)
    ex = build_examples(facts, origins=[origin], horizon_max=3, min_history_days=91)
    row = ex.set_index("horizon").loc[1]
    last28 = np.array([v for v in values[88:116] if not np.isnan(v)])
    scale = last28.mean()
    assert row["scale"] == pytest.approx(scale)
    last7 = values[109:116][~np.isnan(values[109:116])]
    assert row["mean_7_ratio"] == pytest.approx(last7.mean() / scale, rel=1e-6)
    assert row["mean_91_ratio"] == pytest.approx(np.nanmean(values[25:116]) / scale, rel=1e-6)
    assert row["std_28_ratio"] == pytest.approx(last28.std(ddof=1) / scale, rel=1e-5)
    assert row["last_ratio"] == pytest.approx(116 / scale, rel=1e-6)
    assert row["zero_share_28"] == pytest.approx(1 / 27)
    assert row["obs_share_28"] == pytest.approx(27 / 28)
    assert row["history_days"] == 116
    assert row["y"] == 117.0  # the actual on the target day
    # the same weekday one week before the target: day 109 for h=1, day 110 (absent) for h=2
    assert row["lag_same_weekday_ratio"] == pytest.approx(values[109] / scale, rel=1e-6)
    assert np.isnan(ex.set_index("horizon").loc[2, "lag_same_weekday_ratio"])


def test_min_history_skips_young_series() -> None:
    facts = one_series(np.ones(100))
    origins = [pd.Timestamp("2024-01-01") + pd.Timedelta(days=d) for d in (89, 90, 99)]
    ex = build_examples(facts, origins=origins, min_history_days=91)
    assert sorted(ex["origin_date"].unique()) == origins[1:]


def test_horizon_sampling_is_stratified_and_seeded() -> None:
    facts = make_facts(n_series=5, n_days=300)
    a = build_examples(facts, horizons_per_origin=4, seed=1)
    b = build_examples(facts, horizons_per_origin=4, seed=1)
    c = build_examples(facts, horizons_per_origin=4, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["horizon"].equals(c["horizon"])
    per_pair = a.groupby([*SERIES_KEY, "origin_date"], observed=True)["horizon"]
    assert (per_pair.size() == 4).all()
    blocks = a.assign(block=(a["horizon"] - 1) // 7)
    per_block = blocks.groupby([*SERIES_KEY, "origin_date"], observed=True)["block"]
    assert (per_block.nunique() == 4).all()


def test_train_window_limits_origins() -> None:
    facts = make_facts(n_series=3, n_days=400)
    ex = build_examples(facts, train_window_days=70)
    last = facts["date"].max()
    assert ex["origin_date"].min() == last - pd.Timedelta(days=70)
    assert ex["origin_date"].nunique() == 11


def test_calendar_features_for_known_days() -> None:
    facts = one_series(np.ones(400), start="2023-01-01")
    origin = pd.Timestamp("2023-12-28")
    ex = build_examples(facts, origins=[origin], horizon_max=28).set_index("target_date")
    new_year_eve, new_year = ex.loc["2023-12-31"], ex.loc["2024-01-01"]
    assert new_year_eve["days_to_new_year"] == 1 and new_year_eve["dow"] == 6
    assert new_year["is_holiday"] == 1 and new_year["days_since_new_year"] == 0
    assert new_year["month"] == 1 and new_year["day_of_year"] == 1
    assert ex.loc["2024-01-15", "is_holiday"] == 0
    assert ex.loc["2024-01-11", "holiday_within_3d"] == 1  # 8 Jan is a day off
    assert ex.loc["2024-01-12", "holiday_within_3d"] == 0


def _perturb_after(facts: pd.DataFrame, origin: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Change everything after the origin: rescale, drop days, add a brand-new series."""
    rng = np.random.default_rng(seed)
    after = facts["date"] > origin
    out = facts.copy()
    out.loc[after, "volume_tonnes"] *= rng.uniform(0, 5, after.sum())
    out = out.loc[~after | (rng.random(len(out)) > 0.3)]
    newcomer = out.loc[out["date"] > origin].head(20).assign(origin_station="NEW")
    return pd.concat([out, newcomer], ignore_index=True)


@pytest.mark.parametrize("offset", [120, 200, 333])
def test_no_feature_uses_data_after_the_origin(offset: int) -> None:
    facts = make_facts(n_series=8, n_days=420, seed=3)
    origin = facts["date"].min() + pd.Timedelta(days=offset)
    kwargs = {"origins": [origin], "horizon_max": 28, "min_history_days": 91}
    cols = [*SERIES_KEY, "horizon", *FEATURE_COLUMNS, "scale", "history_days"]
    cols = list(dict.fromkeys(cols))
    base = build_examples(facts, **kwargs)
    variants = [
        _perturb_after(facts, origin, seed=1),
        facts.loc[facts["date"] <= origin],  # all later facts deleted (targets included)
    ]
    for changed in variants:
        again = build_examples(changed, **kwargs)
        assert len(again) == len(base)
        left = base[cols].sort_values([*SERIES_KEY, "horizon"]).reset_index(drop=True)
        right = again[cols].sort_values([*SERIES_KEY, "horizon"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, check_exact=True, check_categorical=False)
    # the comparison covers every numeric feature with real values, not all-missing columns
    # (yoy_ratio needs a year of history, which only the 420-day panel's later origins have)
    numeric = [c for c in FEATURE_COLUMNS if c not in [*CATEGORICAL_FEATURES, "yoy_ratio"]]
    assert base[numeric].notna().any().all(), base[numeric].notna().any()


def test_weekly_features_match_hand_computation() -> None:
    # volume = ordinal day number (day 1 = Monday 2024-01-01), so values tell their day
    days = np.arange(1.0, 201.0)
    facts = one_series(days)
    origin_idx = 150  # 0-based day of the origin
    origin = pd.Timestamp("2024-01-01") + pd.Timedelta(days=origin_idx)
    ex = build_examples(facts, origins=[origin], horizon_max=28).set_index("horizon")
    for h in (1, 7, 8, 20, 28):
        row, target = ex.loc[h], origin_idx + h
        last = target - 7 * int(np.ceil(h / 7))  # latest same weekday <= origin
        scale = row["scale"]
        for k in (7, 14, 21, 28):
            got = row[f"lag_{k}_ratio"] * scale
            if target - k <= origin_idx:
                assert got == pytest.approx(target - k + 1, rel=1e-5)
            else:
                assert np.isnan(got)
        values = np.array([last - 7 * j + 1 for j in range(4)], dtype=float)
        assert row["same_weekday_mean_2_ratio"] * scale == pytest.approx(values[:2].mean(), 1e-5)
        assert row["same_weekday_mean_4_ratio"] * scale == pytest.approx(values.mean(), 1e-5)
        assert row["same_weekday_median_4_ratio"] * scale == pytest.approx(np.median(values), 1e-5)
        for weeks in (4, 12):
            weekday_mean = np.mean([last - 7 * j + 1 for j in range(weeks)])
            all_mean = np.mean(np.arange(origin_idx - 7 * weeks + 1, origin_idx + 1) + 1.0)
            assert row[f"weekday_profile_{weeks}w"] == pytest.approx(weekday_mean / all_mean, 1e-5)


def test_weekday_zero_share_and_ewm_levels() -> None:
    # Sundays are zero days; the other days are 10 tonnes
    dates = pd.date_range("2024-01-01", periods=120, freq="D")
    values = np.where(dates.dayofweek == 6, 0.0, 10.0)
    ex = build_examples(one_series(values), origins=[dates[-1]], horizon_max=14)
    sunday = ex["target_date"].dt.dayofweek == 6
    assert (ex.loc[sunday, "zero_share_weekday_8w"] == 1).all()
    assert (ex.loc[~sunday, "zero_share_weekday_8w"] == 0).all()
    assert (ex.loc[sunday, "weekday_profile_4w"] == 0).all()
    assert ex.loc[~sunday, "weekday_profile_4w"].to_numpy() == pytest.approx(7 / 6, rel=1e-5)
    # a constant series has EWM levels equal to its scale
    flat = build_examples(one_series(np.full(120, 5.0)), origins=[dates[-1]], horizon_max=3)
    assert flat["ewm_7_ratio"].to_numpy() == pytest.approx(1.0)
    assert flat["ewm_28_ratio"].to_numpy() == pytest.approx(1.0)
    # a jump: the short halflife follows it faster than the long one
    jump = build_examples(
        one_series(np.r_[np.full(100, 5.0), np.full(20, 50.0)]), origins=[dates[-1]], horizon_max=1
    ).iloc[0]
    assert jump["ewm_7_ratio"] * jump["scale"] > jump["ewm_28_ratio"] * jump["scale"] > 5.0


def test_holiday_calendar_follows_the_country() -> None:
    facts = one_series(np.ones(200), start="2024-01-01")
    origin = pd.Timestamp("2024-06-30")
    us = build_examples(facts, origins=[origin], horizon_max=10, holiday_country="US")
    us = us.set_index("target_date")
    assert us.loc["2024-07-04", "is_holiday"] == 1  # Independence Day
    assert us.loc["2024-07-01", "days_to_holiday"] == 3
    assert us.loc["2024-07-06", "days_from_holiday"] == 2
    ru = build_examples(facts, origins=[origin], horizon_max=10).set_index("target_date")
    assert ru.loc["2024-07-04", "is_holiday"] == 0  # not a Russian holiday
    assert (ru["days_to_holiday"] == 30).all()  # next one (4 November) is beyond the cap
    assert ru.loc["2024-07-01", "days_from_holiday"] == 19  # 12 June, Russia Day


def test_seasonal_lag_is_same_weekday_and_not_after_origin() -> None:
    # volume = ordinal day number, so the lag feature tells which day it was read from
    days = np.arange(1.0, 301.0)
    facts = one_series(days)
    start = pd.Timestamp("2024-01-01")
    for offset in (150, 151, 155):
        origin = start + pd.Timedelta(days=offset)
        ex = build_examples(facts, origins=[origin], horizon_max=28)
        source_day = np.rint(ex["lag_same_weekday_ratio"] * ex["scale"]).astype(int) - 1
        source = start + pd.to_timedelta(source_day, unit="D")
        assert (source <= origin).all()
        assert (source.dt.dayofweek == ex["target_date"].dt.dayofweek).all()
        assert ((origin - source).dt.days < 7).all()  # the latest such day


def test_inference_frame_matches_training_features() -> None:
    facts = make_facts(n_series=5, n_days=300)
    origin = facts["date"].max()
    train = build_examples(facts, origins=[origin], horizon_max=28)
    serve = build_inference_frame(facts, origin, horizons=range(1, 29))
    cols = [*SERIES_KEY, "origin_date", "target_date", *FEATURE_COLUMNS, "scale"]
    cols = list(dict.fromkeys(cols))
    pd.testing.assert_frame_equal(
        train[cols].reset_index(drop=True),
        serve[cols].reset_index(drop=True),
        check_categorical=False,
    )
    assert serve["y"].isna().all()


def test_inference_frame_for_requested_and_unknown_series() -> None:
    facts = make_facts(n_series=4, n_days=200)
    known = facts[SERIES_KEY].drop_duplicates().iloc[[2]].astype(str)
    unknown = pd.DataFrame(
        {
            "origin_station": ["X"],
            "destination_station": ["Y"],
            "cargo_type": ["coal"],
            "origin_region": ["Kuzbass"],
        }
    )
    frame = build_inference_frame(
        facts,
        facts["date"].max(),
        horizons=[1, 7],
        series=pd.concat([known, unknown], ignore_index=True),
    )
    assert len(frame) == 4
    cold = frame.loc[frame["origin_station"] == "X"]
    assert (cold["history_days"] == 0).all() and (cold["scale"] == 1.0).all()
    assert cold["mean_7_ratio"].isna().all() and (cold["origin_region"] == "Kuzbass").all()
    warm = frame.loc[frame["origin_station"] != "X"]
    assert (warm["history_days"] > 0).all() and warm["mean_7_ratio"].notna().all()
    assert set(warm["origin_region"]) == set(
        facts.loc[facts["origin_station"] == known["origin_station"].iloc[0], "origin_region"]
    )


def test_categoricals_are_carried_as_strings() -> None:
    ex = build_examples(make_facts(n_series=3, n_days=120))
    for col in CATEGORICAL_FEATURES:
        assert ex[col].map(type).eq(str).all()


def test_bad_facts_are_rejected_with_a_reason() -> None:
    facts = make_facts(n_series=2, n_days=120)
    with pytest.raises(ValueError, match="lack columns.*volume_tonnes"):
        build_examples(facts.drop(columns="volume_tonnes"))
    with pytest.raises(ValueError, match="empty"):
        build_examples(facts.iloc[:0])
    with pytest.raises(ValueError, match="horizons"):
        build_inference_frame(facts, facts["date"].max(), horizons=[0])


def test_panel_is_reusable_and_equivalent_to_facts() -> None:
    facts = make_facts(n_series=3, n_days=150)
    panel = SeriesPanel.from_facts(facts)
    assert panel.last_date == facts["date"].max()
    pd.testing.assert_frame_equal(build_examples(panel), build_examples(facts))


def test_ewm_levels_read_only_their_span_so_a_warm_window_equals_the_full_history() -> None:
    from freightml.features.build import EWM_SPAN_HALFLIVES, _ewm

    span = EWM_SPAN_HALFLIVES * 28
    days = np.full((1, 500), 100.0)
    days[0, 0] = 1_000_000.0  # one huge day, then a flat level
    level = _ewm(days, 28)[0]
    assert level[span - 1] > 100.001  # still inside the span: the huge day weighs
    assert level[span] == pytest.approx(100.0, rel=1e-6)  # out of it: gone entirely
    # the same days without the first one (a shorter history) give the same levels
    assert np.allclose(_ewm(days[:, 1:], 28)[0][span - 1 :], level[span:], rtol=1e-9)
    days[0, 5:450] = np.nan  # nothing observed in the span: no level
    assert np.isnan(_ewm(days, 28)[0][5 + span])
