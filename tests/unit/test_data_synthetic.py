"""The synthetic generator: shape, determinism, calibration, injections."""

from __future__ import annotations

from datetime import date

import holidays
import numpy as np
import pandas as pd
import pytest

from freightml.data.schema import CARGO_SHARES, FACT_COLUMNS, SERIES_KEY, FactSchema
from freightml.data.sources import digest_facts
from freightml.data.synthetic import SIZES, SyntheticSpec, generate
from freightml.data.validation import validate_facts

pytestmark = [pytest.mark.unit]
KEY = list(SERIES_KEY)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate("small")


def _series(df: pd.DataFrame) -> pd.DataFrame:
    return df[KEY].drop_duplicates().astype(str)


def test_small_shape_contract_and_order(small: pd.DataFrame) -> None:
    n_series = small.groupby(KEY, observed=True).ngroups
    assert 60 <= n_series <= 100
    assert small["date"].min() == pd.Timestamp("2023-01-01")
    assert (small["date"].max() - small["date"].min()).days / 365.25 == pytest.approx(
        2.25, abs=0.05
    )
    assert tuple(small.columns) == FACT_COLUMNS and len(small) == n_series * 821
    FactSchema.validate(small)
    sort_key = [small[c].astype(str) for c in KEY] + [small["date"]]
    ordered = pd.DataFrame(dict(zip([*KEY, "date"], sort_key, strict=True))).sort_values(
        [*KEY, "date"]
    )
    assert (ordered.index == small.index).all()
    assert validate_facts(small).ok


def test_deterministic_given_seed(small: pd.DataFrame) -> None:
    assert digest_facts(generate("small", seed=42)) == digest_facts(small)
    assert digest_facts(generate("small", seed=43)) != digest_facts(small)


def test_sizes_and_overrides() -> None:
    assert SIZES["demo"].end == SIZES["large"].end == date(2025, 12, 31)
    assert SIZES["small"].n_series < SIZES["demo"].n_series < SIZES["large"].n_series
    tiny = generate("small", n_series=20, start="2024-01-01", end="2024-03-31")
    assert tiny.groupby(KEY, observed=True).ngroups == 20 and tiny["date"].nunique() == 91
    spec = SyntheticSpec(n_series=16, start=date(2024, 1, 1), end=date(2024, 1, 31))
    assert generate(spec)["cargo_type"].nunique() == 15


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        generate("huge")
    with pytest.raises(ValueError, match="missing_days must be in"):
        generate("small", missing_days=1.5)
    with pytest.raises(ValueError, match="end 2023-01-01 must be after"):
        generate("small", end="2023-01-01")
    with pytest.raises(ValueError, match="new_region_from 2030-01-01 must fall after start"):
        generate("small", new_region="Moscow", new_region_from="2030-01-01")
    with pytest.raises(ValueError, match="level_shift_region 'Atlantis' is not a region"):
        generate("small", level_shift=("2024-06-01", 1.3), level_shift_region="Atlantis")


# --- calibration ----------------------------------------------------------------------


def test_cargo_mix_by_tonnes_follows_published_shares(small: pd.DataFrame) -> None:
    tonnes = small.groupby("cargo_type", observed=True)["volume_tonnes"].sum()
    got = tonnes / tonnes.sum()
    want = pd.Series(CARGO_SHARES) / sum(CARGO_SHARES.values())
    assert np.abs(got.reindex(want.index) - want).max() < 0.02
    assert got.idxmax() == "coal"


def test_concentration_and_kuzbass_coal(small: pd.DataFrame) -> None:
    per_series = small.groupby(KEY, observed=True)["volume_tonnes"].sum().sort_values()[::-1]
    top = int(np.ceil(0.2 * len(per_series)))
    assert per_series.iloc[:top].sum() / per_series.sum() >= 0.6
    coal = small[small["cargo_type"] == "coal"]
    by_origin = coal.groupby("origin_region", observed=True)["volume_tonnes"].sum()
    assert by_origin.idxmax() == "West Siberian"
    mean_daily = small.groupby(KEY, observed=True)["volume_tonnes"].mean()
    assert 300 < mean_daily.max() < 20_000 and mean_daily.median() > 10


def test_new_year_dip_and_weak_weekday_effect(small: pd.DataFrame) -> None:
    network = small.groupby("date")["volume_tonnes"].sum()
    january = network[network.index.month == 1]
    holiday_week = january[january.index.day <= 8].mean()
    assert holiday_week < 0.9 * january[january.index.day > 8].mean()
    ru = holidays.country_holidays("RU", years=range(2023, 2026))
    workdays = network[[d not in ru for d in network.index.date]]
    weekday = workdays.groupby(workdays.index.dayofweek).mean()
    assert (weekday / weekday.mean() - 1).abs().max() < 0.05
    quiet = generate("small", weekday_amplitude=0.0).groupby("date")["volume_tonnes"].sum()
    quiet = quiet[[d not in ru for d in quiet.index.date]]
    flat = quiet.groupby(quiet.index.dayofweek).mean()
    assert (flat / flat.mean() - 1).abs().max() < (weekday / weekday.mean() - 1).abs().max()


def test_wagons_follow_capacity_and_zero_days_exist(small: pd.DataFrame) -> None:
    assert ((small["volume_tonnes"] == 0) == (small["wagons"] == 0)).all()
    coal = small[(small["cargo_type"] == "coal") & (small["wagons"] > 5)]
    assert (coal["volume_tonnes"] / coal["wagons"]).median() == pytest.approx(69.5, rel=0.05)
    assert 0.0 < (small["volume_tonnes"] == 0).mean() < 0.3


def test_signal_is_learnable(small: pd.DataFrame) -> None:
    """A smoothed level (28-day mean, 7 days old) beats 'same weekday last week' by >= 15%."""
    grouped = small.groupby(KEY, observed=True)["volume_tonnes"]
    naive = grouped.shift(7)
    level = grouped.transform(lambda s: s.shift(7).rolling(28).mean())
    test = small["date"] >= small["date"].max() - pd.Timedelta(days=180)
    y = small.loc[test, "volume_tonnes"]

    def wape(forecast: pd.Series) -> float:
        return float((y - forecast[test]).abs().sum() / y.sum())

    assert wape(level) <= 0.85 * wape(naive)


# --- injections -----------------------------------------------------------------------


def test_new_region_appears_only_from_its_date(small: pd.DataFrame) -> None:
    df = generate("small", new_region="Kazakhstan", new_region_from="2024-09-01")
    touches = (df["origin_region"] == "Kazakhstan") | (df["destination_region"] == "Kazakhstan")
    assert touches.any() and df.loc[touches, "date"].min() == pd.Timestamp("2024-09-01")
    new_series = _series(df[touches])
    assert len(new_series) == 8 and new_series["origin_station"].str.len().gt(0).all()
    assert digest_facts(df[~touches]) == digest_facts(small)  # base network untouched
    existing = generate("small", new_region="Far Eastern")
    far_east = (existing["origin_region"] == "Far Eastern") | (
        existing["destination_region"] == "Far Eastern"
    )
    assert existing.loc[far_east, "date"].min() > pd.Timestamp("2024-06-01")


def test_level_shift_scales_one_region_from_a_date(small: pd.DataFrame) -> None:
    df = generate("small", level_shift=("2024-07-01", 1.5), level_shift_region="Moscow")
    moscow = (small["origin_region"] == "Moscow") | (small["destination_region"] == "Moscow")
    after = small["date"] >= pd.Timestamp("2024-07-01")
    shifted = moscow & after
    ratio = df.loc[shifted, "volume_tonnes"].sum() / small.loc[shifted, "volume_tonnes"].sum()
    assert ratio == pytest.approx(1.5, rel=0.01)
    unchanged = ~(moscow & after)
    assert np.array_equal(df.loc[unchanged, "volume_tonnes"], small.loc[unchanged, "volume_tonnes"])
    everywhere = generate("small", level_shift=("2024-07-01", 0.5))
    assert everywhere.loc[after.to_numpy(), "volume_tonnes"].sum() == pytest.approx(
        0.5 * small.loc[after, "volume_tonnes"].sum(), rel=0.01
    )


def test_level_shift_can_touch_only_series_loaded_in_the_region(small: pd.DataFrame) -> None:
    df = generate(
        "small",
        level_shift=("2024-07-01", 1.5),
        level_shift_region="Moscow",
        level_shift_origin_only=True,
    )
    loaded = small["origin_region"] == "Moscow"
    after = small["date"] >= pd.Timestamp("2024-07-01")
    assert loaded[after].any() and (small["destination_region"] == "Moscow")[~loaded].any()
    shifted = loaded & after
    ratio = df.loc[shifted, "volume_tonnes"].sum() / small.loc[shifted, "volume_tonnes"].sum()
    assert ratio == pytest.approx(1.5, rel=0.01)
    assert np.array_equal(df.loc[~shifted, "volume_tonnes"], small.loc[~shifted, "volume_tonnes"])


def test_level_shift_can_touch_one_cargo_type(small: pd.DataFrame) -> None:
    df = generate("small", level_shift=("2024-07-01", 1.6), level_shift_cargo="coal")
    shifted = (small["cargo_type"] == "coal") & (small["date"] >= pd.Timestamp("2024-07-01"))
    ratio = df.loc[shifted, "volume_tonnes"].sum() / small.loc[shifted, "volume_tonnes"].sum()
    assert ratio == pytest.approx(1.6, rel=0.01)
    assert np.array_equal(df.loc[~shifted, "volume_tonnes"], small.loc[~shifted, "volume_tonnes"])
    with pytest.raises(ValueError, match="level_shift_cargo 'gold' is not a cargo type"):
        generate("small", level_shift=("2024-07-01", 1.6), level_shift_cargo="gold")


def test_new_stations_appear_late(small: pd.DataFrame) -> None:
    df = generate("small", new_stations=3)
    old = set(small["origin_station"].astype(str)) | set(small["destination_station"].astype(str))
    stations = (
        df["origin_station"]
        .astype(str)
        .where(~df["origin_station"].astype(str).isin(old), df["destination_station"].astype(str))
    )
    new = df[~stations.isin(old)]
    assert (
        new[["origin_station", "destination_station"]].stack().astype(str).isin(old).mean() == 0.5
    )
    assert _series(new).shape[0] == 6
    assert new["date"].min() >= small["date"].min() + 0.75 * (
        small["date"].max() - small["date"].min()
    )


def test_missing_days_drop_that_share_of_rows(small: pd.DataFrame) -> None:
    df = generate("small", missing_days=0.1)
    assert len(df) / len(small) == pytest.approx(0.9, abs=0.01)
    assert (
        df.merge(small, on=[*KEY, "date"], suffixes=("", "_full"))
        .eval("volume_tonnes == volume_tonnes_full")
        .all()
    )


def test_anomalies_spike_exactly_that_many_rows(small: pd.DataFrame) -> None:
    df = generate("small", anomalies=7, anomaly_factor=20.0)
    changed = df["volume_tonnes"].to_numpy() != small["volume_tonnes"].to_numpy()
    assert changed.sum() == 7
    ratio = df["volume_tonnes"].to_numpy()[changed] / small["volume_tonnes"].to_numpy()[changed]
    assert np.allclose(ratio, 20.0, rtol=0.01)
    assert set(validate_facts(df, anomaly_z=5).checks()) >= {"volume_anomaly"}
