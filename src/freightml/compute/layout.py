"""The facts as Spark reads them: one Parquet file for a step that reads every day
(:func:`spark_file`), or a dataset partitioned by month and origin region.

A pipeline's facts are one Parquet file with nanosecond timestamps (pandas' default), which
Spark 4 does not read. :func:`facts_dataset` streams such a file (or a DataFrame, or
another dataset) record batch by record batch into a Hive-partitioned dataset
(``month=YYYY-MM/origin_region=R/``) with the date as a Parquet DATE, so Spark reads only the
months a step asks for (a filter on ``date`` or ``month`` prunes whole directories, and the
row groups carry min/max statistics for the rest). Writing a month again replaces that
month's partitions and keeps the others: :func:`export_facts` adds the latest months of
a store's facts to an existing dataset without rewriting the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

PARTITION_COLUMNS = ["month", "origin_region"]
PARTITIONING = ds.partitioning(
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


def spark_file(source: str | Path | pd.DataFrame, path: str | Path) -> Path:
    """``source`` (a Parquet file, or a DataFrame) as one Parquet file Spark reads:
    timestamps in microseconds (Spark 4 refuses nanoseconds), categories as plain text.
    Streams a file batch by batch. For a step that reads every day of the facts; a step
    that reads some months reads a :func:`facts_dataset` instead."""
    path = Path(path)
    if isinstance(source, pd.DataFrame):
        batches = iter(pa.Table.from_pandas(source, preserve_index=False).to_batches(1 << 20))
    else:
        batches = pq.ParquetFile(str(source)).iter_batches(batch_size=1 << 20)
    writer: pq.ParquetWriter | None = None
    try:
        for batch in batches:
            table = _plain(pa.Table.from_batches([batch]))
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema, coerce_timestamps="us")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        what = "the frame" if isinstance(source, pd.DataFrame) else source
        raise ValueError(f"no facts in {what}")
    return path


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
