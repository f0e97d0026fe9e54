"""Load and save facts from CSV/Parquet on any fsspec URI, digest them for lineage, and
read the configured source (``load_source``: a file or URI, or synthetic data)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from freightml.data.schema import CATEGORY_COLUMNS, FACT_COLUMNS, MissingColumnsError, coerce_facts
from freightml.data.synthetic import generate

if TYPE_CHECKING:
    from freightml.config import DataSettings

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zst", ".csv.zip")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CHUNK = 1 << 20


def load_facts(
    uri: str | Path,
    *,
    column_mapping: dict[str, str] | None = None,
    start: date | str | None = None,
    end: date | str | None = None,
    regions: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read facts from a CSV (optionally compressed) or Parquet file or Parquet directory.

    ``uri`` is a local path or any fsspec URI (``s3://``, ``file://``, ``memory://``).
    ``column_mapping`` renames the source's columns to ours: ``{"tonnes": "volume_tonnes"}``.
    ``start``/``end`` are inclusive dates; ``regions`` keeps rows whose origin or destination
    region is listed. The result is coerced to the facts contract but not validated.
    """
    uri = str(uri)
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if not fs.exists(path):
        raise FileNotFoundError(f"facts source not found: {uri}")
    fmt = "parquet" if fs.isdir(path) else _format_of(uri)
    source_names = _source_names(column_mapping)
    if fmt == "csv":
        raw = _read_csv(fs, path, uri, source_names)
    else:
        raw = _read_parquet(fs, path, uri, source_names)
    facts = coerce_facts(raw.rename(columns={v: k for k, v in source_names.items()}))
    return _filter(facts, start, end, regions)


def _format_of(uri: str) -> str:
    name = uri.lower().rstrip("/")
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    raise ValueError(
        f"unsupported facts file type: {uri}; expected one of "
        f"{', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)} or a directory of Parquet files"
    )


def _source_names(column_mapping: dict[str, str] | None) -> dict[str, str]:
    """Our column name -> the source's column name."""
    names = {c: c for c in FACT_COLUMNS}
    for theirs, ours in (column_mapping or {}).items():
        if ours not in FACT_COLUMNS:
            raise ValueError(
                f"column_mapping maps {theirs!r} to {ours!r}, which is not a facts column; "
                f"facts columns are {list(FACT_COLUMNS)}"
            )
        names[ours] = theirs
    return names


def _check_columns(available: list[str], source_names: dict[str, str], uri: str) -> None:
    missing = [
        ours if theirs == ours else f"{theirs} (-> {ours})"
        for ours, theirs in source_names.items()
        if theirs not in available
    ]
    if missing:
        raise MissingColumnsError(missing, available, where=uri)


def _read_csv(fs: Any, path: str, uri: str, source_names: dict[str, str]) -> pd.DataFrame:
    with fs.open(path, "rb", compression="infer") as f:
        available = [str(c) for c in pd.read_csv(f, nrows=0).columns]
    _check_columns(available, source_names, uri)
    # Strings and dates repeat a lot: read them as categories, parse each date once.
    dtypes = {source_names[c]: "category" for c in (*CATEGORY_COLUMNS, "date")}
    with fs.open(path, "rb", compression="infer") as f:
        return pd.read_csv(f, usecols=list(source_names.values()), dtype=dtypes)


def _read_parquet(fs: Any, path: str, uri: str, source_names: dict[str, str]) -> pd.DataFrame:
    dataset = pads.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    _check_columns(list(dataset.schema.names), source_names, uri)
    table = dataset.to_table(columns=list(source_names.values()))
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(i, field.name, table.column(i).dictionary_encode())
    return table.to_pandas(date_as_object=False)


def _filter(
    facts: pd.DataFrame,
    start: date | str | None,
    end: date | str | None,
    regions: Sequence[str] | None,
) -> pd.DataFrame:
    keep = np.ones(len(facts), dtype=bool)
    if start is not None:
        keep &= (facts["date"] >= pd.Timestamp(start).normalize()).to_numpy()
    if end is not None:
        keep &= (facts["date"] <= pd.Timestamp(end).normalize()).to_numpy()
    if regions is not None:
        wanted = list(regions)
        keep &= (
            facts["origin_region"].isin(wanted) | facts["destination_region"].isin(wanted)
        ).to_numpy()
    if keep.all():
        return facts.reset_index(drop=True)
    out = facts[keep].reset_index(drop=True)
    for col in CATEGORY_COLUMNS:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].cat.remove_unused_categories()
    return out


def save_facts(df: pd.DataFrame, path: str | Path) -> Path:
    """Write facts (coerced to the contract, categories kept) to one Parquet file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    coerce_facts(df).to_parquet(path, index=False)
    return path


def digest_facts(df: pd.DataFrame) -> str:
    """sha256 of the facts' content, independent of row order, column order and
    category-vs-object dtype: the sorted multiset of per-row hashes."""
    facts = coerce_facts(df)
    row_hashes = pd.util.hash_pandas_object(facts, index=False).to_numpy()
    row_hashes.sort()
    digest = hashlib.sha256(",".join(FACT_COLUMNS).encode())
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()


def file_digest(path_or_uri: str | Path, storage_options: dict[str, Any] | None = None) -> str:
    """sha256 of a file's bytes, streamed; for a directory, of its files' relative paths
    and bytes in sorted order."""
    uri = str(path_or_uri)
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if not fs.exists(path):
        raise FileNotFoundError(f"cannot digest, not found: {uri}")
    digest = hashlib.sha256()
    if fs.isdir(path):
        root = path.rstrip("/")
        for file in sorted(fs.find(path)):
            digest.update(file[len(root) :].lstrip("/").encode() + b"\0")
            _update(digest, fs, file)
    else:
        _update(digest, fs, path)
    return digest.hexdigest()


def _update(digest: Any, fs: Any, path: str) -> None:
    with fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)


@dataclass(frozen=True)
class SourcedFacts:
    """Facts as read, with their source URI and the source's sha256."""

    facts: pd.DataFrame
    uri: str
    sha256: str


def load_source(data: DataSettings) -> SourcedFacts:
    """The facts ``data`` points at: a file or URI (filtered by dates and regions), or
    synthetic data of ``data.synthetic_size`` when no source is set."""

    if data.source_uri:
        facts = load_facts(
            data.source_uri,
            column_mapping=data.column_mapping or None,
            start=data.start_date,
            end=data.end_date,
            regions=data.regions,
        )
        return SourcedFacts(facts, data.source_uri, file_digest(data.source_uri))
    facts = generate(data.synthetic_size, seed=data.seed)
    return SourcedFacts(
        facts, f"synthetic:{data.synthetic_size}?seed={data.seed}", digest_facts(facts)
    )


def freshest_window(facts: pd.DataFrame, days: int) -> pd.DataFrame:
    """The last ``days`` days of facts (retraining always uses the newest data)."""
    end = facts["date"].max()
    start = end - pd.Timedelta(days=days - 1)
    return facts.loc[facts["date"] >= start].reset_index(drop=True)
