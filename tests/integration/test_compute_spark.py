"""compute.engine spark: the training examples built on pyspark local[2], per shard of the
series, equal the pandas build's to the last bit for 1, 4 and 16 shards, and so do the
batch forecasts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from freightml.compute import read_examples, training_examples, write_training_examples
from freightml.compute_settings import ComputeSettings
from freightml.data.synthetic import generate
from freightml.features.levels import LevelAdjustment
from freightml.features.window import WindowRules

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KW = {"horizons_per_origin": 7, "min_history_days": 91, "seed": 3}
RULES = WindowRules(0.5, 28)


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


def test_written_by_the_executors_with_level_adjustments(
    facts: pd.DataFrame, tmp_path: Path
) -> None:
    """The stage's path: the facts file becomes a dataset partitioned by month, the
    executors write the examples, read_examples puts them in the build's order."""
    facts_path = tmp_path / "facts.parquet"
    facts.to_parquet(facts_path, index=False)
    first = pd.to_datetime(facts["date"]).min()
    adjustments = [
        LevelAdjustment(
            "cargo_type",
            str(facts["cargo_type"].iloc[0]),
            first.date() + pd.Timedelta(days=200),
            1.7,
        )
    ]
    kw = {**KW, "origin_step_days": 14}
    expected = tmp_path / "pandas.parquet"
    rows = write_training_examples(
        facts_path, expected, ComputeSettings(), adjustments=adjustments, **kw
    )
    spark = ComputeSettings(engine="spark", shards=4, spark_master="local[2]")
    written = tmp_path / "spark"
    assert (
        write_training_examples(facts_path, written, spark, adjustments=adjustments, **kw) == rows
    )
    assert written.is_dir() and list(written.glob("*.parquet"))
    pd.testing.assert_frame_equal(read_examples(expected), read_examples(written), check_exact=True)


def test_every_horizon_and_a_training_window_also_match(facts: pd.DataFrame) -> None:
    kw = {"horizons_per_origin": None, "min_history_days": 91, "train_window_days": 120}
    spark = training_examples(facts, ComputeSettings(engine="spark", shards=4), **kw)
    pd.testing.assert_frame_equal(
        training_examples(facts, ComputeSettings(), **kw), spark, check_exact=True
    )


# -- batch scoring: the network's window, built per shard ------------------------------------
@pytest.fixture(scope="module")
def models(facts: pd.DataFrame) -> dict[str, object]:
    from freightml.features.build import build_examples
    from freightml.models import make_model

    examples = build_examples(facts, horizons_per_origin=7, seed=1)
    blended = make_model(
        "portfolio",
        {
            "ml": "gbm",
            "ml_params": {"max_iter": 20},
            "statistical": "seasonal_window_average",
            "ml_weight": 0.5,
        },
    )
    return {
        "gbm": make_model("gbm", {"max_iter": 20}).fit(examples),
        "gbm + per-series statistical": blended.fit(examples),
    }


def _window(model: object):
    from freightml.features.window import HistoryWindow
    from freightml.models.statistical import StatisticalColumns

    def build(facts: pd.DataFrame, calendar):
        return HistoryWindow.build(
            facts, origin_columns=StatisticalColumns.of(model), rules=RULES, calendar=calendar
        )

    return build


@pytest.mark.parametrize("name", ["gbm", "gbm + per-series statistical"])
def test_batch_forecasts_on_spark_equal_pandas(
    facts: pd.DataFrame, models: dict[str, object], name: str
) -> None:
    from freightml.compute import batch_forecasts

    model = models[name]
    # a few series stop a week early: the quorum origin is the network's, not a shard's
    dates = pd.to_datetime(facts["date"])
    stopped = (facts["cargo_type"] == facts["cargo_type"].iloc[0]) & (
        dates > dates.max() - pd.Timedelta(days=7)
    )
    history = facts.loc[~stopped]
    expected = batch_forecasts(history, model, ComputeSettings(), _window(model), RULES)
    assert len(expected.forecasts) and expected.n_series > 0
    for shards in (4, 16):  # the feature build's tests cover 1 shard
        got = batch_forecasts(
            history, model, ComputeSettings(engine="spark", shards=shards), _window(model), RULES
        )
        assert (got.origin_date, got.n_series) == (expected.origin_date, expected.n_series)
        pd.testing.assert_frame_equal(expected.forecasts, got.forecasts, check_exact=True)
