"""The settings a retraining run gets: facts up to the as-of day, the decision as retrain.*
tags, and the policy's shift-aware window over the facts the run will read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from freightml.config import Settings
from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.retraining.act import retrain_settings, shift_aware_window
from freightml.retraining.policy import Policy
from freightml.retraining.rules import decide
from freightml.retraining.types import Evidence

pytestmark = [pytest.mark.unit]
AS_OF = date(2025, 3, 31)  # the last day of the "small" data
SHIFT = date(2024, 11, 20)  # 132 days before AS_OF


def _decision(as_of: date = AS_OF):
    evidence = Evidence(
        model_name="freight-volume",
        as_of=as_of,
        snapshot=None,
        champion=None,
        new_facts=None,
        new_entities=None,
    )
    return decide(Policy(), evidence, now=datetime(2025, 4, 1, tzinfo=UTC))


def test_retrain_settings_cut_the_facts_at_as_of_and_carry_the_tags() -> None:
    base = Settings(tracking={"run_tags": {"team": "freight"}})
    decision = _decision(date(2025, 3, 1))
    settings = retrain_settings(base, decision)
    assert settings.data.end_date == date(2025, 3, 1)
    assert settings.tracking.run_tags["team"] == "freight"  # kept
    assert settings.tracking.run_tags["retrain.trigger"] == "no_champion"
    assert settings.tracking.run_tags["retrain.decision_id"] == decision.id
    assert base.data.end_date is None  # the given settings are left alone


@pytest.mark.parametrize(("shifted", "rule"), [(False, "full_window"), (True, "restated")])
def test_the_window_rule_reads_the_run_facts(tmp_path: Path, shifted: bool, rule: str) -> None:
    injection = {"level_shift": (SHIFT, 1.6), "level_shift_cargo": "coal"} if shifted else {}
    facts = generate("small", seed=1, n_series=300, **injection)  # type: ignore[arg-type]
    path = save_facts(facts, tmp_path / "facts.parquet")
    decision = _decision()
    settings = retrain_settings(Settings(data={"source_uri": str(path)}), decision)
    adjusted = shift_aware_window(Policy())(settings, decision)
    tags = adjusted.tracking.run_tags
    assert tags["retrain.window.rule"] == rule
    assert tags["retrain.window.cause"] == "no_champion"
    assert tags["retrain.window.as_of"] == "2025-03-31"
    assert tags["retrain.decision_id"] == decision.id  # the decision's tags are kept
    if shifted:
        change = pd.Timestamp(tags["retrain.window.change_date"]).date()
        assert abs((change - SHIFT).days) <= 14
        # less than a year of the new regime: coal's facts before it are restated, the
        # weights stay uniform; the run records the restatement
        [step] = adjusted.model.params["level_adjustments"]
        assert step.startswith("cargo_type=coal before ")
        assert tags["retrain.window.level_adjustments"] == step
        assert "weight_before" not in adjusted.model.params
    else:
        assert adjusted.model == settings.model and adjusted.data == settings.data


def test_start_claims_the_key_once_and_returns_the_run_settings(tmp_path: Path) -> None:
    from freightml.retraining.act import fail_retrain, finish_retrain, start_retrain
    from freightml.retraining.decisions import DecisionStore
    from freightml.store import Store

    path = save_facts(generate("small", seed=1, n_series=60), tmp_path / "facts.parquet")
    settings = Settings(data={"source_uri": str(path)})
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    policy = Policy()
    adjust = shift_aware_window(policy)

    quiet = _decision().model_copy(update={"retrain": False})
    assert start_retrain(settings, store, policy, quiet, adjust=adjust).status == "skipped"

    first = _decision()
    began = start_retrain(settings, store, policy, first, adjust=adjust)
    assert began.status == "started" and began.settings is not None
    assert began.settings.data.end_date == AS_OF
    assert began.settings.tracking.run_tags["retrain.window.rule"] == "full_window"
    again = start_retrain(settings, store, policy, _decision(), adjust=adjust)
    assert again.status == "skipped" and again.settings is None
    assert again.message == f"key {first.key} already started"
    finish_retrain(store, first.id, version="7", run_id="run-7", message="promoted to champion")
    row = DecisionStore(store).get(first.id)
    assert row is not None and (row["status"], row["model_version"], row["run_id"]) == (
        "finished",
        "7",
        "run-7",
    )

    # the window rule refuses facts that end long before the as-of day: recorded as failed
    late = _decision(date(2025, 9, 1))
    with pytest.raises(ValueError, match="long before the as-of date"):
        start_retrain(settings, store, policy, late, adjust=adjust)
    row = DecisionStore(store).get(late.id)
    assert row is not None and row["status"] == "failed"
    assert row["message"].startswith("ValueError: the facts end on 2025-03-31")
    with pytest.raises(ValueError, match="is failed: it cannot become failed"):
        fail_retrain(store, late.id, "again")
    store.close()
