"""Loaders, column mapping, filters, saving and content digests."""

from __future__ import annotations

import gzip
import hashlib
import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from freightml.data.schema import FACT_COLUMNS, MissingColumnsError
from freightml.data.sources import digest_facts, file_digest, load_facts, save_facts

pytestmark = [pytest.mark.unit]


@pytest.fixture
def facts() -> pd.DataFrame:
    """Two series over three days, one of them between Moscow and October."""
    days = pd.date_range("2024-01-01", periods=3)
    rows = []
    for o, d, orr, drr, cargo, base in [
        ("NSK", "VLD", "West Siberian", "Far Eastern", "coal", 100.0),
        ("MSK", "SPB", "Moscow", "October", "containers", 40.0),
    ]:
        for i, day in enumerate(days):
            rows.append((day, o, d, orr, drr, cargo, base + i, 1 + i))
    return pd.DataFrame(rows, columns=list(FACT_COLUMNS))


def _memory_uri(name: str) -> str:
    return f"memory://{uuid.uuid4().hex}/{name}"


def test_csv_round_trip(tmp_path: Path, facts: pd.DataFrame) -> None:
    facts.to_csv(tmp_path / "f.csv", index=False)
    loaded = load_facts(tmp_path / "f.csv")
    assert tuple(loaded.columns) == FACT_COLUMNS
    assert loaded["origin_station"].dtype == "category"
    assert digest_facts(loaded) == digest_facts(facts)


def test_gzipped_csv(tmp_path: Path, facts: pd.DataFrame) -> None:
    with gzip.open(tmp_path / "f.csv.gz", "wt") as f:
        facts.to_csv(f, index=False)
    assert digest_facts(load_facts(str(tmp_path / "f.csv.gz"))) == digest_facts(facts)


def test_parquet_file_and_directory(tmp_path: Path, facts: pd.DataFrame) -> None:
    path = save_facts(facts, tmp_path / "out" / "facts.parquet")
    assert path.exists()
    assert digest_facts(load_facts(path)) == digest_facts(facts)
    folder = tmp_path / "dir"
    folder.mkdir()
    facts.iloc[:3].to_parquet(folder / "part-0.parquet", index=False)
    facts.iloc[3:].to_parquet(folder / "part-1.parquet", index=False)
    loaded = load_facts(f"file://{folder}")
    assert len(loaded) == 6 and digest_facts(loaded) == digest_facts(facts)


def test_memory_uri_parquet_and_csv(facts: pd.DataFrame) -> None:
    uri = _memory_uri("facts.parquet")
    with fsspec.open(uri, "wb") as f:
        facts.to_parquet(f, index=False)
    assert digest_facts(load_facts(uri)) == digest_facts(facts)
    csv_uri = _memory_uri("facts.csv")
    with fsspec.open(csv_uri, "w") as f:
        facts.to_csv(f, index=False)
    assert len(load_facts(csv_uri)) == 6


def test_column_mapping(tmp_path: Path, facts: pd.DataFrame) -> None:
    theirs = facts.rename(columns={"volume_tonnes": "tonnes", "date": "day"})
    theirs["extra"] = 1
    theirs.to_csv(tmp_path / "t.csv", index=False)
    loaded = load_facts(
        tmp_path / "t.csv", column_mapping={"tonnes": "volume_tonnes", "day": "date"}
    )
    assert tuple(loaded.columns) == FACT_COLUMNS
    assert loaded["volume_tonnes"].sum() == facts["volume_tonnes"].sum()


def test_date_and_region_filters(tmp_path: Path, facts: pd.DataFrame) -> None:
    facts.to_csv(tmp_path / "f.csv", index=False)
    by_date = load_facts(tmp_path / "f.csv", start="2024-01-02", end="2024-01-02")
    assert by_date["date"].unique().tolist() == [pd.Timestamp("2024-01-02")]
    by_origin = load_facts(tmp_path / "f.csv", regions=["Moscow"])
    by_destination = load_facts(tmp_path / "f.csv", regions=["Far Eastern"])
    assert set(by_origin["origin_station"]) == {"MSK"}
    assert set(by_destination["origin_station"]) == {"NSK"}
    assert list(by_origin["origin_station"].cat.categories) == ["MSK"]


def test_missing_file_names_the_uri(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        load_facts(tmp_path / "nope.parquet")


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "facts.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"unsupported facts file type: .*facts\.xlsx"):
        load_facts(tmp_path / "facts.xlsx")


def test_missing_columns_are_named_with_available_ones(tmp_path: Path, facts: pd.DataFrame) -> None:
    facts.rename(columns={"volume_tonnes": "tonnes"}).drop(columns="wagons").to_csv(
        tmp_path / "f.csv", index=False
    )
    with pytest.raises(MissingColumnsError) as info:
        load_facts(tmp_path / "f.csv")
    message = str(info.value)
    assert "['volume_tonnes', 'wagons']" in message and "'tonnes'" in message
    with pytest.raises(MissingColumnsError, match=r"qty \(-> volume_tonnes\)"):
        load_facts(tmp_path / "f.csv", column_mapping={"qty": "volume_tonnes"})


def test_mapping_to_unknown_column_is_rejected(tmp_path: Path, facts: pd.DataFrame) -> None:
    facts.to_csv(tmp_path / "f.csv", index=False)
    with pytest.raises(ValueError, match="'weight', which is not a facts column"):
        load_facts(tmp_path / "f.csv", column_mapping={"tonnes": "weight"})


def test_digest_ignores_row_order_and_dtype_but_not_content(facts: pd.DataFrame) -> None:
    base = digest_facts(facts)
    shuffled = facts.sample(frac=1, random_state=3).reset_index(drop=True)
    categorical = facts.astype({"origin_station": "category", "cargo_type": "category"})
    assert digest_facts(shuffled) == base == digest_facts(categorical)
    changed = facts.copy()
    changed.loc[0, "volume_tonnes"] += 0.1
    assert digest_facts(changed) != base
    assert len(base) == 64


def test_file_digest_streams_file_bytes_and_directories(
    tmp_path: Path, facts: pd.DataFrame
) -> None:
    path = save_facts(facts, tmp_path / "d" / "facts.parquet")
    assert file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    first = file_digest(tmp_path / "d")
    (tmp_path / "d" / "more.parquet").write_bytes(b"x")
    assert file_digest(tmp_path / "d") != first
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        file_digest(tmp_path / "missing.csv")
