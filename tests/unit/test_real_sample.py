"""Validation on a committed sample of the real development panel (tests/fixtures/README.md)
with the settings of configs/real-data.yaml: through the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from freightml.config import DataSettings, load_settings
from freightml.data.sources import load_facts
from freightml.data.validation import validate_facts
from helpers import REPO, cli

pytestmark = [pytest.mark.data]
SAMPLE = REPO / "tests" / "fixtures" / "real_flights_sample.csv"
REAL_CONFIG = REPO / "configs" / "real-data.yaml"


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return load_facts(SAMPLE)


@pytest.fixture(scope="module")
def real_settings() -> DataSettings:
    return load_settings(REAL_CONFIG).data


def _planted(sample: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """1,000x the series' maximum on one day of two routes; the rows, most extreme first."""
    df = sample.copy()
    rows = []
    for origin, destination, day, factor in (
        ("HOU", "SAT", "2001-03-20", 1000.0),
        ("HNL", "ITO", "2001-02-20", 3000.0),
    ):
        series = (df["origin_station"] == origin) & (df["destination_station"] == destination)
        row = int(df.index[series & (df["date"] == pd.Timestamp(day))][0])
        df.loc[row, "volume_tonnes"] = factor * df.loc[series, "volume_tonnes"].max()
        rows.append(row)
    return df, rows[::-1]


def test_real_sample_validates_clean_with_the_real_data_settings(
    sample: pd.DataFrame, real_settings: DataSettings
) -> None:
    report = validate_facts(sample, settings=real_settings)
    assert report.ok and report.n_series == 4
    assert {i.check for i in report.issues} == {"volume_anomaly"}  # no vocabulary, no wagons
    anomaly = report.warnings[0]
    assert anomaly.n_rows <= 0.03 * len(sample)
    # the most extreme day is the snowstorm, not a weekend or the pause on ATL->BOS
    first = anomaly.examples[0]
    assert (first["origin_station"], first["destination_station"], first["date"]) == (
        "LGA",
        "BOS",
        "2001-03-05",
    )
    pause = sample.index[(sample["volume_tonnes"] == 0)].tolist()
    assert pause and not {e["row"] for e in anomaly.examples} & set(pause)


def test_default_settings_judge_the_sample_by_the_synthetic_domain(sample: pd.DataFrame) -> None:
    checks = {i.check: i.n_rows for i in validate_facts(sample).issues}
    assert checks["unknown_region"] == len(sample) and checks["unknown_cargo_type"] == len(sample)
    assert "wagon_capacity" not in checks  # no wagons in the data: the check is off anyway


def test_planted_extreme_values_are_errors_listed_first(
    sample: pd.DataFrame, real_settings: DataSettings
) -> None:
    df, rows = _planted(sample)
    report = validate_facts(df, settings=real_settings)
    assert not report.ok
    (error,) = report.errors
    assert error.check == "impossible_volume" and error.n_rows == 2
    assert [e["row"] for e in error.examples] == rows
    assert "(first: 2001-02-20 HNL->ITO short_haul)" in error.message


def test_cli_validates_the_sample_with_the_real_data_config(
    sample: pd.DataFrame, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    config = ("--config", str(REAL_CONFIG), "--report-dir", str(reports))
    result = cli("data", "validate", str(SAMPLE), *config)
    assert "valid:" in result.output and "[unknown_region]" not in result.output
    planted = tmp_path / "planted.csv"
    _planted(sample)[0].to_csv(planted, index=False)
    result = cli("data", "validate", str(planted), *config, code=1)
    assert "[impossible_volume]" in result.output
    issues = json.loads((reports / "report.json").read_text())["issues"]
    assert (issues[0]["severity"], issues[0]["check"]) == ("error", "impossible_volume")
