"""The facts as Spark reads them: partitioned by month and origin region, the date a
Parquet DATE, and months added to the dataset without rewriting the others."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from freightml.compute.layout import (
    export_facts,
    facts_dataset,
    months,
    read_facts,
    read_shard,
    row_groups,
    shard_dataset,
    shard_row_group,
)
from freightml.data.synthetic import generate
from freightml.features.build import FEATURE_INPUT_COLUMNS, SERIES_KEY

ORDER = ["date", *SERIES_KEY]


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = FEATURE_INPUT_COLUMNS
    a = a[cols].astype({c: str for c in cols if c not in ("date", "volume_tonnes")})
    b = b[cols].astype({c: str for c in cols if c not in ("date", "volume_tonnes")})
    a, b = (x.sort_values(ORDER).reset_index(drop=True) for x in (a, b))
    for x in (a, b):
        x["date"] = pd.to_datetime(x["date"]).astype("datetime64[ns]")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_a_pipeline_facts_file_becomes_a_partitioned_dataset(tmp_path: Path) -> None:
    facts = generate("small", seed=2)
    facts.to_parquet(tmp_path / "facts.parquet", index=False)  # nanosecond timestamps
    root = facts_dataset(tmp_path / "facts.parquet", tmp_path / "ds")
    first = pd.to_datetime(facts["date"]).min()
    assert months(root)[0] == first.strftime("%Y-%m")
    region_dirs = {p.name for p in root.glob("month=*/origin_region=*")}
    regions = facts["origin_region"].astype(str).unique()
    assert region_dirs == {f"origin_region={quote(r)}" for r in regions}  # URI-encoded
    part = next(root.rglob("*.parquet"))
    assert str(pq.read_schema(part).field("date").type) == "date32[day]"
    _same(facts, read_facts(root))


def test_reading_from_a_day_skips_the_earlier_months(tmp_path: Path) -> None:
    facts = generate("small", seed=2)
    root = facts_dataset(facts, tmp_path / "ds")
    day = pd.to_datetime(facts["date"]).max() - pd.Timedelta(days=40)
    recent = read_facts(root, first_date=day)
    _same(facts.loc[pd.to_datetime(facts["date"]) >= day], recent)
    held = ds.dataset(str(root), format="parquet", partitioning="hive")
    wanted = held.get_fragments(filter=ds.field("month") >= day.strftime("%Y-%m"))
    assert 0 < len(list(wanted)) < len(list(held.get_fragments()))


def test_an_export_rewrites_its_latest_month_on_and_keeps_the_rest(tmp_path: Path) -> None:
    facts = generate("small", seed=2)
    dates = pd.to_datetime(facts["date"])
    last = dates.max()
    cut = last - pd.Timedelta(days=45)
    root = tmp_path / "ds"
    assert export_facts(facts.loc[dates <= cut], root) == dates.min().strftime("%Y-%m")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}
    # the store later holds the rest and a revision of the cut's month
    revised = facts.copy()
    in_cut_month = pd.to_datetime(revised["date"]).dt.strftime("%Y-%m") == cut.strftime("%Y-%m")
    revised.loc[in_cut_month, "volume_tonnes"] += 1.0
    assert export_facts(revised, root) == cut.strftime("%Y-%m")
    month = dates.dt.strftime("%Y-%m")
    expected = pd.concat(
        [facts.loc[month < cut.strftime("%Y-%m")], revised.loc[month >= cut.strftime("%Y-%m")]]
    )
    _same(expected, read_facts(root))
    kept = [p for p, t in before.items() if p.exists() and p.stat().st_mtime_ns == t]
    assert kept and all(cut.strftime("%Y-%m") not in str(p) for p in kept)
    assert export_facts(facts.iloc[:0], root) is None


def test_the_shards_hold_every_fact_once_and_each_series_in_one(tmp_path: Path) -> None:
    facts = generate("small", seed=2)
    facts.to_parquet(tmp_path / "facts.parquet", index=False)
    assert shard_dataset(tmp_path / "facts.parquet", tmp_path / "shards", 5) == len(facts)
    parts = [read_shard(tmp_path / "shards", k) for k in range(5)]
    assert sum(len(p) for p in parts) == len(facts) and all(len(p) for p in parts)
    owner = {}
    for k, part in enumerate(parts):
        for key in part[SERIES_KEY].astype(str).itertuples(index=False):
            assert owner.setdefault(tuple(key), k) == k
    _same(facts, pd.concat(parts))
    # the same series land in the same shard on every run, from a frame as from a file
    shard_dataset(facts, tmp_path / "again", 5)
    for k in range(5):
        again = read_shard(tmp_path / "again", k)
        assert set(again["origin_station"]) == set(parts[k]["origin_station"])
    assert read_shard(tmp_path / "shards", 99).empty
    with pytest.raises(ValueError, match="no facts"):
        shard_dataset(facts.iloc[:0], tmp_path / "empty", 5)


def test_row_groups_split_in_parallel_into_the_same_shards(tmp_path: Path) -> None:
    """One task per row group (the Spark job's unit) writes what the driver's pass writes."""
    facts = generate("small", seed=2)
    source = tmp_path / "facts.parquet"
    pq.write_table(pa.Table.from_pandas(facts, preserve_index=False), source, row_group_size=7000)
    groups = row_groups(source)
    assert groups == -(-len(facts) // 7000)
    rows = sum(shard_row_group(source, tmp_path / "parallel", 5, g) for g in range(groups))
    assert rows == len(facts)
    shard_dataset(source, tmp_path / "driver", 5)
    for k in range(5):
        mine, theirs = read_shard(tmp_path / "parallel", k), read_shard(tmp_path / "driver", k)
        assert len(list((tmp_path / "parallel" / f"shard={k}").glob("part-g*.parquet"))) > 1
        _same(theirs, mine)
