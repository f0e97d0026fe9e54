from pathlib import Path

import jinja2
import pytest

from freightml.cards import render_cards
from freightml.cards.context import retraining_section
from freightml.config import Settings

pytestmark = [pytest.mark.unit]


def _context() -> dict:
    gate = {
        "name": "wape_ratio_overall",
        "value": 0.71,
        "limit": 0.85,
        "passed": True,
        "detail": "",
    }
    return {
        "model": {
            "name": "freight-volume",
            "version": "3",
            "run_id": "abc123",
            "aliases": ["champion"],
            "decision": "promoted to champion: gates passed",
            "created": "2026-11-26T10:00:00+00:00",
        },
        "retraining": None,
        "problem": "Forecast daily tonnes per series.",
        "approach": {
            "model_name": "gbm",
            "algorithm": "global HGBR",
            "params": {"max_iter": 300},
            "features": ["lag_7", "mean_28"],
            "categorical": ["cargo_type_code"],
            "horizon_max": 28,
        },
        "methodology": {
            "path": "methodology.yaml",
            "folds": 3,
            "step_days": 28,
            "horizon_days": 28,
            "metrics": ["wape", "mae", "bias"],
            "segments": ["cargo_type"],
            "cutoffs": ["2025-09-01", "2025-09-29", "2025-10-27"],
            "summary": {
                "wape": 0.25,
                "wape_baseline": 0.35,
                "wape_ratio": 0.714,
                "mae": 80.0,
                "mae_baseline": 110.0,
                "bias": -0.012,
                "bias_baseline": 0.001,
            },
            "gates": [gate, {**gate, "name": "abs_bias", "value": 0.012, "limit": 0.05}],
            "gates_passed": True,
            "failed_gates": [],
            "champion_comparison": "there was no champion",
            "by_horizon": [{"horizon": 1, "wape": 0.2, "wape_baseline": 0.3}],
            "by_segment": {
                "cargo_type": [
                    {
                        "segment": "coal",
                        "actual_tonnes": 1234567.0,
                        "wape": 0.2,
                        "wape_baseline": 0.3,
                        "wape_ratio": 0.66,
                        "bias": 0.01,
                    }
                ]
            },
            "candidates": [
                {
                    "label": "gbm",
                    "kind": "ml",
                    "wape": 0.26,
                    "wape_ratio": 0.74,
                    "bias": 0.02,
                    "segments_over": 0,
                    "segments": 14,
                    "chosen": False,
                    "why": "WAPE +4.0% vs the chosen",
                },
                {
                    "label": "mean(gbm, autoets)",
                    "kind": "ensemble",
                    "wape": 0.25,
                    "wape_ratio": 0.71,
                    "bias": -0.01,
                    "segments_over": 0,
                    "segments": 14,
                    "chosen": True,
                    "why": "lowest WAPE on the validation folds",
                },
            ],
            "selection_notes": ["the RU holiday calendar moves this panel: on its 30 holidays"],
            "coverage": {
                "all": [{"n": 6720, "coverage_80": 0.794, "coverage_95": 0.941}],
                "cargo_type": [
                    {"segment": "coal", "n": 2016, "coverage_80": 0.81, "coverage_95": 0.95}
                ],
            },
        },
        "data": {
            "source_uri": "s3://facts/2025.parquet",
            "file_digest": "f" * 64,
            "digest": "d" * 64,
            "rows": 2_000_000,
            "series": 1500,
            "start": "2024-01-01",
            "end": "2025-12-31",
            "regions": ["Moscow"],
            "cargo_types": ["coal"],
            "window_days": 730,
            "validation": {"errors": 0, "warnings": 1, "messages": ["3 series have missing days"]},
            "profile": None,
        },
        "tools": {
            "git_commit": "0123abc",
            "git_dirty": "false",
            "lock_sha256": "e" * 64,
            "python": "3.11.7",
            "image": "local",
            "version_kfp": "2.17.3",
            "version_mlflow": "3.17.2",
            "version_scikit_learn": "1.9.1",
            "version_pandas": "2.3.3",
            "version_pandera": "0.35.0",
        },
        "limitations": ["1 to 28 days only"],
    }


def test_cards_show_the_run(tmp_path: Path) -> None:
    cards = render_cards(_context(), tmp_path)
    model_md = cards.model_md.read_text()
    assert "# Model card: freight-volume version 3" in model_md
    assert "| wape_ratio_overall | 0.7100 | 0.8500 | pass |" in model_md
    assert "s3://facts/2025.parquet" in model_md and "d" * 64 in model_md
    assert "| coal | 1,234,567 |" in model_md
    assert "2024-01-01 to 2025-12-31" in model_md
    assert "`0123abc`" in model_md
    project_md = cards.project_md.read_text()
    assert "scikit-learn 1.9.1" in project_md and "730-day window" in project_md
    html = cards.model_html.read_text()
    assert "<table>" in html and "<h1>Model card: freight-volume version 3</h1>" in html


def test_the_card_says_why_a_retrained_version_exists(tmp_path: Path) -> None:
    manual = render_cards(_context(), tmp_path / "manual").model_md.read_text()
    assert "## Why this version exists\nTrained on request" in manual
    settings = Settings(
        tracking={
            "run_tags": {
                "retrain.trigger": "quality",
                "retrain.reason": "quality: 6 consecutive days >= 5 | segment all",
                "retrain.as_of": "2025-03-01",
                "freightml.other": "not shown",
            }
        }
    )
    context = _context()
    context["retraining"] = retraining_section(settings)
    model_md = render_cards(context, tmp_path / "retrained").model_md.read_text()
    assert (
        "Trained by `freightml retrain run` (as of 2025-03-01): quality: 6 consecutive days "
        ">= 5 | segment all" in model_md
    )
    assert "| trigger | quality |" in model_md
    assert "| reason | quality: 6 consecutive days >= 5 \\| segment all |" in model_md
    assert "not shown" not in model_md
    assert retraining_section(Settings()) is None
    # the portfolio: every candidate's validation figures, the chosen one marked
    assert (
        "| mean(gbm, autoets) | ensemble | 0.2500 | 0.7100 | -1.0% | 0 of 14 | yes | "
        "lowest WAPE on the validation folds |" in model_md
    )
    assert "| gbm | ml | 0.2600 | 0.7400 | 2.0% | 0 of 14 | no |" in model_md
    assert "|\n\n- the RU holiday calendar moves this panel: on its 30 holidays\n" in model_md
    # the intervals' coverage overall and per segment, and the fan chart
    assert "| all | 6,720 | 79.4% | 94.1% |" in model_md
    assert "| cargo_type=coal | 2,016 | 81.0% | 95.0% |" in model_md
    assert "![fan chart](../evaluation/plots/fan_chart.png)" in model_md


def test_failed_gates_are_named(tmp_path: Path) -> None:
    context = _context()
    failed = {"name": "abs_bias", "value": 0.08, "limit": 0.05, "passed": False, "detail": ""}
    context["methodology"].update(
        gates=[context["methodology"]["gates"][0], failed],
        gates_passed=False,
        failed_gates=["abs_bias"],
    )
    model_md = render_cards(context, tmp_path).model_md.read_text()
    assert "### Gates: FAILED\n\nFailed gates: abs_bias.\n" in model_md
    assert "| abs_bias | 0.0800 | 0.0500 | FAIL |" in model_md
    assert "| wape_ratio_overall | 0.7100 | 0.8500 | pass |" in model_md


def test_the_reference_profile_is_summarised(tmp_path: Path) -> None:
    context = _context()
    assert "No reference profile is stored" in render_cards(context, tmp_path).model_md.read_text()
    context["data"]["profile"] = {
        "features": ["horizon", "last_ratio"],
        "target": "volume_tonnes",
        "prediction": "prediction_tonnes",
        "segments": ["all", "cargo_type=coal"],
        "unsupported_segments": [],
        "stations": 1200,
        "series": 1400,
        "regions": 18,
        "rows": 250_000,
        "bytes": 180_000,
        "expectations": [
            {"segment": "all", "horizon_bucket": "1-7", "wape": 0.21, "bias": -0.012, "n": 9800}
        ],
    }
    model_md = render_cards(context, tmp_path / "with").model_md.read_text()
    assert "| features profiled | horizon, last_ratio |" in model_md
    assert "| known stations, series, regions | 1,200, 1,400, 18 |" in model_md
    assert "| below the support rule | none |" in model_md
    assert "| all | 1-7 | 0.2100 | -1.2% | 9,800 |" in model_md


def test_missing_context_is_an_error(tmp_path: Path) -> None:
    context = _context()
    del context["data"]["digest"]
    with pytest.raises(jinja2.UndefinedError, match="digest"):
        render_cards(context, tmp_path)
