"""The stages' typed results and the promotion rule, without MLflow or KFP."""

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from freightml.config import Settings
from freightml.data.validation import DataValidationError, validate_facts
from freightml.evaluation import GateCheck, GateReport, load_methodology
from freightml.stages.evaluate import RECORDED, ChampionOnWindow, EvaluationResult
from freightml.stages.ingest import FactsInfo
from freightml.stages.register import decide_promotion
from freightml.stages.validate import ValidationSummary, validate_data
from freightml.timing import TIMINGS_ENV, timed
from freightml.tracking import ChampionRecipe
from helpers import facts_frame

pytestmark = [pytest.mark.unit]
REPO = Path(__file__).resolve().parents[2]
METHODOLOGY = load_methodology(REPO / "configs" / "methodology.yaml")


def _evaluation(wape: float, gates: list[tuple[str, bool]], champion_wape: float | None):
    checks = tuple(GateCheck(n, 0.5 if ok else 2.0, 1.0, ok, "") for n, ok in gates)
    champion = None
    if champion_wape is not None:
        recipe = ChampionRecipe("4", "run4", "gbm", {"max_iter": 10}, ("2025-01-01",), "d" * 64)
        champion = ChampionOnWindow(recipe=recipe, metrics={"wape": champion_wape}, how=RECORDED)
    return EvaluationResult(
        metrics={
            "wape": wape,
            "wape_baseline": 0.4,
            "wape_ratio": wape / 0.4,
            "bias": 0.01,
            "mae": 3.0,
            "seg_x_wape": math.nan,
        },
        gates=GateReport(checks, ("cargo_type=grain (0.1% of tonnes, 1 series)",)),
        cutoffs=("2025-01-01", "2025-01-29"),
        data_digest="d" * 64,
        champion=champion,
        by_horizon=[{"horizon": 1, "wape": 0.2, "wape_baseline": 0.3}],
        by_segment={"cargo_type": [{"segment": "coal", "actual_tonnes": 10.0, "wape": math.nan}]},
    )


def test_failed_gates_are_named_in_order_and_never_promote() -> None:
    result = _evaluation(0.1, [("a", False), ("b", True), ("c[x=1]", False)], champion_wape=0.9)
    decision = decide_promotion(result, METHODOLOGY)
    assert (decision.promote, decision.reason) == (
        False,
        "kept as challenger: gates failed (a, c[x=1])",
    )


def test_no_champion_promotes_when_gates_pass() -> None:
    decision = decide_promotion(_evaluation(0.3, [("a", True)], None), METHODOLOGY)
    assert (decision.promote, decision.reason) == (
        True,
        "promoted to champion: gates passed, no previous champion",
    )


def test_champion_comparison_in_words() -> None:
    better = decide_promotion(_evaluation(0.2, [("a", True)], 0.25), METHODOLOGY)
    assert better.promote
    assert better.reason == (
        "promoted to champion: gates passed; challenger wape 0.2000 beats champion 0.2500: "
        f"relative improvement +20.00% vs required +0.00% (champion v4, {RECORDED})"
    )
    worse = decide_promotion(_evaluation(0.3, [("a", True)], 0.25), METHODOLOGY)
    assert not worse.promote
    assert worse.reason == (
        "kept as challenger: gates passed; challenger wape 0.3000 does not beat champion "
        f"0.2500: relative improvement -20.00% vs required +0.00% (champion v4, {RECORDED})"
    )


def test_a_refresh_on_newer_facts_is_promoted_when_no_worse() -> None:
    from dataclasses import replace

    from freightml.stages.evaluate import REBACKTESTED

    def rebacktested(wape: float, champion_cutoffs: tuple[str, ...]):
        result = _evaluation(wape, [("a", True)], 0.25)
        assert result.champion is not None
        recipe = replace(result.champion.recipe, cutoffs=champion_cutoffs)
        champion = result.champion.model_copy(update={"recipe": recipe, "how": REBACKTESTED})
        return result.model_copy(update={"champion": champion})

    # the challenger's last cutoff (2025-01-29) is later than the champion's: a refresh
    tie = decide_promotion(rebacktested(0.25, ("2024-12-04",)), METHODOLOGY)
    assert tie.promote and "refresh on newer facts" in tie.reason
    assert not decide_promotion(rebacktested(0.2501, ("2024-12-04",)), METHODOLOGY).promote
    # the same cutoffs: a tie keeps the champion
    same = decide_promotion(rebacktested(0.25, ("2025-01-01", "2025-01-29")), METHODOLOGY)
    assert not same.promote and "does not beat" in same.reason


def test_evaluation_result_round_trips_with_nan(tmp_path: Path) -> None:
    result = _evaluation(0.2, [("a", True), ("b", False)], 0.25)
    loaded = EvaluationResult.load(result.save(tmp_path / "evaluation.json"))
    assert loaded.failed_gates == ["b"] and not loaded.gates.passed
    assert loaded.gates.skipped == result.gates.skipped
    assert loaded.champion == result.champion
    assert math.isnan(loaded.metrics["seg_x_wape"]) and loaded.metrics["wape"] == 0.2
    assert math.isnan(loaded.by_segment["cargo_type"][0]["wape"])
    assert loaded.headline() == {
        "wape": 0.2,
        "wape_baseline": 0.4,
        "wape_ratio": 0.5,
        "bias": 0.01,
        "mae": 3.0,
        "gates_passed": 0.0,
    }


def test_a_missing_or_broken_result_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="EvaluationResult: .*nothing.json does not exist"):
        EvaluationResult.load(tmp_path / "nothing.json")
    info = {
        "digest": "d",
        "rows": 1,
        "series": 1,
        "start": "2025-01-01",
        "end": "2025-01-01",
        "regions": ["A"],
        "cargo_types": ["coal"],
        "source_uri": "x",
        "source_sha256": "s",
        "window_days": 91,
    }
    with pytest.raises(ValidationError, match="source_rows"):
        FactsInfo.model_validate(info)
    assert FactsInfo.model_validate({**info, "source_rows": 5}).source_rows == 5


def test_validation_summary_reads_the_report(tmp_path: Path) -> None:
    issues = [
        {"severity": "warning", "check": "missing_days", "message": f"warning {i}"}
        for i in range(12)
    ] + [{"severity": "error", "check": "negative", "message": "3 rows negative"}]
    report = {"ok": False, "n_errors": 1, "n_warnings": 12, "issues": issues}
    (tmp_path / "report.json").write_text(json.dumps(report))
    summary = ValidationSummary.from_report_file(tmp_path / "report.json")
    assert summary == ValidationSummary(
        ok=False, errors=1, warnings=12, messages=[f"warning {i}" for i in range(10)]
    )


def test_validate_data_writes_the_report_its_summary_reads(
    settings: Settings, tmp_path: Path
) -> None:
    facts = facts_frame([0, 1, 2, 3], tonnes=[100.0, -5.0, 100.0, 100.0])
    facts.to_parquet(tmp_path / "facts.parquet")
    report_path = tmp_path / "report.json"
    with pytest.raises(DataValidationError, match="negative"):
        validate_data(settings, tmp_path / "facts.parquet", report_path, tmp_path / "report.html")
    report = validate_facts(facts, settings=settings.data)
    assert report.errors
    assert ValidationSummary.from_report_file(report_path) == ValidationSummary(
        ok=False,
        errors=len(report.errors),
        warnings=len(report.warnings),
        messages=[i.message for i in report.warnings][:10],
    )


def test_timed_appends_a_line_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with timed("nowhere"):
        pass
    target = tmp_path / "timings.jsonl"
    monkeypatch.setenv(TIMINGS_ENV, str(target))
    with timed("step_a"), timed("step_b", kind="tracking"):
        pass
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert [(x["step"], x["kind"]) for x in lines] == [("step_b", "tracking"), ("step_a", "work")]
    assert all(isinstance(x["seconds"], float) for x in lines)


def test_batch_scoring_reads_the_facts_as_the_champion_does(settings: Settings) -> None:
    """The batch window uses the model's level adjustments and the training's calendar."""
    import numpy as np
    import pandas as pd

    from freightml.data.synthetic import generate
    from freightml.features.build import FEATURE_COLUMNS, build_inference_frame
    from freightml.features.levels import adjust_levels, adjustments_of
    from freightml.models import GlobalGBM
    from freightml.stages.score import scoring_window

    facts = generate("small", seed=2, n_series=40)
    after_all = (facts["date"].max() + pd.Timedelta(days=1)).date()
    model = GlobalGBM(level_adjustments=[f"cargo_type=coal before {after_all} x2"])
    us = settings.model_copy(
        update={"features": settings.features.model_copy(update={"holiday_country": "US"})}
    )
    window = scoring_window(us, facts, model)
    assert window.level_adjustments == adjustments_of(model)
    expected = build_inference_frame(
        adjust_levels(facts, adjustments_of(model)),
        window.origin,
        range(1, window.horizon_max + 1),
        holiday_country="US",
    )
    columns = [*FEATURE_COLUMNS, "scale"]
    np.testing.assert_allclose(
        window.features[columns].select_dtypes("number").to_numpy(dtype=float),
        expected[columns].select_dtypes("number").to_numpy(dtype=float),
        rtol=1e-6,
    )
    raw = scoring_window(settings, facts, GlobalGBM())
    coal = (window.features["cargo_type"].astype(str) == "coal").to_numpy()
    assert coal.any()
    np.testing.assert_allclose(window.features["scale"][coal], 2 * raw.features["scale"][coal])
