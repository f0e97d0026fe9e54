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
from freightml.retraining.decision import Evidence, decide
from freightml.retraining.policy import Policy

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


@pytest.mark.parametrize(("shifted", "rule"), [(False, "full_window"), (True, "post_change")])
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
        assert adjusted.model.params["pre_change_weight"] == 0.0
        assert adjusted.data.train_window_days < settings.data.train_window_days
    else:
        assert adjusted.model == settings.model and adjusted.data == settings.data
