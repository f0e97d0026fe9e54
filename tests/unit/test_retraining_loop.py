"""The closed loop's parts that need no server: the simulated facts (the shift and the new
region start on the shift day and nowhere before), the realised WAPE of a day, the summary
the loop is judged by, and the timeline plot. The loop itself runs end to end in
tests/e2e/test_demo_loop.py."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from freightml.config import Settings, load_settings
from freightml.demo.loop import (
    DayRecord,
    LoopResult,
    LoopScenario,
    loop_facts,
    loop_settings,
    plot_timeline,
    realised,
    summary,
)

pytestmark = [pytest.mark.unit]


def test_the_scenario_refuses_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="shift_day must fall inside the 13 simulated days"):
        LoopScenario(shift_day=13)
    with pytest.raises(ValueError, match="shift_factor must be > 0"):
        LoopScenario(shift_factor=0)
    with pytest.raises(ValueError, match="size must be one of"):
        LoopScenario(size="tiny")
    with pytest.raises(ValueError, match="loss must be one of squared_error, absolute_error"):
        LoopScenario(loss="huber")
    with pytest.raises(ValueError, match="target_base must be one of level,"):
        LoopScenario(target_base="yesterday")


def test_the_loop_settings_carry_its_recipe_over_the_configured_parameters(
    tmp_path: Path,
) -> None:
    base = Settings(model={"params": {"max_iter": 50}})
    recipe = {"loss": "absolute_error", "target_base": "seasonal_naive"}
    settings, path = loop_settings(base, tmp_path / "loop", tmp_path / "facts.parquet", recipe)
    assert settings.model.params["max_iter"] == 50  # the configured parameters stay
    assert {k: settings.model.params[k] for k in recipe} == recipe
    assert load_settings(path).model.params == settings.model.params  # what subprocesses read
    baseline = Settings(model={"name": "seasonal_naive", "params": {}})
    with pytest.raises(ValueError, match="model.name is 'seasonal_naive'; use model.name gbm"):
        loop_settings(baseline, tmp_path / "other", tmp_path / "facts.parquet", recipe)


def test_the_shift_and_the_new_region_start_on_the_shift_day() -> None:
    scenario = LoopScenario()
    facts = loop_facts(scenario)
    assert facts.history["date"].max() == pd.Timestamp(facts.origin)
    assert facts.later["date"].min() == pd.Timestamp(facts.origin + timedelta(days=1))
    assert facts.later["date"].max() == pd.Timestamp(facts.origin + timedelta(days=scenario.days))
    assert facts.shift_date == facts.origin + timedelta(days=scenario.shift_day)

    def in_region(frame: pd.DataFrame) -> pd.Series:
        return (frame["origin_region"].astype(str) == scenario.new_region) | (
            frame["destination_region"].astype(str) == scenario.new_region
        )

    assert not in_region(facts.history).any()  # the champion never sees the region
    new = facts.later.loc[in_region(facts.later)]
    assert len(new) and new["date"].min() == pd.Timestamp(facts.shift_date)

    coal = facts.later.loc[facts.later["cargo_type"].astype(str) == scenario.shift_cargo]
    daily = coal.groupby("date")["volume_tonnes"].sum()
    before = daily.loc[daily.index < pd.Timestamp(facts.shift_date)].mean()
    after = daily.loc[daily.index >= pd.Timestamp(facts.shift_date)].mean()
    assert after / before > 1.5  # x2 with noise


def test_realised_wape_scores_the_days_forecasts_against_its_facts() -> None:
    day = pd.Timestamp("2025-04-03")
    keys = {"origin_station": "A", "destination_station": "B"}
    forecasts = pd.DataFrame(
        [
            {**keys, "cargo_type": "coal", "date": day, "horizon": 1, "forecast": 90.0},
            {**keys, "cargo_type": "coal", "date": day, "horizon": 2, "forecast": 70.0},
            {**keys, "cargo_type": "grain", "date": day, "horizon": 1, "forecast": 10.0},
            {
                **keys,
                "cargo_type": "coal",
                "date": day + pd.Timedelta(days=1),
                "horizon": 2,
                "forecast": 1e6,
            },  # another day: not scored
        ]
    )
    facts = pd.DataFrame(
        [{**keys, "cargo_type": "coal", "date": day, "volume_tonnes": 100.0}]
    )  # grain has no fact that day: zero tonnes
    overall, shifted = realised(forecasts, facts, [("A", "B", "coal")])
    assert overall == pytest.approx((10 + 30 + 10) / (100 + 100))
    assert shifted == pytest.approx((10 + 30) / 200)


def _record(day: int, version: str, wape: float, decision: str = "no action") -> DayRecord:
    return DayRecord(
        day=day,
        date=date(2025, 4, day),
        phase="shifted" if day >= 3 else "before shift",
        version_served=version,
        requests=80,
        realised_wape=wape,
        shifted_wape=2 * wape,
        drifted_segments=1 if day >= 5 else 0,
        status="amber",
        decision=decision,
        triggers="new_regions 0.09 (limit 0.02)" if decision == "retrain" else "",
        action="v2 promoted; the predictor serves it" if decision == "retrain" else "",
        seconds=1.0,
    )


def test_summary_and_plot_of_a_timeline(tmp_path: Path) -> None:
    result = LoopResult(
        LoopScenario(),
        [
            _record(1, "1", 0.25),
            _record(2, "1", 0.25),
            _record(3, "1", 0.40),
            _record(4, "1", 0.38, "retrain"),
            _record(5, "2", 0.30),
            _record(6, "2", 0.26),
        ],
    )
    facts = summary(result)
    assert facts["retrain_decisions"] == 1 and facts["first_decision_day"] == 4
    assert facts["switch_day"] == 5 and facts["versions"] == ["1", "2"]
    assert facts["wape_before_shift"] == pytest.approx(0.25)
    assert facts["wape_before_switch"] == pytest.approx(0.39)
    assert facts["wape_after_switch"] == pytest.approx(0.28)
    assert facts["shifted_wape_before_switch"] == pytest.approx(0.78)
    assert facts["shifted_wape_after_switch"] == pytest.approx(0.56)
    path = plot_timeline(result.frame(), result.scenario, tmp_path / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
