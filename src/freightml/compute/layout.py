"""The facts laid out for work past one machine.

:func:`shard_dataset` splits a step's facts into ``shard=K/`` partitions (a hash of the
series key), so each Spark task reads its own shard with pyarrow, from a local directory or
an object store, and no facts pass through the JVM or a shuffle.

:func:`facts_dataset` keeps a store's facts for the long run: it streams a Parquet file
(or a DataFrame) batch by batch into a Hive-partitioned dataset
(``month=YYYY-MM/origin_region=R/``) with the date as a Parquet DATE, so a reader takes only
the months it asks for (:func:`read_facts` with ``first_date``: whole directories are
skipped, the row groups' min/max statistics do the rest). Writing a month again replaces
that month's partitions and keeps the others: :func:`export_facts` adds the latest months
of a store's facts to an existing dataset without rewriting the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from freightml.features.build import SERIES_KEY

PARTITIONING = ds.partitioning(  # month=YYYY-MM/origin_region=R/
    pa.schema([("month", pa.string()), ("origin_region", pa.string())]), flavor="hive"
)


def _laid_out(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with the date as DATE, the origin region as text and its month added."""
    table = pa.Table.from_batches([batch])
    date = table["date"]
    if pa.types.is_timestamp(date.type):
        date = pc.cast(pc.floor_temporal(date, unit="day"), pa.timestamp("us"))
        date = pc.cast(date, pa.date32())
    elif not pa.types.is_date32(date.type):
        date = pc.cast(date, pa.date32())
    table = table.set_column(table.schema.get_field_index("date"), "date", date)
    region = pc.cast(table["origin_region"], pa.string())
    table = table.set_column(table.schema.get_field_index("origin_region"), "origin_region", region)
    table = _plain(table.append_column("month", pc.strftime(date, format="%Y-%m")))
    return table.combine_chunks().to_batches()[0]


def _batches(source: str | Path | pd.DataFrame, since: str | None) -> Iterator[pa.RecordBatch]:
    if isinstance(source, pd.DataFrame):
        batches = pa.Table.from_pandas(source, preserve_index=False).to_batches(1 << 20)
    else:
        batches = ds.dataset(str(source), format="parquet").to_batches(batch_size=1 << 20)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        out = _laid_out(batch)
        if since is not None:
            out = out.filter(pc.greater_equal(out.column("month"), pa.scalar(since)))
        if out.num_rows:
            yield out


def facts_dataset(
    source: str | Path | pd.DataFrame, root: str | Path, *, since: str | None = None
) -> Path:
    """Write the facts of ``source`` (a Parquet file or dataset, or a DataFrame) under
    ``root`` partitioned by month and origin region; with ``since`` (``YYYY-MM``) only the
    months from it on, replacing those months' partitions and keeping the earlier ones."""
    root = Path(root)
    batches = _batches(source, since)
    first = next(batches, None)
    if first is None:
        root.mkdir(parents=True, exist_ok=True)
        return root

    def everything() -> Iterator[pa.RecordBatch]:
        yield first
        yield from batches

    ds.write_dataset(
        everything(),
        str(root),
        schema=first.schema,
        format="parquet",
        partitioning=PARTITIONING,
        existing_data_behavior="delete_matching",
        basename_template="part-{i}.parquet",
    )
    return root


SHARD_COLUMN = "shard"


def shard_of(keys: pd.DataFrame, shards: int) -> np.ndarray:
    """The shard of every row of ``keys`` (the series key columns): a stable 64-bit hash
    of the key's text (pandas' ``hash_pandas_object``, the same on every machine and run)
    modulo ``shards``, so every fact of a series lands in one shard."""
    text = keys[SERIES_KEY].astype(str)
    hashed = pd.util.hash_pandas_object(text, index=False).to_numpy()
    return (hashed % np.uint64(shards)).astype(np.int32)


def filesystem_of(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """pyarrow's file system and path of a local path or an object store URI (s3://...;
    the endpoint and keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."""
    text = str(uri)
    if "://" not in text:
        text = str(Path(text).resolve())
    return pafs.FileSystem.from_uri(text)


def shard_dataset(source: str | Path | pd.DataFrame, root: str | Path, shards: int) -> int:
    """Write the facts of ``source`` (a Parquet file or a DataFrame) under ``root``
    (a directory or an object store URI) as ``shard=K/`` partitions (:func:`shard_of`),
    streamed batch by batch: a Spark task then reads its shard's facts itself
    (:func:`read_shard`), with no shuffle. Returns the number of facts."""
    filesystem, path = filesystem_of(root)
    filesystem.delete_dir_contents(path, missing_dir_ok=True)
    if isinstance(source, pd.DataFrame):
        batches = iter(pa.Table.from_pandas(source, preserve_index=False).to_batches(1 << 20))
    else:
        source_fs, source_path = filesystem_of(source)
        parquet = pq.ParquetFile(source_path, filesystem=source_fs)
        batches = parquet.iter_batches(batch_size=1 << 20)
    rows = 0

    def sharded() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for batch in batches:
            table = _plain(pa.Table.from_batches([batch]))
            keys = table.select(SERIES_KEY).to_pandas()
            shard = pa.array(shard_of(keys, shards), pa.int32())
            rows += table.num_rows
            yield from table.append_column(SHARD_COLUMN, shard).to_batches()

    first = next(sharded_batches := sharded(), None)
    if first is None:
        raise ValueError(
            f"no facts in {'the frame' if isinstance(source, pd.DataFrame) else source}"
        )

    def everything() -> Iterator[pa.RecordBatch]:
        yield first
        yield from sharded_batches

    ds.write_dataset(
        everything(),
        path,
        schema=first.schema,
        filesystem=filesystem,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([(SHARD_COLUMN, pa.int32())]), flavor="hive"),
        basename_template="part-{i}.parquet",
        existing_data_behavior="overwrite_or_ignore",
    )
    return rows


def row_groups(source: str | Path) -> int:
    """How many row groups the Parquet file at ``source`` (a path or URI) has: the units a
    parallel :func:`shard_row_group` pass splits it into."""
    filesystem, path = filesystem_of(source)
    return int(pq.ParquetFile(path, filesystem=filesystem).num_row_groups)


def shard_row_group(source: str | Path, root: str | Path, shards: int, group: int) -> int:
    """Row group ``group`` of the facts file at ``source`` split into the ``shard=K/``
    partitions under ``root`` that :func:`shard_dataset` writes (the same shard for every
    series), as one file per shard named after the group, so that one task per row group
    splits a file in parallel. Returns the number of facts."""
    source_fs, source_path = filesystem_of(source)
    table = _plain(pq.ParquetFile(source_path, filesystem=source_fs).read_row_group(group))
    if table.num_rows == 0:
        return 0
    shard = shard_of(table.select(SERIES_KEY).to_pandas(), shards)
    order = np.argsort(shard, kind="stable")
    table, shard = table.take(pa.array(order)), shard[order]
    filesystem, path = filesystem_of(root)
    bounds = np.flatnonzero(np.diff(shard)) + 1
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(shard)], strict=True):
        directory = f"{path}/{SHARD_COLUMN}={int(shard[start])}"
        filesystem.create_dir(directory, recursive=True)
        part = table.slice(int(start), int(stop - start))
        pq.write_table(part, f"{directory}/part-g{group:05d}.parquet", filesystem=filesystem)
    return int(table.num_rows)


def count_rows(root: str | Path) -> int:
    """The rows of the Parquet files under ``root`` (a directory or an object store URI),
    from their footers."""
    filesystem, path = filesystem_of(root)
    return int(ds.dataset(path, filesystem=filesystem, format="parquet").count_rows())


def read_shard(root: str | Path, shard: int) -> pd.DataFrame:
    """The facts of one shard of :func:`shard_dataset`'s output (empty when the shard
    has none), dates as ``datetime64[ns]``."""
    filesystem, path = filesystem_of(root)
    directory = f"{path}/{SHARD_COLUMN}={shard}"
    if filesystem.get_file_info(directory).type == pafs.FileType.NotFound:
        return pd.DataFrame()
    frame = ds.dataset(directory, filesystem=filesystem, format="parquet").to_table().to_pandas()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame


def _plain(table: pa.Table) -> pa.Table:
    """``table`` with dictionary (pandas category) columns as their values."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            plain = pc.cast(table[field.name], field.type.value_type)
            table = table.set_column(i, field.name, plain)
    return table


def months(root: str | Path) -> list[str]:
    """The months a dataset written by :func:`facts_dataset` holds, in order."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name.split("=", 1)[1] for p in root.glob("month=*") if p.is_dir())


def read_facts(root: str | Path, *, first_date: pd.Timestamp | None = None) -> pd.DataFrame:
    """The facts of a dataset (from ``first_date`` on: whole months are skipped unread),
    with the date as ``datetime64[ns]`` and the partition columns as text."""
    dataset = ds.dataset(str(root), format="parquet", partitioning=PARTITIONING)
    where = None
    if first_date is not None:
        day = pd.Timestamp(first_date)
        where = (ds.field("month") >= day.strftime("%Y-%m")) & (
            ds.field("date") >= pa.scalar(day.date(), pa.date32())
        )
    frame = dataset.to_table(filter=where).to_pandas()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.drop(columns=["month"])


def export_facts(facts: pd.DataFrame, root: str | Path, *, full: bool = False) -> str | None:
    """Add ``facts`` (a store's facts) to the dataset at ``root``: the months from the
    dataset's latest one on are rewritten, earlier months are kept as they are (``full``
    rewrites every month). The first month written, or None when nothing was."""
    held = months(root)
    since = None if full or not held else held[-1]
    if facts.empty:
        return None
    facts_dataset(facts, root, since=since)
    return since or pd.Timestamp(pd.to_datetime(facts["date"]).min()).strftime("%Y-%m")
