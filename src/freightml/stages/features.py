"""Features: cut leakage-safe training examples from the facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from freightml.config import Settings
from freightml.stages.result import StageResult
from freightml.stages.timing import timed


class FeaturesInfo(StageResult):
    rows: int
    columns: int


def feature_kwargs(settings: Settings) -> dict[str, Any]:
    """The example-cutting options of ``settings`` (the same for training and backtests)."""
    f = settings.features
    return {
        "origin_step_days": f.origin_step_days,
        "horizon_max": f.horizon_max,
        "horizons_per_origin": f.horizons_per_origin,
        "min_history_days": f.min_history_days,
        "holiday_country": f.holiday_country,
    }


def build_features(
    settings: Settings, facts_path: str | Path, out_path: str | Path
) -> FeaturesInfo:
    """Cut the training examples from the facts (restated by the configured model's level
    adjustments, freightml.features.levels) and write them as Parquet."""
    from freightml.features.build import build_examples
    from freightml.features.levels import adjust_levels, adjustments_of
    from freightml.stages.train import make_estimator

    with timed("build_features"):
        facts = adjust_levels(pd.read_parquet(facts_path), adjustments_of(make_estimator(settings)))
        examples = build_examples(
            facts, seed=settings.model.params.get("random_state", 0), **feature_kwargs(settings)
        )
        examples.to_parquet(out_path, index=False)
    return FeaturesInfo(rows=len(examples), columns=examples.shape[1])
