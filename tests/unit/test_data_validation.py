"""validate_facts: each check on tiny frames, then planted faults in generated data."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from freightml.data.schema import FACT_COLUMNS
from freightml.data.synthetic import generate
from freightml.data.validation import DataValidationError, ValidationReport, validate_facts

pytestmark = [pytest.mark.unit]
TODAY = date(2026, 1, 1)


def _tiny(days: int = 20) -> pd.DataFrame:
    """One NSK->VLD coal series with a steady ~700 t a day."""
    dates = pd.date_range("2024-03-01", periods=days)
    volume = 700.0 + 10.0 * np.sin(np.arange(days))
    return pd.DataFrame(
        {
            "date": dates,
            "origin_station": "NSK",
            "destination_station": "VLD",
            "origin_region": "West Siberian",
            "destination_region": "Far Eastern",
            "cargo_type": "coal",
            "volume_tonnes": volume,
            "wagons": np.rint(volume / 69.5).astype("int64"),
        }
    )


def _only(report: ValidationReport, check: str):
    found = [i for i in report.issues if i.check == check]
    assert len(found) == 1, report.issues
    return found[0]


def test_clean_frame_is_ok() -> None:
    report = validate_facts(_tiny(), today=TODAY)
    assert report.ok and report.issues == []
    assert (report.n_rows, report.n_series) == (20, 1)
    assert report.date_range == ("2024-03-01", "2024-03-20")


def test_missing_columns_stop_with_a_schema_error() -> None:
    report = validate_facts(_tiny().drop(columns=["wagons", "cargo_type"]), today=TODAY)
    issue = _only(report, "schema")
    assert issue.severity == "error" and "['cargo_type', 'wagons']" in issue.message


def test_negative_volume_message_names_first_row() -> None:
    df = _tiny()
    df.loc[[2, 5], "volume_tonnes"] = -1.0
    issue = _only(validate_facts(df, today=TODAY), "negative_volume")
    assert issue.message == "2 rows have negative volume_tonnes (first: 2024-03-03 NSK->VLD coal)"
    assert issue.n_rows == 2 and issue.examples[0]["row"] == 2
    assert issue.examples[0]["volume_tonnes"] == -1.0


def test_negative_wagons_nan_and_infinite_volume() -> None:
    df = _tiny()
    df.loc[1, "wagons"] = -3
    df.loc[3, "volume_tonnes"] = np.nan
    df.loc[4, "volume_tonnes"] = np.inf
    report = validate_facts(df, today=TODAY)
    assert _only(report, "negative_wagons").message.startswith("1 row has negative wagons")
    nan = [i.message for i in report.issues if i.check == "nan_volume"]
    assert any("1 row has NaN volume_tonnes (first: 2024-03-04" in m for m in nan)
    assert any("infinite volume_tonnes" in m for m in nan)


def test_duplicates_are_errors() -> None:
    df = pd.concat([_tiny(), _tiny().iloc[[4]]], ignore_index=True)
    issue = _only(validate_facts(df, today=TODAY), "duplicate_rows")
    assert issue.severity == "error" and issue.n_rows == 2
    assert "2024-03-05 NSK->VLD coal" in issue.message


def test_wrong_dtype_is_a_schema_error_not_a_crash() -> None:
    df = _tiny()
    df["volume_tonnes"] = df["volume_tonnes"].round(1).astype(str)
    df.loc[7, "volume_tonnes"] = "lots"
    df["date"] = df["date"].dt.strftime("%Y-%m-%d")
    report = validate_facts(df, today=TODAY)
    messages = [i.message for i in report.errors if i.check == "schema"]
    assert any(
        "column volume_tonnes has dtype object, expected float64" in m and "(first: 'lots')" in m
        for m in messages
    )
    assert any("column date has dtype object, expected datetime64[ns]" in m for m in messages)
    assert report.n_rows == 20 and not report.ok


def test_non_midnight_dates_and_future_dates() -> None:
    df = _tiny()
    df.loc[0, "date"] = pd.Timestamp("2024-03-01 06:00")
    assert "not at midnight" in _only(validate_facts(df, today=TODAY), "schema").message
    issue = _only(validate_facts(_tiny(), today=date(2024, 3, 15)), "future_dates")
    assert issue.message.startswith("5 rows are dated after today (2024-03-15)")


def test_missing_days_warn_then_fail_above_threshold() -> None:
    df = _tiny().drop(index=[3, 4, 10])
    issue = _only(validate_facts(df, today=TODAY), "missing_days")
    assert issue.severity == "warning" and issue.n_rows == 3
    assert "3 series-days missing in 1 series (15.0% of 20" in issue.message
    assert "NSK->VLD coal 2024-03-04 to 2024-03-05" in issue.message
    strict = _only(validate_facts(df, max_missing_day_share=0.1, today=TODAY), "missing_days")
    assert strict.severity == "error" and "exceeds max_missing_day_share 10%" in strict.message


def test_volume_anomaly_uses_robust_z() -> None:
    df = _tiny()
    df.loc[9, "volume_tonnes"] = 7000.0
    df.loc[9, "wagons"] = 100
    issue = _only(validate_facts(df, today=TODAY), "volume_anomaly")
    assert issue.severity == "warning" and issue.n_rows == 1
    assert "first has 7,000.0 t" in issue.message and "2024-03-10 NSK->VLD coal" in issue.message
    assert "volume_anomaly" not in validate_facts(df, anomaly_z=1e6, today=TODAY).checks()


def test_unseen_and_unknown_categories() -> None:
    reference = _tiny()
    df = pd.concat(
        [_tiny(), _tiny().assign(origin_station="OMS", origin_region="Siberia", cargo_type="lava")],
        ignore_index=True,
    )
    report = validate_facts(df, reference=reference, today=TODAY)
    assert report.ok
    unseen = [i.message for i in report.issues if i.check == "unseen_category"]
    assert any("use 1 stations not present in the reference data: ['OMS']" in m for m in unseen)
    assert len(unseen) == 3
    assert "['Siberia']" in _only(report, "unknown_region").message
    assert "['lava']" in _only(report, "unknown_cargo_type").message


def test_wagon_capacity() -> None:
    df = _tiny()
    df.loc[2, "wagons"] = 2  # ~700 t in 2 coal wagons
    df.loc[3, "wagons"] = 0
    issue = _only(validate_facts(df, today=TODAY), "wagon_capacity")
    assert issue.severity == "warning" and issue.n_rows == 2


def test_report_json_html_write_and_raise(tmp_path: Path) -> None:
    df = _tiny()
    df.loc[2, "volume_tonnes"] = -5.0
    df.loc[0, "origin_region"] = "Atlantis"
    report = validate_facts(df, today=TODAY)
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["n_errors"] == 1 and data["n_warnings"] >= 1
    assert {i["check"] for i in data["issues"]} >= {"negative_volume", "unknown_region"}
    html = report.to_html()
    assert html.startswith("<!DOCTYPE html>") and "FAILED" in html and "negative_volume" in html
    assert "<script" not in html and "http" not in html.split("<body>")[1]
    json_path, html_path = report.write(tmp_path / "rep")
    assert json.loads(json_path.read_text())["n_rows"] == 20 and html_path.name == "report.html"
    with pytest.raises(DataValidationError) as info:
        report.raise_for_errors()
    assert "1 row has negative volume_tonnes (first: 2024-03-03 NSK->VLD coal)" in str(info.value)
    assert info.value.report is report
    validate_facts(_tiny(), today=TODAY).raise_for_errors()  # no error, no raise


# --- planted faults in generated data -------------------------------------------------


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate("small")


def _planted(report: ValidationReport, check: str, severity: str, words: str) -> None:
    found = [i for i in report.issues if i.check == check and words in i.message]
    assert found, f"no {check} issue mentions {words!r}: {[i.message for i in report.issues]}"
    assert found[0].severity == severity


@pytest.mark.data
def test_generated_data_is_clean(small: pd.DataFrame) -> None:
    report = validate_facts(small, reference=small)
    assert report.ok and report.issues == []


@pytest.mark.data
def test_planted_duplicates(small: pd.DataFrame) -> None:
    df = pd.concat([small, small.iloc[[100, 2000, 30000]]], ignore_index=True)
    _planted(validate_facts(df), "duplicate_rows", "error", "6 rows share their (series, date) key")


@pytest.mark.data
def test_planted_negative_volume(small: pd.DataFrame) -> None:
    df = small.copy()
    df.loc[[10, 500], "volume_tonnes"] *= -1
    df.loc[[10, 500], "volume_tonnes"] -= 1
    _planted(validate_facts(df), "negative_volume", "error", "2 rows have negative volume_tonnes")


@pytest.mark.data
def test_planted_nan_volume(small: pd.DataFrame) -> None:
    df = small.copy()
    df.loc[123, "volume_tonnes"] = np.nan
    _planted(validate_facts(df), "nan_volume", "error", "1 row has NaN volume_tonnes")


@pytest.mark.data
def test_planted_missing_days_beyond_threshold(small: pd.DataFrame) -> None:
    df = generate("small", missing_days=0.3)
    _planted(validate_facts(df), "missing_days", "error", "exceeds max_missing_day_share 20%")
    _planted(
        validate_facts(generate("small", missing_days=0.05)),
        "missing_days",
        "warning",
        "series-days missing",
    )


@pytest.mark.data
def test_planted_anomaly_spike(small: pd.DataFrame) -> None:
    df = small.copy()
    row = int(np.flatnonzero(df["volume_tonnes"].to_numpy() > 100)[50])
    df.loc[row, "volume_tonnes"] *= 100
    report = validate_facts(df)
    _planted(report, "volume_anomaly", "warning", "far from their series' usual level")
    assert _only(report, "volume_anomaly").examples[0]["row"] == row


@pytest.mark.data
def test_planted_unseen_station(small: pd.DataFrame) -> None:
    df = small.copy()
    df["origin_station"] = df["origin_station"].cat.rename_categories(
        {df["origin_station"].iloc[0]: "NEW-001"}
    )
    _planted(validate_facts(df, reference=small), "unseen_category", "warning", "['NEW-001']")


@pytest.mark.data
def test_planted_unknown_region(small: pd.DataFrame) -> None:
    df = generate("small", new_region="Kazakhstan")
    _planted(validate_facts(df), "unknown_region", "warning", "['Kazakhstan']")
    _planted(validate_facts(df, reference=small), "unseen_category", "warning", "['Kazakhstan']")


@pytest.mark.data
def test_planted_future_date(small: pd.DataFrame) -> None:
    df = small.copy()
    df.loc[len(df) - 1, "date"] = pd.Timestamp("2099-01-01")
    _planted(validate_facts(df), "future_dates", "error", "1 row is dated after today")


@pytest.mark.data
def test_planted_wrong_dtype(small: pd.DataFrame) -> None:
    df = small.astype({"volume_tonnes": str, "wagons": float})
    report = validate_facts(df)
    _planted(report, "schema", "error", "column volume_tonnes has dtype object, expected float64")
    assert sum(i.check == "schema" for i in report.errors) == 2
    assert report.n_rows == len(small)


@pytest.mark.data
def test_every_duplicate_is_counted(small: pd.DataFrame) -> None:
    big = pd.concat([small] * 4, ignore_index=True)  # 260k rows, all duplicated
    report = validate_facts(big)
    assert _only(report, "duplicate_rows").n_rows == len(big)
    assert list(big.columns) == list(FACT_COLUMNS)
