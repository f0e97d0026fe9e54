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
    n_series: int = 12, n_days: int = 500, start: str = "2022-01-01", seed: int = 0,
    missing_share: float = 0.03,
) -> pd.DataFrame:
    """Small facts frame following the data contract: level x monthly season x New Year dip
    x weekday x trend x gamma noise, with some absent and zero-volume days."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days, freq="D")
    level = rng.lognormal(5.0, 1.0, n_series)
    cargo = np.array([CARGO[i % len(CARGO)] for i in range(n_series)], dtype=object)
    season = 1 + 0.25 * np.sin(2 * np.pi * (dates.month.to_numpy()[None, :] - 1) / 12
                               + np.arange(n_series)[:, None] % len(CARGO))
    new_year = np.where((dates.month == 1) & (dates.day <= 8), 0.5, 1.0)
    weekday = 1 + 0.03 * np.where(dates.dayofweek < 5, 1, -2.5)
    trend = 1 + 0.1 * np.arange(n_days) / 365
    cv = rng.uniform(0.2, 0.6, n_series)[:, None]
    noise = rng.gamma(1 / cv**2, cv**2, (n_series, n_days))
    vol = level[:, None] * season * new_year * weekday * trend * noise
    vol[rng.random(vol.shape) < 0.02] = 0.0
    s, d = np.nonzero(rng.random(vol.shape) >= missing_share)
    ids = np.arange(n_series)
    return pd.DataFrame({
        "date": dates[d],
        "origin_station": np.array([f"ST{i % 5:02d}" for i in ids], dtype=object)[s],
        "destination_station": np.array([f"ST{10 + i:02d}" for i in ids], dtype=object)[s],
        "origin_region": np.array([REGIONS[i % 4] for i in ids], dtype=object)[s],
        "destination_region": np.array([REGIONS[(i + 1) % 4] for i in ids], dtype=object)[s],
        "cargo_type": pd.Categorical(cargo[s]),
        "volume_tonnes": vol[s, d],
        "wagons": np.ceil(vol[s, d] / 60).astype(np.int64),
    })
