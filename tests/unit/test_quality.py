"""Forecast quality: the configured model passes the methodology's gates on synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

from freightml.config import FeatureSettings, ModelSettings
from freightml.data.synthetic import generate
from freightml.evaluation import evaluate_gates, load_methodology, run_backtest
from freightml.models import make_model

pytestmark = [pytest.mark.unit, pytest.mark.quality, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_configured_model_passes_the_gates_on_small_synthetic_data() -> None:
    methodology = load_methodology(ROOT / "configs" / "methodology.yaml")
    model, features = ModelSettings(), FeatureSettings()
    result = run_backtest(
        generate("small"),
        lambda: make_model(model.name, model.params),
        methodology,
        {
            "origin_step_days": features.origin_step_days,
            "horizons_per_origin": features.horizons_per_origin,
            "min_history_days": features.min_history_days,
        },
    )
    report = evaluate_gates(result, methodology)
    summary = result.summary().iloc[0]
    assert summary["wape"] <= 0.85 * summary["wape_baseline"]
    assert abs(summary["bias"]) <= 0.05
    assert report.passed, report.to_markdown()
