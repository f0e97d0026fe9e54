"""Drift statistics with known answers (by hand and by SciPy on the same binned data), the
unseen share, constant columns, segments and support, and the requests entry point."""

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from freightml.evaluation.methodology import GateSpec
from freightml.monitoring.config import DriftSpec, MonitoringConfig, ProfileSpec
from freightml.monitoring.distances import EPSILON, binned_wasserstein, jensen_shannon, psi
from freightml.monitoring.drift import drift_report, drifted_segments
from freightml.monitoring.profile import PREDICTION, TARGET, ReferenceProfile, build_profile
from freightml.monitoring.window_drift import drift_of_requests, numeric_part

pytestmark = [pytest.mark.unit]
GATES = GateSpec(
    max_wape_ratio_to_baseline=0.85,
    max_segment_wape_ratio_to_baseline=0.85,
    min_segment_share=0.02,
    min_segment_series=1,
    max_abs_bias=0.05,
)
CONFIG = MonitoringConfig(
    profile=ProfileSpec(numeric_bins=5),
    drift=DriftSpec(min_rows=10, min_series=1, drifted_feature_share=0.5),
)
WINDOW = {"window_start": "2025-03-01", "window_end": "2025-03-07", "config": CONFIG}


def _profile() -> ReferenceProfile:
    """4 series x 10 days; ``level`` 0..9 per series, region A (series 0-2) or B (3)."""
    rows = []
    for s in range(4):
        for d in range(10):
            rows.append(
                {
                    "origin_station": f"o{s}",
                    "destination_station": "d0",
                    "cargo_type": "coal" if s % 2 == 0 else "oil",
                    "origin_region": "A" if s < 3 else "B",
                    "target_date": pd.Timestamp("2025-01-01") + pd.Timedelta(days=d),
                    "horizon": d % 5 + 1,
                    "level": float(d),
                    "flat": 2.5,
                    "y": float(10 * (s + 1)),
                }
            )
    examples = pd.DataFrame(rows)
    return build_profile(
        examples,
        lambda frame: frame["y"].to_numpy(),
        config=CONFIG,
        segment_columns=["origin_region", "cargo_type"],
        gates=GATES,
        features=["horizon", "level", "flat", "cargo_type", "origin_region"],
    )


def _by(report, segment: str, feature: str) -> dict[str, float]:
    return {
        r.statistic: r.value
        for r in report.results
        if r.segment == segment and r.feature == feature
    }


# -- the statistics ----------------------------------------------------------------------


def test_psi_by_hand_and_the_empty_bin_epsilon() -> None:
    got = psi(np.array([[50, 50], [100, 0]]), np.array([[25, 75], [50, 50]]))
    first = -0.25 * np.log(0.5) + 0.25 * np.log(1.5)
    # an empty reference bin counts as share EPSILON
    second = (0.5 - 1.0) * np.log(0.5 / 1.0) + (0.5 - EPSILON) * np.log(0.5 / EPSILON)
    assert got == pytest.approx([first, second], rel=1e-12)
    assert psi(np.array([[3, 1, 0]]), np.array([[30, 10, 0]]))[0] == pytest.approx(0.0)


def test_jensen_shannon_matches_scipy_base_2() -> None:
    ref = np.array([[10, 20, 30, 0], [5, 0, 0, 5], [1, 1, 1, 1]])
    cur = np.array([[30, 20, 10, 0], [0, 5, 5, 0], [1, 1, 1, 1]])
    expected = [jensenshannon(r, c, base=2) for r, c in zip(ref, cur, strict=True)]
    assert jensen_shannon(ref, cur) == pytest.approx(expected, abs=1e-12)
    assert jensen_shannon(ref, cur)[1] == pytest.approx(1.0)  # disjoint: the maximum


def test_binned_wasserstein_is_exact_on_the_binned_data() -> None:
    rng = np.random.default_rng(3)
    ref_counts, cur_counts = rng.integers(0, 50, (5, 6)), rng.integers(0, 50, (5, 6))
    ref_pos = np.sort(rng.normal(size=(5, 6)), axis=1)
    cur_pos = np.sort(rng.normal(size=(5, 6)), axis=1) + 0.3
    expected = [
        wasserstein_distance(ref_pos[i], cur_pos[i], ref_counts[i], cur_counts[i]) for i in range(5)
    ]
    got = binned_wasserstein(ref_counts, ref_pos, cur_counts, cur_pos)
    assert got == pytest.approx(expected, rel=1e-9)


# -- a report on a tiny profile ----------------------------------------------------------


def test_numeric_drift_known_answer() -> None:
    profile = _profile()
    level = np.tile(np.arange(10.0), 4) + 2.0  # every value moved up by 2
    regions = pd.Series(["A"] * 30 + ["B"] * 10)
    part = numeric_part({"level": level}, {"origin_region": regions})
    report = drift_report(profile, [part], source="facts", **WINDOW)
    got = _by(report, "all", "level")
    # bins (-inf,1.8] (1.8,3.6] (3.6,5.4] (5.4,7.2] (7.2,inf) missing: reference 1/5 each,
    # current 0, 1/5, 1/5, 1/5, 2/5, 0 (the emptied bin counts as EPSILON)
    by_hand = (EPSILON - 0.2) * np.log(EPSILON / 0.2) + (0.4 - 0.2) * np.log(2)
    assert got["psi"] == pytest.approx(by_hand, rel=1e-9)
    # each bin holds whole values, so the binned Wasserstein equals the raw one (2 tonnes)
    raw = wasserstein_distance(np.tile(np.arange(10.0), 4), level) / np.arange(10.0).std()
    assert got["wasserstein"] == pytest.approx(raw, rel=1e-9)
    assert got["wasserstein"] == pytest.approx(2 / np.arange(10.0).std(), rel=1e-9)
    # region B (10 current rows = min_rows) is judged; the constant "flat" never is
    assert _by(report, "origin_region=B", "level")["wasserstein"] == pytest.approx(raw)
    assert not [r for r in report.results if r.feature == "flat"]
    assert report.rows == 40 and report.unsupported_segments == []


def test_binned_wasserstein_is_close_on_continuous_data() -> None:
    """Against SciPy on the raw values: within 5% for a shift of half a std."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20_000)
    examples = pd.DataFrame(
        {
            "origin_station": "o",
            "destination_station": "d",
            "cargo_type": "coal",
            "origin_region": "A",
            "target_date": pd.Timestamp("2025-01-01"),
            "x": ref,
            "y": 1.0,
        }
    )
    config = MonitoringConfig(profile=ProfileSpec(numeric_bins=10))
    profile = build_profile(
        examples, None, config=config, segment_columns=[], gates=GATES, features=["x"]
    )
    cur = rng.normal(0.5, 1.0, size=20_000)
    report = drift_report(
        profile,
        [numeric_part({"x": cur})],
        source="facts",
        window_start=WINDOW["window_start"],
        window_end=WINDOW["window_end"],
        config=config,
    )
    exact = wasserstein_distance(ref, cur) / ref.std()
    assert _by(report, "all", "x")["wasserstein"] == pytest.approx(exact, rel=0.05)


def test_segments_without_support_are_not_judged() -> None:
    profile = _profile()
    # region A has 12 current rows, region B 4 (< min_rows 10), region C was never seen
    regions = pd.Series(["A"] * 12 + ["B"] * 4 + ["C"] * 10)
    part = numeric_part({"level": np.arange(26.0) % 10}, {"origin_region": regions})
    report = drift_report(profile, [part], source="facts", **WINDOW)
    assert report.unsupported_segments == ["origin_region=B", "origin_region=C"]
    assert {r.segment for r in report.results} == {"all", "origin_region=A"}
    # cargo segments have no current rows at all: neither judged nor listed
    assert not any(s.startswith("cargo_type") for s in report.unsupported_segments)
    empty = drift_report(
        profile, [numeric_part({"level": np.arange(3.0)})], source="facts", **WINDOW
    )
    assert empty.results == [] and empty.unsupported_segments == ["all"]


def _requests(n: int = 20, **columns) -> pd.DataFrame:
    """``n`` forecast rows of the profile's four series, as in training."""
    s = np.arange(n) % 4
    frame = pd.DataFrame(
        {
            "origin_station": [f"o{i}" for i in s],
            "destination_station": "d0",
            "cargo_type": np.where(s % 2 == 0, "coal", "oil"),
            "origin_region": np.where(s < 3, "A", "B"),
            "origin_date": pd.Timestamp("2025-03-02"),
            "target_date": pd.Timestamp("2025-03-05"),
            "horizon": np.arange(n) % 5 + 1,
            "tonnes": 10.0 * (s + 1),
        }
    )
    return frame.assign(**columns)


def test_requests_unseen_stations_series_and_regions() -> None:
    profile = _profile()
    assert any(f.name == PREDICTION for f in profile.features)
    stations = ["new1", "new2", "new3", "o0", "o1"] * 4  # 12 of 20 rows unseen stations
    cargo = ["oil" if s == "o1" else "coal" for s in stations]  # known series o0|d0|coal ...
    regions = ["Q" if s.startswith("new") else "A" for s in stations]
    regions[0] = None  # an unknown station's region may be missing: not counted
    requests = _requests(origin_station=stations, cargo_type=cargo, origin_region=regions)
    report = drift_of_requests(profile, requests, **WINDOW)
    overall = {(r.feature, r.statistic): r for r in report.results if r.segment == "all"}
    assert overall[("origin_station", "unseen_share")].value == pytest.approx(12 / 20)
    assert overall[("series", "unseen_share")].value == pytest.approx(12 / 20)
    assert overall[("destination_station", "unseen_share")].value == 0.0
    assert overall[("origin_region", "unseen_share")].value == pytest.approx(11 / 19)
    assert overall[("origin_station", "unseen_share")].drifted
    assert overall[("horizon", "psi")].value == pytest.approx(0.0, abs=1e-12)
    assert "all" in report.drifted_segments  # an identity drifted
    # origin_region=Q was never seen: unsupported, not judged
    assert "origin_region=Q" in report.unsupported_segments


def test_requests_of_known_series_stay_green() -> None:
    profile = _profile()
    report = drift_of_requests(profile, _requests(), **WINDOW)  # tonnes as in training
    assert report.source == "requests" and report.rows == 20
    assert report.drifted_segments == []
    tenfold = _requests()["tonnes"] * 10
    shifted = drift_of_requests(profile, _requests(tonnes=tenfold), **WINDOW)
    assert "all" in shifted.drifted_segments  # the prediction decides for requests
    assert _by(shifted, "all", PREDICTION)["wasserstein"] > CONFIG.drift.wasserstein


def test_requests_outside_the_window_are_left_out_and_bad_input_is_named() -> None:
    profile = _profile()
    late = _requests(origin_date=pd.Timestamp("2025-04-01"))
    assert drift_of_requests(profile, late, **WINDOW).rows == 0
    with pytest.raises(ValueError, match=r"lack columns \['tonnes'\]"):
        drift_of_requests(profile, _requests().drop(columns=["tonnes"]), **WINDOW)
    with pytest.raises(ValueError, match="window_end 2025-02-01 is before window_start"):
        drift_of_requests(
            profile, _requests(), window_start="2025-03-01", window_end="2025-02-01", config=CONFIG
        )


def test_segment_verdict_counts_deciding_features_only() -> None:
    profile = _profile()
    big = np.tile(np.arange(10.0), 4) + 50
    part = numeric_part({"level": big}, {})
    inputs_only = drift_report(profile, [part], source="facts", **WINDOW)
    assert _by(inputs_only, "all", "level")["wasserstein"] > 1
    assert inputs_only.drifted_segments == []  # inputs are reported, they do not decide
    with_target = numeric_part({"level": big, TARGET: np.full(40, 500.0)}, {})
    report = drift_report(profile, [with_target], source="facts", **WINDOW)
    assert report.drifted_segments == ["all"]
    assert drifted_segments(report.results, 0.5, frozenset({"prediction"})) == []


# -- the seasonal reference and request support ------------------------------------------------


def _seasonal_profile() -> ReferenceProfile:
    """40 series; January targets twice those of July (a seasonal cargo)."""
    rows = [
        {
            "origin_station": f"o{s}",
            "destination_station": "d0",
            "cargo_type": "coal",
            "origin_region": "A",
            "target_date": pd.Timestamp(f"2024-{month:02d}-01") + pd.Timedelta(days=d),
            "horizon": 1,
            "y": (20.0 if month == 1 else 10.0) * (1 + s % 10),
        }
        for s in range(40)
        for month in (1, 7)
        for d in range(10)
    ]
    return build_profile(
        pd.DataFrame(rows),
        None,
        config=CONFIG,
        segment_columns=["origin_region"],
        gates=GATES,
        features=["horizon"],
    )


def _january_target(factor: float) -> pd.Series:
    return pd.Series([20.0 * factor * (1 + s % 10) for s in range(40) for _ in range(5)])


def test_a_window_is_judged_against_the_same_months_of_the_reference() -> None:
    profile = _seasonal_profile()
    assert set(profile.months_of("all")) == {1, 7}
    assert profile.months_of("all")[1].counts["volume_tonnes"]  # the target, not inputs
    assert "horizon" not in profile.months_of("all")[1].counts

    def judged(target: pd.Series, months: int, reference: ReferenceProfile) -> float:
        part = numeric_part({"volume_tonnes": target.to_numpy()})
        part.months = np.full(len(target), months)
        report = drift_report(
            reference,
            [part],
            source="facts",
            window_start=date(2025, 1, 1),
            window_end=date(2025, 1, 5),
            config=CONFIG,
        )
        return _by(report, "all", "volume_tonnes")["wasserstein"]

    usual_january = _january_target(1.0)
    # against its own month: no drift; against the whole year (January + July): drift
    assert judged(usual_january, 1, profile) == pytest.approx(0.0, abs=1e-9)
    assert judged(usual_january, 1, profile.model_copy(update={"months": []})) > 0.1
    # a real shift in January still shows against January
    assert judged(_january_target(1.6), 1, profile) > 0.1
    # a month the training window never saw: the whole-window reference
    assert judged(usual_january, 3, profile) == judged(
        usual_january, 1, profile.model_copy(update={"months": []})
    )


def test_request_segments_need_enough_distinct_series() -> None:
    profile = _profile()
    config = CONFIG.model_copy(update={"drift": CONFIG.drift.model_copy(update={"min_series": 4})})
    report = drift_of_requests(
        profile, _requests(), window_start="2025-03-01", window_end="2025-03-07", config=config
    )
    judged = {r.segment for r in report.results}
    # four series in all; region A holds three, coal and oil two each
    assert judged == {"all"}
    assert {"origin_region=A", "cargo_type=coal"} <= set(report.unsupported_segments)


def test_the_deciding_wasserstein_is_measured_on_the_log_scale() -> None:
    profile = _seasonal_profile()

    def judged(target: pd.Series) -> Any:
        part = numeric_part({"volume_tonnes": target.to_numpy()})
        part.months = np.full(len(target), 1)
        report = drift_report(
            profile,
            [part],
            source="facts",
            window_start=date(2025, 1, 1),
            window_end=date(2025, 1, 5),
            config=CONFIG,
        )
        [w] = [r for r in report.results if r.statistic == "wasserstein" and r.segment == "all"]
        return w

    # every lane x1.6: each lane's log position moves by log 1.6 (about 0.47), whatever its size
    shifted = judged(_january_target(1.6))
    assert shifted.drifted and shifted.value > 0.3
    # the biggest lanes alone x1.6: a large move in tonnes, a small one on the log scale
    big_only = pd.Series(
        [20.0 * (1 + s % 10) * (1.6 if s % 10 == 9 else 1.0) for s in range(40) for _ in range(5)]
    )
    assert 0 < judged(big_only).value < shifted.value / 5
    assert not judged(big_only).drifted
    assert judged(_january_target(1.0)).value == pytest.approx(0.0, abs=1e-12)


def test_the_first_year_of_training_data_leaves_no_missing_yoy_in_the_reference() -> None:
    """``yoy_ratio`` is missing in the training data's first LOOKBACK_DAYS only because the
    data starts there, never in a current window (finding 9 of "Trust what is collected":
    PSI about 4 on ``yoy_ratio`` in every segment of the monitoring demo). Those rows stay
    out of its reference; a young series' missing value (series o1 here) still counts."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2023-01-01", periods=1100, freq="D")
    rows = []
    for s in range(2):
        for d, origin in enumerate(days):
            young = s == 1 and d < 500
            rows.append(
                {
                    "origin_station": f"o{s}",
                    "destination_station": "d0",
                    "cargo_type": "coal",
                    "origin_region": "A",
                    "origin_date": origin,
                    "target_date": origin + pd.Timedelta(days=1),
                    "horizon": 1,
                    "yoy_ratio": np.nan if d < 309 or young else rng.normal(1.0, 0.1),
                    "y": 10.0,
                }
            )
    examples = pd.DataFrame(rows)  # origins from day 0 = data start + 91 days of history
    profile = build_profile(
        examples,
        None,
        config=CONFIG,
        segment_columns=["origin_region"],
        gates=GATES,
        features=["horizon", "yoy_ratio"],
        min_history_days=91,
    )
    counts = np.asarray(profile.segment("all").counts["yoy_ratio"], dtype=float)
    missing_share = counts[-1] / counts.sum()
    # kept: origins from day 309 (400 days after the data start); o1 is missing on 191 of its
    # 791 kept days, o0 on none
    assert counts.sum() == 2 * (1100 - 309)
    assert missing_share == pytest.approx(191 / (2 * 791))
    other = np.asarray(profile.segment("all").counts["horizon"], dtype=float)
    assert other.sum() == 2200  # every row still profiles the other features
