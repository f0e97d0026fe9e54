"""The reference profile: bins with known answers, segments and support, the round trip,
the expectations from backtest rows."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from freightml.evaluation.methodology import GateSpec
from freightml.monitoring.config import MonitoringConfig, ProfileSpec
from freightml.monitoring.profile import (
    OTHER,
    PREDICTION,
    TARGET,
    ReferenceProfile,
    build_profile,
    categorical_bin_index,
    expectations_from_backtest,
    numeric_bin_index,
    numeric_edges,
)

pytestmark = [pytest.mark.unit]
GATES = GateSpec(
    max_wape_ratio_to_baseline=0.85,
    max_segment_wape_ratio_to_baseline=0.85,
    min_segment_share=0.02,
    min_segment_series=2,
    max_abs_bias=0.05,
)


def _examples(n_series: int = 4, days: int = 10) -> pd.DataFrame:
    """A tiny examples frame: series s carries ``s + 1`` tonnes; regions A (s < 3) and B."""
    rows = []
    for s in range(n_series):
        for d in range(days):
            rows.append(
                {
                    "origin_station": f"o{s}",
                    "destination_station": "d0",
                    "cargo_type": "coal" if s % 2 == 0 else "oil",
                    "origin_region": "A" if s < 3 else "B",
                    "destination_region": "Z",
                    "target_date": pd.Timestamp("2025-01-01") + pd.Timedelta(days=d),
                    "level": float(d),  # numeric: 0..9, evenly spread
                    "flat": 2.5,  # constant
                    "gappy": np.nan if d < 5 else float(d),
                    "y": float(s + 1),
                }
            )
    return pd.DataFrame(rows)


def _config(bins: int = 5, cap: int = 5000) -> MonitoringConfig:
    return MonitoringConfig(profile=ProfileSpec(numeric_bins=bins, max_categories=cap))


def _build(examples: pd.DataFrame, **kw) -> ReferenceProfile:
    return build_profile(
        examples,
        lambda frame: frame["y"].to_numpy() * 1.1,
        config=kw.pop("config", _config()),
        segment_columns=["origin_region", "cargo_type"],
        gates=GATES,
        features=kw.pop("features", ["level", "flat", "gappy", "origin_region", "cargo_type"]),
        **kw,
    )


def test_numeric_edges_are_inner_quantiles_and_ties_collapse() -> None:
    assert numeric_edges(np.arange(10, dtype=float), 5) == pytest.approx([1.8, 3.6, 5.4, 7.2])
    assert numeric_edges(np.array([0.0, 0, 0, 0, 1, 2]), 4) == [0.0, 0.75]  # ties, no max
    assert numeric_edges(np.full(7, 3.0), 10) == []  # constant: one bin
    assert numeric_edges(np.array([np.nan, np.nan]), 10) == []


def test_bins_are_right_closed_with_open_outer_bins_and_a_missing_bin() -> None:
    edges = [1.0, 2.0]
    x = np.array([-1e9, 1.0, 1.5, 2.0, 2.1, 1e9, np.nan])
    assert numeric_bin_index(x, edges).tolist() == [0, 0, 1, 1, 2, 2, 3]


def test_profile_counts_per_segment(tmp_path: Path) -> None:
    profile = _build(_examples())
    assert [s.segment for s in profile.segments] == [
        "all",
        "origin_region=A",
        "origin_region=B",
        "cargo_type=coal",
        "cargo_type=oil",
    ]
    level = profile.feature("level")
    assert level.kind == "numeric" and level.role == "input"
    assert level.edges == pytest.approx([1.8, 3.6, 5.4, 7.2])
    overall = profile.segment("all")
    assert overall is not None
    # 4 series x days 0..9: bins (-inf,1.8] {0,1}, (1.8,3.6] {2,3}, ... and no missing
    assert overall.counts["level"] == [8, 8, 8, 8, 8, 0]
    assert overall.sums["level"] == pytest.approx([4, 20, 36, 52, 68, 0])
    assert overall.mean["level"] == pytest.approx(4.5)
    assert overall.std["level"] == pytest.approx(np.arange(10).std())
    # constant column: one value bin; half of "gappy" is missing
    assert profile.feature("flat").edges == [] and overall.counts["flat"] == [40, 0]
    assert overall.counts["gappy"][-1] == 20
    region_b = profile.segment("origin_region=B")
    assert region_b is not None and region_b.rows == 10 and region_b.series == 1
    assert region_b.tonnes_share == pytest.approx(4 / 10)  # y = 1+2+3 in A, 4 in B
    assert region_b.counts["origin_region"] == [0, 10, 0]  # A, B, missing
    # the target and the predictions are profiled in tonnes
    assert profile.feature(TARGET).role == "target"
    assert profile.feature(PREDICTION).role == "prediction"
    assert overall.mean[PREDICTION] == pytest.approx(1.1 * 2.5)
    assert profile.stations == ["d0", "o0", "o1", "o2", "o3"]
    assert profile.series == [f"o{s}|d0|{'coal' if s % 2 == 0 else 'oil'}" for s in range(4)]
    assert profile.regions == ["A", "B", "Z"]
    assert (profile.window_start.isoformat(), profile.window_end.isoformat()) == (
        "2025-01-01",
        "2025-01-10",
    )


def test_support_rule_of_the_methodology_marks_thin_segments() -> None:
    profile = _build(_examples())
    supported = {s.segment: s.supported for s in profile.segments}
    # region B has one series (the rule asks for 2); every other segment has two or more
    assert supported == {
        "all": True,
        "origin_region=A": True,
        "origin_region=B": False,
        "cargo_type=coal": True,
        "cargo_type=oil": True,
    }


def test_categories_are_capped_with_other() -> None:
    examples = _examples(n_series=4)
    examples["origin_region"] = [f"r{s}" for s in range(4) for _ in range(10)]
    examples.loc[examples["origin_station"] == "o0", "origin_region"] = "r1"  # r1 most frequent
    profile = _build(examples, config=_config(cap=2))
    region = profile.feature("origin_region")
    assert region.capped and region.categories == ["r1", "r2"] and region.n_bins == 4
    overall = profile.segment("all")
    assert overall is not None and overall.counts["origin_region"] == [20, 10, 10, 0]
    idx, unseen = categorical_bin_index(pd.Series(["r2", "r3", "new", None]), region)
    assert idx.tolist() == [1, 2, 2, 3] and not unseen.any()  # capped: cannot tell unseen
    cargo = profile.feature("cargo_type")
    idx, unseen = categorical_bin_index(pd.Series(["oil", "grain", None]), cargo)
    assert idx.tolist() == [1, cargo.n_bins, cargo.n_bins - 1] and unseen.tolist() == [
        False,
        True,
        False,
    ]
    assert OTHER not in cargo.categories


def test_large_windows_are_profiled_on_a_sample_with_all_identities() -> None:
    examples = _examples(n_series=4, days=50)
    examples.loc[0, "origin_station"] = "rare"  # one row: may miss the sample
    seen = []
    profile = build_profile(
        examples,
        lambda frame: seen.append(len(frame)) or frame["y"].to_numpy(),
        config=_config(),
        segment_columns=["origin_region"],
        gates=GATES,
        features=["level"],
        max_rows=60,
    )
    assert seen == [60] and profile.rows == 60 and profile.window_rows == 200
    overall = profile.segment("all")
    assert overall is not None and sum(overall.counts["level"]) == 60
    assert "rare" in profile.stations and len(profile.series) == 5
    region_b = profile.segment("origin_region=B")
    assert region_b is not None and region_b.tonnes_share == pytest.approx(4 / 10)


def test_profile_round_trips_and_is_small(tmp_path: Path) -> None:
    profile = _build(_examples(n_series=6, days=400))
    path = profile.save(tmp_path / "p" / "profile.json")
    assert ReferenceProfile.load(path) == profile
    bigger = _build(_examples(n_series=6, days=4000))
    # bins and segments, not rows, set the size
    assert len(bigger.model_dump_json()) < 1.1 * len(profile.model_dump_json())


def test_profile_rejects_bad_input(tmp_path: Path) -> None:
    examples = _examples()
    with pytest.raises(ValueError, match=r"lack columns \['level'\]"):
        _build(examples.drop(columns=["level"]))
    with pytest.raises(ValueError, match=r"predict returned shape \(3,\) for 40 examples"):
        build_profile(
            examples,
            lambda frame: np.ones(3),
            config=_config(),
            segment_columns=[],
            gates=GATES,
            features=["level"],
        )
    with pytest.raises(ValueError, match="no example has a known y"):
        _build(examples.assign(y=np.nan))
    with pytest.raises(FileNotFoundError, match="nothing.json does not exist"):
        ReferenceProfile.load(tmp_path / "nothing.json")


def test_expectations_per_segment_and_bucket() -> None:
    predictions = pd.DataFrame(
        {
            "horizon": [1, 7, 8, 28, 29],
            "origin_region": ["A", "A", "A", "B", "B"],
            "cargo_type": ["coal"] * 5,
            "y": [10.0, 10.0, 20.0, 5.0, 5.0],
            "yhat": [12.0, 9.0, 20.0, 4.0, 100.0],
        }
    )
    got = expectations_from_backtest(predictions, _config(), ["origin_region", "cargo_type"])
    table = {(e.segment, e.horizon_bucket): (e.wape, e.bias, e.n) for e in got}
    assert table[("all", "1-7")] == pytest.approx((3 / 20, 1 / 20, 2))
    assert table[("all", "8-14")] == pytest.approx((0.0, 0.0, 1))
    assert table[("origin_region=B", "15-28")] == pytest.approx((0.2, -0.2, 1))
    assert table[("cargo_type=coal", "15-28")] == pytest.approx((0.2, -0.2, 1))
    # horizon 29 lies beyond the last bucket: left out
    assert sum(n for (seg, _), (_, _, n) in table.items() if seg == "all") == 4
