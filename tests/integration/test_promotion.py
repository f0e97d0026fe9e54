"""Promotion decisions, every branch, through the real stages in this process, with MLflow
on a temporary SQLite store (the pipeline's own promotion of a first champion is
``test_training_pipeline``'s kfp.local run).

Outcomes are forced, not hoped for: the seasonal-naive model *is* the methodology's
baseline, so its WAPE ratio to the baseline is exactly 1 and two runs of it on the same
window tie exactly; gradient boosting beats it, but no model is 100 times better than the
baseline, so a limit of 0.01 on the overall ratio fails it while the other gates are
opened wide. The gates are set per run in a temporary methodology file. The version that
fails the gates is better than the champion, so only the gates keep it out.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from freightml.config import Settings
from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.domain import CHALLENGER, CHAMPION, MODEL_NAME
from freightml.stages.register import PIPELINE_ACTOR
from freightml.tracking import champion_version, configure_mlflow, rollback
from freightml.tracking.registry import AuditEvent, audit_log
from helpers import run_stages

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
FAST_GBM = {"max_iter": 40, "max_train_rows": 50_000}
LOOSE = {
    "max_wape_ratio_to_baseline": 10.0,
    "max_segment_wape_ratio_to_baseline": 10.0,
    "max_abs_bias": 1.0,
}
# only the overall ratio gate can fail, and it does
OVERALL_RATIO_FAILS = {
    "max_wape_ratio_to_baseline": 0.01,
    "max_segment_wape_ratio_to_baseline": 10.0,
    "max_abs_bias": 1.0,
}
SAME_WINDOW = "recorded metrics (same data digest and cutoffs)"


@pytest.fixture(scope="module")
def small_facts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "small.parquet"
    save_facts(generate("small", seed=42), path)
    return path


def _methodology(
    tmp_path: Path, name: str, gates: dict[str, float], min_improvement: float = 0.0
) -> Path:
    spec = yaml.safe_load((REPO / "configs" / "methodology.yaml").read_text())
    spec["gates"].update(gates)
    spec["promotion"]["min_wape_improvement_over_champion"] = min_improvement
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _settings(
    settings: Settings,
    source: Path,
    methodology: Path,
    model: str,
    params: dict[str, Any] | None = None,
) -> Settings:
    return settings.model_copy(
        update={
            "data": settings.data.model_copy(update={"source_uri": str(source)}),
            "methodology_path": methodology,
            "model": settings.model.model_copy(update={"name": model, "params": params or {}}),
            # the promotion rules on fixed recipes: the configured model alone (its
            # intervals still calibrated), not the portfolio's choice
            "selection": settings.selection.model_copy(update={"enabled": False}),
        }
    )


def _aliases(client, version: str) -> set[str]:
    aliases = client.get_registered_model(MODEL_NAME).aliases
    return {a for a, v in aliases.items() if str(v) == version}


def _metric(client, version: str, name: str) -> float:
    return client.get_run(client.get_model_version(MODEL_NAME, version).run_id).data.metrics[name]


# -- lifecycle level: the stage functions in this process ------------------------------
def test_failing_gates_register_a_challenger_and_leave_the_champion(
    settings: Settings, small_facts: Path, tmp_path: Path
) -> None:
    loose = _methodology(tmp_path, "loose", LOOSE)
    first = run_stages(_settings(settings, small_facts, loose, "seasonal_naive"), tmp_path / "v1")
    assert (first.version, first.promoted) == ("1", True)
    assert first.decision == "promoted to champion: gates passed, no previous champion"

    strict = _methodology(tmp_path, "strict", OVERALL_RATIO_FAILS)
    second = run_stages(_settings(settings, small_facts, strict, "gbm", FAST_GBM), tmp_path / "v2")
    decision = "kept as challenger: gates failed (wape_ratio_to_baseline)"
    assert (second.version, second.promoted, second.champion) == ("2", False, "1")
    assert second.decision == decision

    client = configure_mlflow(settings)
    assert champion_version(client, MODEL_NAME) == "1"
    assert _aliases(client, "2") == {CHALLENGER}
    # it would have beaten the champion: only the gate keeps it out
    assert _metric(client, "2", "wape") < _metric(client, "1", "wape")
    ratio = _metric(client, "2", "wape_ratio")
    tags = client.get_model_version(MODEL_NAME, "2").tags
    assert tags["freightml.gates"] == "failed"
    assert tags["freightml.failed_gates"] == "wape_ratio_to_baseline"
    assert tags["freightml.decision"] == decision
    run = client.get_run(client.get_model_version(MODEL_NAME, "2").run_id)
    assert run.data.tags["freightml.decision"] == decision
    assert run.data.metrics["gates_passed"] == 0.0

    card = (second.cards_dir / "model_card.md").read_text()
    assert f"| decision | {decision} |" in card
    assert "### Gates: FAILED\n\nFailed gates: wape_ratio_to_baseline.\n" in card
    assert f"| wape_ratio_to_baseline | {ratio:.4f} | 0.0100 | FAIL |" in card
    assert "| aliases | challenger |" in card
    # the champion never moved: only v1's promotion is in the audit log
    assert [(e.action, e.version) for e in audit_log(client, MODEL_NAME)] == [("promote", "1")]


def test_a_tie_with_the_champion_keeps_the_challenger(
    settings: Settings, small_facts: Path, tmp_path: Path
) -> None:
    loose = _methodology(tmp_path, "loose", LOOSE)
    s = _settings(settings, small_facts, loose, "seasonal_naive")
    run_stages(s, tmp_path / "v1")
    second = run_stages(s, tmp_path / "v2")

    client = configure_mlflow(settings)
    # the seasonal-naive model is the baseline: both runs score exactly the baseline's WAPE
    baseline = _metric(client, "1", "wape_baseline")
    assert _metric(client, "1", "wape") == baseline == _metric(client, "2", "wape")
    decision = (
        f"kept as challenger: gates passed; challenger wape {baseline:.4f} does not beat "
        f"champion {baseline:.4f}: relative improvement +0.00% vs required +0.00% "
        f"(champion v1, {SAME_WINDOW})"
    )
    assert (second.version, second.promoted, second.champion) == ("2", False, "1")
    assert second.decision == decision
    assert client.get_model_version(MODEL_NAME, "2").tags["freightml.decision"] == decision
    assert client.get_model_version(MODEL_NAME, "2").tags["freightml.gates"] == "passed"
    assert champion_version(client, MODEL_NAME) == "1"
    assert _aliases(client, "2") == {CHALLENGER}
    assert f"| decision | {decision} |" in (second.cards_dir / "model_card.md").read_text()
    assert [(e.action, e.version) for e in audit_log(client, MODEL_NAME)] == [("promote", "1")]


def _between(at: str, start: datetime, end: datetime) -> bool:
    moment = datetime.fromisoformat(at)
    return start - timedelta(seconds=1) <= moment <= end + timedelta(seconds=1)


def test_a_better_challenger_replaces_the_champion_is_audited_and_rolled_back(
    settings: Settings, small_facts: Path, tmp_path: Path
) -> None:
    loose = _methodology(tmp_path, "loose", LOOSE)
    run_stages(_settings(settings, small_facts, loose, "seasonal_naive"), tmp_path / "v1")
    client = configure_mlflow(settings)
    assert champion_version(client, MODEL_NAME) == "1"

    started = datetime.now(UTC)
    second = run_stages(_settings(settings, small_facts, loose, "gbm", FAST_GBM), tmp_path / "v2")
    finished = datetime.now(UTC)
    assert champion_version(client, MODEL_NAME) == "2"
    assert _aliases(client, "2") == {CHAMPION, CHALLENGER}

    old, new = _metric(client, "1", "wape"), _metric(client, "2", "wape")
    improvement = (old - new) / old
    assert improvement > 0.1  # gradient boosting beats the seasonal-naive baseline clearly
    reason = (
        f"promoted to champion: gates passed; challenger wape {new:.4f} beats champion "
        f"{old:.4f}: relative improvement {improvement:+.2%} vs required +0.00% "
        f"(champion v1, {SAME_WINDOW})"
    )
    assert client.get_model_version(MODEL_NAME, "2").tags["freightml.decision"] == reason
    assert f"| decision | {reason} |" in (second.cards_dir / "model_card.md").read_text()

    first_promotion, promotion = audit_log(client, MODEL_NAME)
    assert first_promotion.version == "1" and first_promotion.previous_version is None
    assert _between(promotion.at, started, finished)
    assert promotion == AuditEvent(
        action="promote",
        model=MODEL_NAME,
        version="2",
        previous_version="1",
        actor=PIPELINE_ACTOR,
        reason=reason,
        at=promotion.at,
    )

    started = datetime.now(UTC)
    event = rollback(client, MODEL_NAME, reason="v2 forecasts drifted", actor="ops-oncall")
    finished = datetime.now(UTC)
    expected = AuditEvent(
        action="rollback",
        model=MODEL_NAME,
        version="1",
        previous_version="2",
        actor="ops-oncall",
        reason="v2 forecasts drifted",
        at=event.at,
    )
    assert event == expected and _between(event.at, started, finished)
    assert audit_log(client, MODEL_NAME)[-1] == expected
    assert champion_version(client, MODEL_NAME) == "1"
    tags = client.get_model_version(MODEL_NAME, "1").tags
    assert (tags["freightml.rollback_by"], tags["freightml.rollback_reason"]) == (
        "ops-oncall",
        "v2 forecasts drifted",
    )

    # a better version that fails the gates leaves the restored champion where it is
    strict = _methodology(tmp_path, "strict", OVERALL_RATIO_FAILS)
    third = run_stages(_settings(settings, small_facts, strict, "gbm", FAST_GBM), tmp_path / "v3")
    assert champion_version(client, MODEL_NAME) == "1"
    assert _aliases(client, "3") == {CHALLENGER}
    tags = client.get_model_version(MODEL_NAME, "3").tags
    assert tags["freightml.failed_gates"] == "wape_ratio_to_baseline"
    assert tags["freightml.decision"] == "kept as challenger: gates failed (wape_ratio_to_baseline)"
    assert (
        "Failed gates: wape_ratio_to_baseline." in (third.cards_dir / "model_card.md").read_text()
    )
    assert len(audit_log(client, MODEL_NAME)) == 3
