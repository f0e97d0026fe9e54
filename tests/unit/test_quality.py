"""Forecast quality: the selected model passes the methodology's gates on synthetic data.

The backtest is the one the session's kfp.local training run made on ``small`` seed-42 facts
(conftest ``trained_home``: the default model recipe and portfolio without the
absolute-error candidate): the evaluate step's own result, read back, judged again by the
methodology file."""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers
from freightml.config import ModelSettings
from freightml.evaluation import load_methodology
from freightml.stages.evaluate import EvaluationResult

pytestmark = [pytest.mark.unit, pytest.mark.quality, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_configured_model_passes_the_gates_on_small_synthetic_data(trained_home) -> None:
    assert trained_home.settings.model == ModelSettings()  # the configured (default) recipe
    assert trained_home.settings.selection.ml_recipes == helpers.TRAINED_HOME_RECIPES
    methodology = load_methodology(ROOT / "configs" / "methodology.yaml")
    result = EvaluationResult.load_from(
        trained_home.run.pipeline_root / "evaluate-model" / "evaluation"
    )
    metrics = result.metrics
    assert metrics["wape"] <= 0.85 * metrics["wape_baseline"]
    assert abs(metrics["bias"]) <= 0.05
    assert result.gates.passed, result.gates.to_markdown()
    # judged by the limits the methodology file sets today, every supported segment too
    gates = methodology.gates
    limits = {
        "wape_ratio_to_baseline": gates.max_wape_ratio_to_baseline,
        "abs_bias": gates.max_abs_bias,
        "segment_wape_ratio_to_baseline": gates.max_segment_wape_ratio_to_baseline,
        "interval_coverage_80_error": gates.max_coverage_error_80,
    }
    checks = result.gates.checks
    assert {c.name.split("[")[0] for c in checks} == set(limits)
    assert sum(c.name.startswith("segment_") for c in checks) >= 10
    for check in checks:
        assert check.limit == limits[check.name.split("[")[0]], check
        assert check.value <= check.limit, check
