"""Realised quality and freshness on tiny frames with known answers, and through a real
collector store (SQLite, and PostgreSQL when FREIGHTML_TEST_POSTGRES_URL is set): maturity,
revisions, buckets, the degraded rule at its boundary, unsupported segments, staleness."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from freightml.evaluation.methodology import Methodology, load_methodology
from freightml.monitoring.config import MonitoringConfig, QualitySpec
from freightml.monitoring.quality import (
    freshness,
    quality_from_store,
    realised_quality,
    window_bounds,
)
from freightml.monitoring.types import Expectation, QualityReport
from freightml.store import Store
from helpers import REPO, STORE_BACKENDS, facts_frame, fresh_store

pytestmark = [pytest.mark.unit]

AS_OF = date(2026, 3, 10)  # a 7-day window is 4..10 March
W, E = "origin_region=West", "origin_region=East"


def _methodology(min_share: float = 0.0, min_series: int = 1) -> Methodology:
    m = load_methodology(REPO / "configs" / "methodology.yaml")
    gates = m.gates.model_copy(
        update={"min_segment_share": min_share, "min_segment_series": min_series}
    )
    return m.model_copy(update={"gates": gates})


def _config(
    tolerance: float = 0.25, degraded_days: int = 3, min_tonnes: float = 1.0, rolling_days: int = 1
):
    """Judging each day on its own by default (rolling_days=1), so the rule's known answers
    are the day's WAPE; the rolling and bootstrap tests set their own."""
    quality = QualitySpec(
        tolerance=tolerance,
        degraded_days=degraded_days,
        min_actual_tonnes=min_tonnes,
        rolling_days=rolling_days,
    )
    return MonitoringConfig(quality=quality)


def _row(
    day: int,
    tonnes: float,
    actual: float | None,
    *,
    horizon: int = 1,
    origin: str = "NSK",
    region: str = "West",
    cargo: str = "coal",
    source: str = "batch",
    created: int = 0,
) -> dict[str, Any]:
    """One forecast for ``day`` March at ``horizon``; ``actual`` None = no fact yet."""
    target = pd.Timestamp(2026, 3, day)
    return {
        "source": source,
        "source_id": f"{source}-{created}",
        "origin_station": origin,
        "destination_station": "VLD",
        "cargo_type": cargo,
        "origin_region": None if actual is None else region,
        "destination_region": None if actual is None else "Far Eastern",
        "origin_date": target - pd.Timedelta(days=horizon),
        "date": target,
        "horizon": horizon,
        "tonnes": tonnes,
        "volume_tonnes": actual,
        "created_at": pd.Timestamp("2026-03-01", tz="UTC") + pd.Timedelta(hours=created),
    }


def _quality(rows: list[dict[str, Any]] | pd.DataFrame, **kw: Any) -> QualityReport:
    joined = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    args: dict[str, Any] = {
        "expectations": [],
        "config": _config(),
        "methodology": _methodology(),
        "as_of": AS_OF,
        "window_days": 7,
    }
    return realised_quality(joined, **{**args, **kw})


def _cell(report: QualityReport, segment: str, bucket: str):
    (cell,) = [c for c in report.cells if c.segment == segment and c.horizon_bucket == bucket]
    return cell


def _all_days(report: QualityReport) -> list:
    return [d for d in report.daily if d.segment == "all"]


def _day(report: QualityReport, segment: str, day: int):
    (d,) = [d for d in report.daily if d.segment == segment and d.date == date(2026, 3, day)]
    return d


# --- metrics and buckets ------------------------------------------------------------------


def test_each_forecast_is_scored_in_the_bucket_of_its_horizon() -> None:
    report = _quality(
        [
            _row(5, 110.0, 100.0, horizon=1),
            _row(5, 150.0, 100.0, horizon=7),  # still 1-7
            _row(5, 70.0, 100.0, horizon=8),
            _row(6, 80.0, 200.0, horizon=14),
            _row(6, 100.0, 200.0, horizon=15),
            _row(6, 999.0, 200.0, horizon=29),  # beyond the last bucket: left out
            _row(3, 999.0, 100.0, horizon=1),  # before the window
            _row(11, 999.0, 100.0, horizon=1),  # after as_of
        ]
    )
    assert report.window_start == date(2026, 3, 4) and report.window_end == AS_OF
    assert report.forecasts_scored == 5 and report.forecasts_pending == 0
    assert report.mature_until == date(2026, 3, 6)
    short, mid, long = (_cell(report, "all", b) for b in ("1-7", "8-14", "15-28"))
    # 1-7: errors +10, +50 on 200 t
    assert (short.n, short.actual_tonnes) == (2, 200.0)
    assert short.wape == pytest.approx(0.3) and short.mae == pytest.approx(30.0)
    assert short.bias == pytest.approx(0.3)
    # 8-14: errors -30, -120 on 300 t
    assert (mid.n, mid.wape, mid.mae, mid.bias) == (2, pytest.approx(0.5), 75.0, -0.5)
    assert (long.n, long.wape, long.mae, long.bias) == (1, pytest.approx(0.5), 100.0, -0.5)
    assert [c.horizon_bucket for c in report.cells if c.segment == "all"] == [
        "1-7",
        "8-14",
        "15-28",
    ]
    assert {c.segment for c in report.cells} == {"all", W, "cargo_type=coal"}
    assert all(c.expected_wape is None and not c.degraded for c in report.cells)


def test_daily_quality_pools_the_horizons_of_a_day() -> None:
    report = _quality([_row(5, 110.0, 100.0), _row(5, 70.0, 100.0, horizon=9)])
    day = _day(report, "all", 5)
    assert (day.n, day.wape, day.mae, day.bias) == (2, pytest.approx(0.2), 20.0, -0.1)


def test_days_and_cells_below_the_minimum_actual_tonnes_have_no_wape() -> None:
    report = _quality([_row(5, 3.0, 0.5), _row(6, 0.0, 0.0)], config=_config(min_tonnes=1.0))
    cell = _cell(report, "all", "1-7")
    assert (cell.wape, cell.bias, cell.mae, cell.actual_tonnes) == (None, None, 1.25, 0.5)
    for d in (5, 6):
        assert _day(report, "all", d).wape is None and not _day(report, "all", d).exceeds


# --- maturity and duplicates ------------------------------------------------------------


def test_a_forecast_without_its_fact_is_pending_not_zero() -> None:
    rows = [_row(5, 110.0, 100.0), _row(6, 120.0, None)]
    before = _quality(rows)
    assert (before.forecasts_scored, before.forecasts_pending) == (1, 1)
    assert before.mature_until == date(2026, 3, 5)
    assert {d.date for d in before.daily} == {date(2026, 3, 5)}
    assert _cell(before, "all", "1-7").wape == pytest.approx(0.1)
    # the next run: the fact of 6 March has arrived
    after = _quality([rows[0], _row(6, 120.0, 100.0)])
    assert (after.forecasts_scored, after.forecasts_pending) == (2, 0)
    assert after.mature_until == date(2026, 3, 6)
    assert _cell(after, "all", "1-7").wape == pytest.approx(0.15)


def test_a_repeated_forecast_counts_once_and_the_newest_wins() -> None:
    report = _quality(
        [
            _row(5, 500.0, 100.0, created=1),  # the same batch forecast, made again later:
            _row(5, 110.0, 100.0, created=2),  # only this one counts
            _row(5, 120.0, 100.0, source="online", created=3),  # another source kind: counts
            _row(5, 130.0, 100.0, horizon=2, created=4),  # another origin: counts
        ]
    )
    assert report.forecasts_scored == 3
    assert _cell(report, "all", "1-7").wape == pytest.approx(60.0 / 300.0)


# --- expectations and the degraded rule ----------------------------------------------------


def _days_with_wape(wapes: list[float]) -> list[dict[str, Any]]:
    """One forecast a day from 4 March on, with 100 t actual and the given WAPE (over)."""
    return [_row(4 + i, 100.0 + 100.0 * w, 100.0) for i, w in enumerate(wapes)]


EXPECT_HALF = [Expectation(segment="all", horizon_bucket="1-7", wape=0.5, bias=0.0, n=100)]


def test_a_segment_is_degraded_on_exactly_degraded_days_days_over_the_limit() -> None:
    # limit: 0.5 x (1 + 0.5) = 0.75; three days over it
    report = _quality(
        _days_with_wape([0.8, 0.9, 0.1, 1.0]),
        expectations=EXPECT_HALF,
        config=_config(tolerance=0.5, degraded_days=3),
    )
    assert [d.exceeds for d in _all_days(report)] == [True, True, False, True]
    assert all(d.expected_wape == 0.5 for d in _all_days(report))
    assert all(not d.exceeds for d in report.daily if d.segment != "all")  # no expectation
    assert report.degraded_segments == ["all"]


def test_one_day_fewer_or_a_day_exactly_at_the_limit_is_not_degraded() -> None:
    config = _config(tolerance=0.5, degraded_days=3)
    two = _quality(_days_with_wape([0.8, 0.9, 0.1]), expectations=EXPECT_HALF, config=config)
    assert sum(d.exceeds for d in _all_days(two)) == 2 and two.degraded_segments == []
    at = _quality(_days_with_wape([0.8, 0.9, 0.75]), expectations=EXPECT_HALF, config=config)
    assert [d.exceeds for d in _all_days(at)] == [True, True, False]
    assert at.degraded_segments == []


def test_a_cell_is_degraded_when_its_window_wape_is_over_the_limit() -> None:
    config = _config(tolerance=0.5)
    over = _quality(_days_with_wape([0.8, 0.72]), expectations=EXPECT_HALF, config=config)
    assert _cell(over, "all", "1-7").expected_wape == 0.5
    assert _cell(over, "all", "1-7").degraded  # 0.76 pooled > 0.75
    at = _quality(_days_with_wape([0.8, 0.7]), expectations=EXPECT_HALF, config=config)
    assert _cell(at, "all", "1-7").wape == pytest.approx(0.75)
    assert not _cell(at, "all", "1-7").degraded


def test_the_rule_judges_wape_pooled_over_the_rolling_days() -> None:
    # daily WAPE 0.9, 0.1, 0.9, 0.1 -> pooled over 2 days: 0.9, 0.5, 0.5, 0.5 (limit 0.75)
    config = _config(tolerance=0.5, degraded_days=2, rolling_days=2)
    report = _quality(
        _days_with_wape([0.9, 0.1, 0.9, 0.1]), expectations=EXPECT_HALF, config=config
    )
    days = _all_days(report)
    assert [d.rolling_wape for d in days] == pytest.approx([0.9, 0.5, 0.5, 0.5])
    assert [d.rolling_wape_low for d in days] == pytest.approx([0.9, 0.5, 0.5, 0.5])  # 1 series
    assert [d.exceeds for d in days] == [True, False, False, False]
    assert report.degraded_segments == []  # alone, the same days would make two over the limit
    daily = _quality(
        _days_with_wape([0.9, 0.1, 0.9, 0.1]),
        expectations=EXPECT_HALF,
        config=_config(tolerance=0.5, degraded_days=2),
    )
    assert daily.degraded_segments == ["all"]


def _series_rows(wapes: list[float], days: int = 7) -> list[dict[str, Any]]:
    """One series per WAPE (100 t a day, forecast over by that share) for ``days`` days."""
    return [
        _row(1 + d, 100.0 + 100.0 * w, 100.0, origin=f"S{i}")
        for i, w in enumerate(wapes)
        for d in range(days)
    ]


def test_one_bad_series_among_few_is_noise_but_a_whole_segment_worse_is_decay() -> None:
    config = _config(tolerance=0.25, degraded_days=3, rolling_days=7)
    expectations = [Expectation(segment="all", horizon_bucket="1-7", wape=0.2, bias=0, n=100)]
    # pooled WAPE (4 x 0.1 + 1.0) / 5 = 0.28 > 0.25, but all of it from one series
    one_bad = _quality(
        _series_rows([0.1, 0.1, 0.1, 0.1, 1.0]), expectations=expectations, config=config
    )
    day = _all_days(one_bad)[-1]
    assert day.rolling_wape == pytest.approx(0.28)
    assert day.rolling_wape_low < 0.25 and not day.exceeds
    assert one_bad.degraded_segments == []
    # every series a bit worse: pooled 0.3, and the resamples cannot bring it under 0.25
    all_worse = _quality(
        _series_rows([0.28, 0.3, 0.32, 0.29, 0.31]), expectations=expectations, config=config
    )
    day = _all_days(all_worse)[-1]
    assert day.rolling_wape == pytest.approx(0.3) and day.rolling_wape_low > 0.25
    assert all_worse.degraded_segments == ["all"]


def test_lower_wape_is_the_point_value_without_spread_and_below_it_with() -> None:
    from freightml.monitoring.quality import lower_wape

    spec = QualitySpec()
    errors = np.array([[10.0, 0.0], [10.0, 50.0], [10.0, 0.0]])
    actuals = np.full((3, 2), 100.0)
    low = lower_wape(errors, actuals, spec)
    assert low[0] == pytest.approx(0.1)  # identical series: every resample gives 0.1
    assert 0.0 <= low[1] < 50.0 / 300.0  # one series carries all the error
    assert np.array_equal(low, lower_wape(errors, actuals, spec))  # fixed seed
    assert np.isnan(lower_wape(np.zeros((2, 1)), np.zeros((2, 1)), spec)).all()
    assert lower_wape(np.zeros((0, 3)), np.zeros((0, 3)), spec).shape == (3,)


def test_the_expected_wape_of_a_day_follows_its_bucket_mix_by_actual_tonnes() -> None:
    expectations = [
        Expectation(segment="all", horizon_bucket="1-7", wape=0.2, bias=0.0, n=10),
        Expectation(segment="all", horizon_bucket="8-14", wape=0.4, bias=0.0, n=10),
        Expectation(segment=W, horizon_bucket="1-7", wape=0.3, bias=0.0, n=10),
    ]
    report = _quality(
        [
            _row(5, 100.0, 100.0, horizon=1),
            _row(5, 300.0, 300.0, horizon=9),
            _row(6, 100.0, 100.0, horizon=20),  # no expectation for 15-28
        ],
        expectations=expectations,
    )
    assert _day(report, "all", 5).expected_wape == pytest.approx((0.2 * 100 + 0.4 * 300) / 400)
    assert _day(report, "all", 6).expected_wape is None
    assert _day(report, W, 5).expected_wape == pytest.approx(0.3)  # only 1-7 has one
    assert _cell(report, W, "8-14").expected_wape is None


# --- segments ------------------------------------------------------------------------------


def test_segments_are_all_and_the_supported_values_of_the_methodology_columns() -> None:
    rows = [
        _row(5, 110.0, 100.0, origin="A", region="West"),
        _row(5, 120.0, 100.0, origin="B", region="West"),
        _row(5, 100.0, 100.0, origin="C", region="East"),  # East: one series only
        _row(5, 100.0, 100.0, origin="D", region="North", cargo="oil"),  # 2 of 402 t: small
        _row(5, 4.0, 2.0, origin="E", region="North", cargo="oil"),
    ]
    report = _quality(rows, methodology=_methodology(min_share=0.02, min_series=2))
    segments = list(dict.fromkeys(c.segment for c in report.cells))
    # North has two series but 102 of 402 t; oil the same series: both supported
    assert segments == [
        "all",
        "origin_region=North",
        W,
        "cargo_type=coal",
        "cargo_type=oil",
    ]
    assert _cell(report, W, "1-7").wape == pytest.approx(30.0 / 200.0)
    tiny = _quality(rows, methodology=_methodology(min_share=0.3, min_series=2))
    assert list(dict.fromkeys(c.segment for c in tiny.cells)) == ["all", W, "cargo_type=coal"]


# --- worst series --------------------------------------------------------------------------


def test_worst_series_are_the_highest_wape_among_series_with_enough_volume() -> None:
    rows = [
        _row(5, 150.0, 100.0, origin="A"),  # A: WAPE 0.5
        _row(6, 100.0, 100.0, origin="A"),
        _row(6, 120.0, 100.0, origin="A", horizon=9),
        _row(5, 220.0, 200.0, origin="B"),  # B: WAPE 0.1
        _row(5, 9.0, 1.0, origin="C"),  # C: WAPE 8, too little volume to rank
        _row(5, 360.0, 200.0, origin="D", region="East"),  # D: WAPE 0.8
    ]  # the median series carries 200 t: C is below it
    report = _quality(rows, worst_n=2)
    assert [t.origin_station for t in report.worst_series] == ["D", "A"]
    a = report.worst_series[1]
    assert a.wape == pytest.approx(70.0 / 300.0)
    assert a.segment == W
    assert a.dates == [date(2026, 3, 5), date(2026, 3, 6)]
    assert a.forecast == [150.0, 110.0]  # 6 March: mean of the two horizons
    assert a.actual == [100.0, 100.0]
    assert report.worst_series[0].segment == E


# --- empty and bad input -------------------------------------------------------------------


def test_no_forecasts_give_a_valid_empty_report(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    empty_join = store.forecasts.with_facts(include_pending=True)
    for joined in (pd.DataFrame(), empty_join):
        report = _quality(joined, expectations=EXPECT_HALF)
        assert report.forecasts_scored == report.forecasts_pending == 0
        assert report.mature_until is None
        assert report.cells == report.daily == report.worst_series == []
        assert report.degraded_segments == []
        assert QualityReport.model_validate_json(report.model_dump_json()) == report
    pending_only = _quality([_row(5, 100.0, None)])
    assert (pending_only.forecasts_scored, pending_only.forecasts_pending) == (0, 1)
    assert pending_only.cells == []
    store.close()


def test_a_report_survives_its_json_round_trip() -> None:
    report = _quality(
        [_row(5, 110.0, 100.0), _row(6, 1.0, 0.0), _row(7, 5.0, None)], expectations=EXPECT_HALF
    )
    assert QualityReport.model_validate_json(report.model_dump_json()) == report


def test_bad_input_is_refused_naming_what_is_wrong() -> None:
    frame = pd.DataFrame([_row(5, 110.0, 100.0)])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['volume_tonnes'\]"):
        _quality(frame.drop(columns=["volume_tonnes"]))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['origin_region'\]"):
        _quality(frame.drop(columns=["origin_region"]))
    with pytest.raises(ValueError, match="window_days must be at least 1, got 0"):
        _quality(frame, window_days=0)
    with pytest.raises(ValueError, match="column date has 1 missing or unparsable"):
        _quality(frame.assign(date="not a date"))
    with pytest.raises(ValueError, match=r"1 forecast\(s\) have no tonnes"):
        _quality(frame.assign(tonnes=None))
    with pytest.raises(ValueError, match=r"1 forecast\(s\) have no integer horizon"):
        _quality(frame.assign(horizon="h1"))
    twice = [*EXPECT_HALF, *EXPECT_HALF]
    with pytest.raises(ValueError, match="two expectations for segment 'all' and horizon"):
        _quality(frame, expectations=twice)


def test_window_bounds_end_on_as_of() -> None:
    assert window_bounds("2026-03-10", 1) == (AS_OF, AS_OF)
    assert window_bounds(AS_OF, 7) == (date(2026, 3, 4), AS_OF)


# --- freshness -----------------------------------------------------------------------------


def _newest(*days: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "origin_station": [f"S{i}" for i in range(len(days))],
            "destination_station": "VLD",
            "cargo_type": "coal",
            "newest": pd.to_datetime(list(days)),
        }
    )


def test_freshness_age_and_stale_share() -> None:
    config = MonitoringConfig()  # stale after 7 days; age limit 3 days; share limit 0.2
    newest = _newest("2026-03-30", "2026-03-24", "2026-03-23", "2026-02-01")
    f = freshness(newest, "2026-03-31", config, active_since="2026-03-03")
    assert (f.newest_fact, f.facts_age_days) == (date(2026, 3, 30), 1.0)
    # 24 March is 7 days old (not stale yet), 23 March 8; 1 February is not active
    assert (f.active_series, f.stale_series) == (3, 1)
    assert f.stale_series_share == pytest.approx(1 / 3) and f.stale
    everyone = freshness(newest, "2026-03-31", config)
    assert (everyone.active_series, everyone.stale_series) == (4, 2)


def test_freshness_alerts_on_age_over_the_limit_not_at_it() -> None:
    config = MonitoringConfig()
    at = freshness(_newest("2026-03-28", "2026-03-27"), "2026-03-31", config)
    assert (at.facts_age_days, at.stale_series, at.stale) == (3.0, 0, False)
    over = freshness(_newest("2026-03-27"), "2026-03-31", config)
    assert (over.facts_age_days, over.stale) == (4.0, True)


def test_freshness_alerts_on_a_stale_share_over_the_limit_not_at_it() -> None:
    config = MonitoringConfig()  # share limit 0.2: one stale series in five is not over it
    fresh = ["2026-03-30"] * 4
    at = freshness(_newest(*fresh, "2026-03-01"), "2026-03-31", config)
    assert (at.stale_series_share, at.stale) == (0.2, False)
    over = freshness(_newest(*fresh[:3], "2026-03-01"), "2026-03-31", config)
    assert (over.stale_series_share, over.stale) == (0.25, True)


def test_freshness_without_facts_is_stale_and_valid() -> None:
    f = freshness(_newest(), "2026-03-31", MonitoringConfig())
    assert f.newest_fact is None and f.facts_age_days is None
    assert (f.active_series, f.stale_series, f.stale_series_share, f.stale) == (0, 0, 0.0, True)
    assert freshness(pd.DataFrame(), "2026-03-31", MonitoringConfig()) == f


def test_freshness_refuses_bad_frames() -> None:
    with pytest.raises(ValueError, match=r"newest_by_series lacks column\(s\) \['newest'\]"):
        freshness(_newest("2026-03-30").drop(columns=["newest"]), "2026-03-31", MonitoringConfig())
    with pytest.raises(ValueError, match="1 series with a newest fact after as_of 2026-03-31"):
        freshness(_newest("2026-04-01"), "2026-03-31", MonitoringConfig())


# --- through a real store ------------------------------------------------------------------


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = fresh_store(request.param, tmp_path)
    yield s
    s.close()


def _forecasts(days: list[int], tonnes: float) -> pd.DataFrame:
    """Forecasts made on 1 March for the given days of March, all ``tonnes``."""
    return pd.DataFrame(
        {
            "origin_station": "NSK",
            "destination_station": "VLD",
            "cargo_type": "coal",
            "origin_date": pd.Timestamp("2026-03-01"),
            "date": [pd.Timestamp(2026, 3, d) for d in days],
            "tonnes": tonnes,
        }
    )


def test_late_and_revised_facts_change_the_next_run(store: Store) -> None:
    args: dict[str, Any] = {
        "expectations": EXPECT_HALF,
        "config": _config(),
        "methodology": _methodology(),
        "as_of": AS_OF,
        "window_days": 7,
    }
    store.forecasts.write(_forecasts([4, 5, 6, 7], 120.0), run_id="run-1", model_name="m")
    store.forecasts.write(_forecasts([4], 999.0), run_id="other", model_name="other-model")
    store.facts.ingest(facts_frame(5, start="2026-03-01", tonnes=100.0))  # 1..5 March
    report, fresh = quality_from_store(store, model_name="m", **args)
    assert (report.forecasts_scored, report.forecasts_pending) == (2, 2)
    assert report.mature_until == date(2026, 3, 5)
    assert _cell(report, "all", "1-7").wape == pytest.approx(0.2)
    assert (fresh.newest_fact, fresh.facts_age_days) == (date(2026, 3, 5), 5.0)
    assert fresh.stale  # five days old: over the three-day limit

    # the facts of 6 and 7 March arrive late, and 4 March is revised from 100 to 60 t
    store.facts.ingest(facts_frame([3, 5, 6], start="2026-03-01", tonnes=[60.0, 100.0, 100.0]))
    report, fresh = quality_from_store(store, model_name="m", **args)
    assert (report.forecasts_scored, report.forecasts_pending) == (4, 0)
    assert report.mature_until == date(2026, 3, 7)
    assert _cell(report, "all", "1-7").wape == pytest.approx((60 + 20 * 3) / 360.0)
    assert _day(report, "all", 4).wape == pytest.approx(1.0)  # |120 - 60| / 60
    assert (fresh.newest_fact, fresh.facts_age_days, fresh.stale) == (date(2026, 3, 7), 3.0, False)

    # every model's forecasts when no model is named
    both, _ = quality_from_store(store, **args)
    assert both.forecasts_scored == 5


def test_quality_from_an_empty_store_is_valid(store: Store) -> None:
    report, fresh = quality_from_store(
        store,
        expectations=[],
        config=MonitoringConfig(),
        methodology=_methodology(),
        as_of=AS_OF,
        window_days=7,
    )
    assert report.forecasts_scored == 0 and report.cells == []
    assert fresh.newest_fact is None and fresh.stale
    assert AS_OF - timedelta(days=6) == report.window_start


# --- realised interval coverage -------------------------------------------------------------
def _banded(n_series: int, inside: float, region: str) -> list[dict[str, Any]]:
    """``n_series`` series x 7 days x 4 horizons of forecasts with an 80% interval; the
    first ``inside`` share of the series have every actual inside it, the rest outside."""
    rows = []
    for s in range(n_series):
        hit = s < round(inside * n_series)
        for day in range(4, 11):
            for h in (1, 5, 9, 20):
                row = _row(day, 100.0, 100.0 if hit else 200.0, horizon=h, region=region)
                row.update(origin_station=f"{region}-{s}", tonnes_p10=80.0, tonnes_p90=120.0)
                rows.append(row)
    return rows


def test_realised_coverage_alerts_a_segment_whose_intervals_stopped_covering() -> None:
    """West's intervals cover 80% of its 40 series: fine. East's cover a third of 30 series:
    drifted. A handful of series missing together is noise, not a drift."""
    quality = QualitySpec(min_actual_tonnes=1.0, min_coverage_forecasts=100)
    config = MonitoringConfig(quality=quality)
    report = _quality(_banded(40, 0.8, "West") + _banded(30, 1 / 3, "East"), config=config)
    cells = {c.segment: c for c in report.coverage}
    assert cells[W].coverage_80 == pytest.approx(0.8) and not cells[W].drifted
    assert cells[W].n == 40 * 28 and cells[W].n_series == 40
    assert cells[E].coverage_80 == pytest.approx(1 / 3) and cells[E].drifted
    # East drags the pooled segments down too (42 of 70 series covered)
    assert report.coverage_drifted_segments == ["all", E, "cargo_type=coal"]
    few = _quality(_banded(6, 0.5, "East"), config=config)  # 30 points off, on 6 series
    assert not {c.segment: c for c in few.coverage}[E].drifted
    # forecasts without an interval (a version without one) are not counted
    plain = [
        {k: v for k, v in r.items() if not k.startswith("tonnes_p")} for r in _banded(40, 0, "East")
    ]
    assert all(
        c.coverage_80 is None and not c.drifted for c in _quality(plain, config=config).coverage
    )
