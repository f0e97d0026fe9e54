"""Level adjustments: the text form a model version records, applying them to facts, and
the GBM parameter that carries them."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from freightml.features.levels import (
    LevelAdjustment,
    adjust_levels,
    adjustments_of,
    parse_adjustments,
)
from freightml.models import GlobalGBM, SeasonalNaive

pytestmark = [pytest.mark.unit]


def test_adjust_levels_scales_the_segment_before_the_change_only() -> None:
    facts = pd.DataFrame(
        {
            "date": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-01", "2025-01-02"]),
            "cargo_type": ["coal", "coal", "grain", "grain"],
            "volume_tonnes": [10.0, 20.0, 30.0, 40.0],
        }
    )
    step = LevelAdjustment("cargo_type", "coal", date(2025, 1, 2), 2.0)
    out = adjust_levels(
        facts, [step, LevelAdjustment("cargo_type", "grain", date(2025, 1, 3), 0.5)]
    )
    assert out["volume_tonnes"].tolist() == [20.0, 20.0, 15.0, 20.0]
    assert facts["volume_tonnes"].tolist() == [10.0, 20.0, 30.0, 40.0]  # a copy
    assert adjust_levels(facts, []) is facts
    with pytest.raises(ValueError, match=r"lack column\(s\) \['origin_region'\]"):
        adjust_levels(facts, [LevelAdjustment("origin_region", "X", date(2025, 1, 2), 2.0)])


def test_the_text_form_round_trips_and_bad_ones_say_what_is_wrong() -> None:
    step = LevelAdjustment("origin_region", "Far Eastern=x", date(2025, 9, 17), 1.612)
    assert step.describe() == "origin_region=Far Eastern=x before 2025-09-17 x1.612"
    assert LevelAdjustment.parse(step.describe()) == step
    assert parse_adjustments(None) == ()
    assert parse_adjustments([step.describe()]) == (step,)
    with pytest.raises(ValueError, match="not of the form"):
        LevelAdjustment.parse("coal x1.6")
    with pytest.raises(ValueError, match="2025-02-30"):
        LevelAdjustment.parse("cargo_type=coal before 2025-02-30 x1.5")
    with pytest.raises(ValueError, match="must be a list of strings"):
        parse_adjustments("cargo_type=coal before 2025-01-02 x2")
    for factor in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="the factor must be finite and > 0"):
            LevelAdjustment("cargo_type", "coal", date(2025, 1, 2), factor)


def test_a_model_carries_its_adjustments_and_fit_rejects_a_bad_one() -> None:
    text = "cargo_type=coal before 2025-01-02 x2"
    assert adjustments_of(GlobalGBM(level_adjustments=[text])) == (LevelAdjustment.parse(text),)
    assert adjustments_of(GlobalGBM()) == ()
    assert adjustments_of(SeasonalNaive()) == ()  # no such parameter: raw facts
    with pytest.raises(ValueError, match="not of the form"):
        GlobalGBM(level_adjustments=["coal doubled"]).fit(pd.DataFrame())
