"""The validation rules that must hold on real data: the anomaly rule on tiny frames
(near-constant, weekday-scheduled and intermittent series, impossible values, ordering),
configurable vocabularies and the wagon checks, and the settings reaching every caller."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from freightml.collector.intake import FactsRejected, prepare_facts
from freightml.config import DataSettings, load_settings
from freightml.data.validation import ValidationReport, anomaly_scores, validate_facts
from freightml.experiment import MLExperimentManager
from helpers import facts_frame

pytestmark = [pytest.mark.unit]
TODAY = date(2026, 1, 1)
START = "2025-03-03"  # a Monday


def _checks(report: ValidationReport) -> dict[str, str]:
    """check -> severity of every issue."""
    return {i.check: i.severity for i in report.issues}


def _only(report: ValidationReport, check: str):
    found = [i for i in report.issues if i.check == check]
    assert len(found) == 1, report.issues
    return found[0]


def _flat(days: int = 56, level: float = 12.0, **kw) -> pd.DataFrame:
    """A near-constant series (like a fixed daily schedule) with a few one-off changes;
    no wagons unless given."""
    kw.setdefault("wagons", 0)
    tonnes = np.full(days, level)
    tonnes[[5, 20, 33]] = [level - 1, level + 1, level * 0.75]  # 12 -> 11, 13, 9
    return facts_frame(days, start=START, tonnes=list(tonnes), **kw)


def test_near_constant_series_raises_no_false_alarm() -> None:
    report = validate_facts(_flat(), today=TODAY)
    assert "volume_anomaly" not in _checks(report), report.issues
    # without the floor on the spread (MAD is 0 here), 9 t vs 12 t would be an "anomaly"
    no_floor = DataSettings(anomaly_min_scale=0.01)
    assert "volume_anomaly" in _checks(validate_facts(_flat(), settings=no_floor, today=TODAY))


def test_a_real_drop_on_a_near_constant_series_is_still_found() -> None:
    df = _flat()
    df.loc[40, "volume_tonnes"] = 2.0
    issue = _only(validate_facts(df, today=TODAY), "volume_anomaly")
    assert issue.severity == "warning" and issue.n_rows == 1
    assert issue.examples[0]["row"] == 40
    assert "first has 2.0 t vs a usual 12.0 t" in issue.message


def test_weekday_schedule_is_not_an_anomaly() -> None:
    days = 70
    weekend = pd.date_range(START, periods=days).dayofweek >= 5
    df = facts_frame(days, start=START, tonnes=list(np.where(weekend, 3.0, 10.0)))
    assert "volume_anomaly" not in _checks(validate_facts(df, today=TODAY))
    df.loc[9, "volume_tonnes"] = 1.0  # a Wednesday at 1 instead of 10
    issue = _only(validate_facts(df, today=TODAY), "volume_anomaly")
    assert issue.examples[0]["row"] == 9 and "vs a usual 10.0 t" in issue.message


def test_intermittent_series_zero_days_are_pauses_not_anomalies() -> None:
    days = 70
    weekday = pd.date_range(START, periods=days).dayofweek
    tonnes = np.where(np.isin(weekday, [0, 2, 4]), 100.0, 0.0)  # runs Mon, Wed, Fri only
    tonnes[[14, 30]] = 0.0  # and pauses two of those days
    df = facts_frame(days, start=START, tonnes=list(tonnes))
    assert "volume_anomaly" not in _checks(validate_facts(df, today=TODAY))
    df.loc[int(np.flatnonzero(tonnes)[-1]), "volume_tonnes"] = 1e6
    assert _checks(validate_facts(df, today=TODAY))["impossible_volume"] == "error"


def test_too_few_positive_days_are_not_scored() -> None:
    df = facts_frame(10, start=START, tonnes=[100.0] * 9 + [5000.0])
    assert not {"volume_anomaly", "impossible_volume"} & set(_checks(validate_facts(df)))
    z, usual, robust_max = anomaly_scores(
        df["volume_tonnes"].to_numpy(), np.zeros(10, dtype=int), np.arange(10) % 7, DataSettings()
    )
    assert np.isnan(z).all() and np.isnan(usual).all() and np.isnan(robust_max).all()


def test_more_than_impossible_ratio_times_the_robust_maximum_is_an_error() -> None:
    df = _flat()  # robust maximum 13 t
    df.loc[30, "volume_tonnes"] = 13.0 * 150
    report = validate_facts(df, today=TODAY)
    issue = _only(report, "impossible_volume")
    assert issue.severity == "error" and not report.ok and issue.examples[0]["row"] == 30
    assert "above 100x their series' robust maximum" in issue.message
    assert "first has 1,950.0 t vs a robust maximum of 13.0 t" in issue.message
    assert "volume_anomaly" not in _checks(report)  # counted once, as the error
    # 50x is an anomaly, not an impossibility; the ratio comes from the settings
    df.loc[30, "volume_tonnes"] = 13.0 * 50
    assert _checks(validate_facts(df, today=TODAY)) == {"volume_anomaly": "warning"}
    df.loc[30, "volume_tonnes"] = 13.0 * 150
    lenient = DataSettings(impossible_ratio=1000)
    assert _checks(validate_facts(df, settings=lenient, today=TODAY)) == {
        "volume_anomaly": "warning"
    }


def test_most_extreme_rows_come_first() -> None:
    a = _flat(origin="AAA")
    b = _flat(origin="BBB")
    a.loc[10, "volume_tonnes"] = 40.0  # ~3x: an anomaly
    b.loc[50, "volume_tonnes"] = 0.5  # ~1/10: more extreme, later in the frame
    a.loc[45, "volume_tonnes"] = 13.0 * 200  # impossible
    b.loc[12, "volume_tonnes"] = 13.0 * 5000  # more impossible, later in the frame
    df = pd.concat([a, b], ignore_index=True)
    report = validate_facts(df, today=TODAY)
    impossible = _only(report, "impossible_volume")
    assert [e["row"] for e in impossible.examples] == [len(a) + 12, 45]
    assert "(first: 2025-03-15 BBB->VLD coal)" in impossible.message
    anomaly = _only(report, "volume_anomaly")
    assert [e["row"] for e in anomaly.examples] == [len(a) + 50, 10]
    assert report.errors[0].check == "impossible_volume"


def _foreign(**kw) -> pd.DataFrame:
    return _flat(origin_region="TX", destination_region="CA", cargo="short_haul", **kw)


def test_default_vocabulary_is_the_synthetic_domain() -> None:
    checks = _checks(validate_facts(_foreign(), today=TODAY))
    assert checks["unknown_region"] == "warning" and checks["unknown_cargo_type"] == "warning"


def test_configured_vocabularies_replace_the_russian_lists() -> None:
    us = DataSettings(known_regions=None, known_cargo_types=["short_haul", "long_haul"])
    assert validate_facts(_foreign(), settings=us, today=TODAY).issues == []
    odd = pd.concat(
        [_foreign(), _flat(origin="XXX", origin_region="ZZ", destination_region="CA", cargo="lava")]
    )
    report = validate_facts(odd, settings=us, today=TODAY)
    issue = _only(report, "unknown_cargo_type")
    assert "['lava']" in issue.message
    assert "outside data.known_cargo_types (2 known)" in issue.message
    assert "unknown_region" not in _checks(report)  # no fixed list of regions...
    with_reference = validate_facts(odd, reference=_foreign(), settings=us, today=TODAY)
    unseen = [i.message for i in with_reference.issues if i.check == "unseen_category"]
    assert any("regions not present in the reference data: ['ZZ']" in m for m in unseen)
    states = DataSettings(known_regions=["TX", "CA"], known_cargo_types=None)
    report = validate_facts(odd, settings=states, today=TODAY)
    assert "['ZZ']" in _only(report, "unknown_region").message


def test_wagon_checks_are_off_without_wagons_or_when_switched_off() -> None:
    overloaded = _flat(wagons=1)  # 12 t of coal in 1 wagon is fine; make it 1,200 t
    overloaded["volume_tonnes"] *= 100
    assert _checks(validate_facts(overloaded, today=TODAY)) == {"wagon_capacity": "warning"}
    off = DataSettings(wagon_checks=False)
    assert validate_facts(overloaded, settings=off, today=TODAY).issues == []
    no_wagons = overloaded.assign(wagons=0)  # e.g. flights: tonnes, never wagons
    assert validate_facts(no_wagons, today=TODAY).issues == []
    one_wagon_day = no_wagons.copy()
    one_wagon_day.loc[0, "wagons"] = 1  # some wagons: the check runs, zero-wagon rows too
    assert _only(validate_facts(one_wagon_day, today=TODAY), "wagon_capacity").n_rows == 56


def test_invalid_thresholds_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="impossible_ratio"):
        DataSettings(impossible_ratio=0.5)
    with pytest.raises(ValueError, match="anomaly_min_scale"):
        DataSettings(anomaly_min_scale=0)


def test_collector_intake_and_experiment_manager_use_the_settings(tmp_path) -> None:
    us = DataSettings(known_regions=None, known_cargo_types=["short_haul"])
    _, report = prepare_facts(_foreign())
    assert {"unknown_region", "unknown_cargo_type"} <= set(_checks(report))
    _, report = prepare_facts(_foreign(), us)
    assert report.issues == []
    impossible = _foreign()
    impossible.loc[3, "volume_tonnes"] = 1e6
    with pytest.raises(FactsRejected, match="impossible_volume"):
        prepare_facts(impossible, us)

    settings = load_settings(
        None, home=str(tmp_path / "home"), data={"known_regions": None, "wagon_checks": False}
    )
    report = MLExperimentManager(settings=settings).validate(_foreign())
    assert set(_checks(report)) == {"unknown_cargo_type"}
