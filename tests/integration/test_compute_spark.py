"""compute.engine spark: the training examples built on pyspark local[*], per shard of the
series, equal the pandas build's to the last bit for 1, 4 and 16 shards."""

from __future__ import annotations

import pandas as pd
import pytest

from freightml.compute import training_examples
from freightml.compute_settings import ComputeSettings
from freightml.data.synthetic import generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KW = {"horizons_per_origin": 7, "min_history_days": 91, "seed": 3}


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    f = generate("small", seed=7)
    # series that start late and stop early: each shard then has its own date range
    dates = pd.to_datetime(f["date"])
    late = (f["origin_station"].astype(str).str.len() % 3 == 0) & (
        dates < dates.min() + pd.Timedelta(days=50)
    )
    return f.loc[~late].reset_index(drop=True)


@pytest.fixture(scope="module")
def pandas_build(facts: pd.DataFrame) -> pd.DataFrame:
    return training_examples(facts, ComputeSettings(), **KW)


@pytest.mark.parametrize("shards", [1, 4, 16])
def test_spark_equals_pandas_for_any_number_of_shards(
    facts: pd.DataFrame, pandas_build: pd.DataFrame, shards: int
) -> None:
    spark = training_examples(
        facts, ComputeSettings(engine="spark", shards=shards, spark_master="local[2]"), **KW
    )
    pd.testing.assert_frame_equal(pandas_build, spark, check_exact=True)


def test_every_horizon_and_a_training_window_also_match(facts: pd.DataFrame) -> None:
    kw = {"horizons_per_origin": None, "min_history_days": 91, "train_window_days": 120}
    spark = training_examples(facts, ComputeSettings(engine="spark", shards=4), **kw)
    pd.testing.assert_frame_equal(
        training_examples(facts, ComputeSettings(), **kw), spark, check_exact=True
    )
