"""Evaluation: metrics on hand-computed cases, methodology loading, cutoffs, gates, promotion,
and the agreement of docs/methodology.md with configs/methodology.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from freightml.evaluation import (
    BacktestResult,
    Methodology,
    backtest_cutoffs,
    beats_champion,
    bias,
    evaluate_gates,
    load_methodology,
    mae,
    metric_name,
    metric_table,
    wape,
)

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
YAML_PATH = ROOT / "configs" / "methodology.yaml"
DOC_PATH = ROOT / "docs" / "methodology.md"


@pytest.fixture(scope="module")
def methodology() -> Methodology:
    return load_methodology(YAML_PATH)


def test_point_metrics_on_a_hand_computed_case() -> None:
    y = np.array([10.0, 0.0, 30.0, np.nan])
    yhat = np.array([12.0, 1.0, 24.0, 99.0])  # the NaN actual is ignored
    assert wape(y, yhat) == pytest.approx((2 + 1 + 6) / 40)
    assert mae(y, yhat) == pytest.approx(3.0)
    assert bias(y, yhat) == pytest.approx((2 + 1 - 6) / 40)
    assert np.isnan(wape([0.0, 0.0], [1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        wape([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        mae([1.0], [np.nan])


def test_metric_table_groups_and_compares_with_baseline() -> None:
    frame = pd.DataFrame(
        {
            "region": ["a", "a", "b", "b", "b"],
            "y": [10.0, 20.0, 5.0, 5.0, np.nan],
            "yhat": [11.0, 18.0, 5.0, 7.0, 3.0],
            "yhat_baseline": [15.0, 15.0, 4.0, 4.0, 3.0],
        }
    )
    table = metric_table(frame, ["region"]).set_index("region")
    assert table.loc["a", "n"] == 2 and table.loc["b", "n"] == 2
    assert table.loc["a", "actual_tonnes"] == 30 and table.loc["b", "tonnes_share"] == 0.25
    assert table.loc["a", "wape"] == pytest.approx(3 / 30)
    assert table.loc["a", "wape_baseline"] == pytest.approx(10 / 30)
    assert table.loc["a", "wape_ratio"] == pytest.approx(0.3)
    assert table.loc["b", "bias"] == pytest.approx(2 / 10)
    assert table.loc["b", "mae_baseline"] == pytest.approx(1.0)
    overall = metric_table(frame, []).iloc[0]
    assert overall["n"] == 4 and overall["wape"] == pytest.approx(5 / 40)
    assert overall["wape_ratio"] == pytest.approx((5 / 40) / (12 / 40))


def test_methodology_loads_and_rejects_bad_files(tmp_path: Path, methodology) -> None:
    assert methodology.backtest.folds >= 3
    assert methodology.gates.max_wape_ratio_to_baseline == 0.90
    assert methodology.gates.max_segment_wape_ratio_to_baseline == 1.00
    assert methodology.gates.max_coverage_error_80 == 0.05
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_methodology(tmp_path / "nope.yaml")
    raw = yaml.safe_load(YAML_PATH.read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**raw, "gates": {**raw["gates"], "max_abs_bias": -1}}))
    with pytest.raises(ValueError, match=r"gates\.max_abs_bias"):
        load_methodology(bad)
    bad.write_text(yaml.safe_dump({**raw, "colour": "red"}))
    with pytest.raises(ValueError, match="colour"):
        load_methodology(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_methodology(bad)
    with pytest.raises(Exception, match="frozen"):
        methodology.gates.max_abs_bias = 1.0


def test_doc_table_matches_the_yaml() -> None:
    """Every leaf of configs/methodology.yaml appears in the doc's table with the same value."""
    text = DOC_PATH.read_text()
    block = re.search(
        r"<!-- methodology-table:start -->(.*?)<!-- methodology-table:end -->", text, re.S
    )
    assert block, "docs/methodology.md lost its methodology table markers"
    doc = {}
    for line in block.group(1).strip().splitlines()[2:]:
        key, value = (cell.strip() for cell in line.strip().strip("|").split("|"))
        doc[key] = value

    def flatten(node: object, prefix: str = "") -> dict[str, str]:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                out.update(flatten(v, f"{prefix}{k}."))
            return out
        value = ", ".join(map(str, node)) if isinstance(node, list) else str(node)
        return {prefix[:-1]: value}

    config = flatten(yaml.safe_load(YAML_PATH.read_text()))
    assert doc.keys() == config.keys()
    for key, value in config.items():
        try:
            assert float(doc[key]) == float(value), key
        except ValueError:
            assert doc[key] == value, key


def test_cutoffs_roll_back_from_the_last_full_horizon(methodology) -> None:
    cutoffs = backtest_cutoffs(pd.Timestamp("2024-12-31"), methodology)
    assert cutoffs == [pd.Timestamp("2024-12-03") - pd.Timedelta(days=28 * k) for k in (2, 1, 0)]
    other = methodology.model_copy(
        update={"backtest": methodology.backtest.model_copy(update={"folds": 4, "step_days": 7})}
    )
    assert backtest_cutoffs(pd.Timestamp("2024-12-31 13:00"), other) == list(
        pd.date_range("2024-11-12", "2024-12-03", freq="7D")
    )


def _result(
    methodology: Methodology,
    *,
    small_model_error: float = 1.0,
    big_bias: float = 0.0,
    covered: float | None = 0.8,
) -> BacktestResult:
    """Ten big West series and two tiny East series; errors set by the arguments. With
    ``covered`` the first that share of rows has the actual inside both central intervals
    and the rest outside (None: no interval columns)."""
    rows = []
    for i in range(12):
        east = i >= 10
        y = 1.0 if east else 100.0
        for h in range(1, 5):
            err = (1 if h % 2 else -1) * (small_model_error if east else 5.0)
            rows.append(
                {
                    "fold": 0,
                    "cutoff": pd.Timestamp("2024-01-01"),
                    "origin_station": f"S{i}",
                    "destination_station": "D",
                    "cargo_type": "coal",
                    "origin_region": "East" if east else "West",
                    "destination_region": "West",
                    "horizon": h,
                    "target_date": pd.Timestamp("2024-01-01") + pd.Timedelta(days=h),
                    "y": y,
                    "yhat": y + err + big_bias * y,
                    "yhat_baseline": y + (1 if h % 2 else -1) * (0.5 if east else 10.0),
                }
            )
    frame = pd.DataFrame(rows)
    if covered is not None:
        inside = np.arange(len(frame)) < round(covered * len(frame))
        low = np.where(inside, frame["y"] - 1, frame["y"] + 1)
        for column in ("tonnes_p2_5", "tonnes_p10"):
            frame[column] = low
        for column in ("tonnes_p90", "tonnes_p97_5"):
            frame[column] = np.where(inside, frame["y"] + 1, frame["y"] + 2)
    return BacktestResult(frame, [pd.Timestamp("2024-01-01")], methodology)


def test_gates_pass_and_ignore_an_unsupported_segment(methodology) -> None:
    # East is 0.2% of tonnes with 2 series and twice as bad as its baseline: not gated
    report = evaluate_gates(_result(methodology, small_model_error=1.0), methodology)
    assert report.passed, report.to_markdown()
    names = {c.name for c in report.checks}
    assert {"wape_ratio_to_baseline", "abs_bias", "interval_coverage_80_error"} <= names
    assert "segment_wape_ratio_to_baseline[origin_region=West]" in names
    assert not any("East" in n for n in names)
    assert any(s.startswith("origin_region=East") for s in report.skipped)
    overall = next(c for c in report.checks if c.name == "wape_ratio_to_baseline")
    assert overall.value == pytest.approx((40 * 5 + 8 * 1) / (40 * 10 + 8 * 0.5))
    assert report.to_dict()["passed"] is True
    assert "PASSED" in report.to_markdown()


def test_the_coverage_gate_fails_wrong_or_missing_intervals(methodology) -> None:
    """The 80% interval must cover 75-85% of the actuals; a version without intervals fails."""
    passing = evaluate_gates(_result(methodology, covered=0.8), methodology)
    check = next(c for c in passing.checks if c.name == "interval_coverage_80_error")
    assert check.passed and check.value == pytest.approx(abs(38 / 48 - 0.8))
    for covered, detail in ((0.6, "covered 60.4%"), (0.95, "covered 95.8%")):
        report = evaluate_gates(_result(methodology, covered=covered), methodology)
        assert [c.name for c in report.failed] == ["interval_coverage_80_error"]
        assert detail in report.failed[0].detail
    missing = evaluate_gates(_result(methodology, covered=None), methodology)
    assert [c.name for c in missing.failed] == ["interval_coverage_80_error"]
    assert "no calibrated intervals" in missing.failed[0].detail
    ungated = methodology.model_copy(
        update={"gates": methodology.gates.model_copy(update={"max_coverage_error_80": None})}
    )
    report = evaluate_gates(_result(ungated, covered=None), ungated)
    assert report.passed and "interval_coverage_80_error" not in {c.name for c in report.checks}


def test_gates_fail_on_bias_and_on_a_supported_segment(methodology) -> None:
    report = evaluate_gates(_result(methodology, big_bias=0.08), methodology)
    assert not report.passed
    assert {c.name for c in report.failed} == {"abs_bias"}
    support = methodology.gates.model_copy(
        update={"min_segment_share": 0.0, "min_segment_series": 1}
    )
    strict = methodology.model_copy(update={"gates": support})
    report = evaluate_gates(_result(strict, small_model_error=1.0), strict)
    assert [c.name for c in report.failed] == ["segment_wape_ratio_to_baseline[origin_region=East]"]
    assert "FAIL" in report.to_markdown()


def test_a_refresh_on_newer_facts_needs_to_be_no_worse(methodology) -> None:
    ok, reason = beats_champion({"wape": 0.32}, {"wape": 0.32}, methodology, newer_facts=True)
    assert ok and "refresh on newer facts" in reason and "no worse" in reason
    ok, reason = beats_champion({"wape": 0.3201}, {"wape": 0.32}, methodology, newer_facts=True)
    assert not ok and "is worse than" in reason
    assert not beats_champion({"wape": 0.32}, {"wape": 0.32}, methodology)[0]  # same facts


def test_beats_champion(methodology) -> None:
    ok, reason = beats_champion({"wape": 0.30}, {"wape": 0.32}, methodology)
    assert ok and "beats" in reason
    ok, reason = beats_champion({"wape": 0.33}, {"wape": 0.32}, methodology)
    assert not ok and "does not beat" in reason
    ok, reason = beats_champion({"wape": 0.32}, {"wape": 0.32}, methodology)
    assert not ok and "+0.00%" in reason  # a tie keeps the champion
    assert beats_champion({"wape": 0.5}, None, methodology)[0]
    assert not beats_champion({}, {"wape": 0.3}, methodology)[0]
    demanding = methodology.model_copy(
        update={
            "promotion": methodology.promotion.model_copy(
                update={"min_wape_improvement_over_champion": 0.05}
            )
        }
    )
    assert not beats_champion({"wape": 0.31}, {"wape": 0.32}, demanding)[0]


def test_metric_names_are_mlflow_legal() -> None:
    assert metric_name("seg_origin_region_West Siberian") == "seg_origin_region_West_Siberian"
    assert metric_name("seg_origin_region_Западно-Сибирская") == (
        "seg_origin_region_Zapadno-Sibirskaya"
    )
    assert re.fullmatch(r"[A-Za-z0-9_.\-/]+", metric_name("seg cargo (кокс) 50%"))
