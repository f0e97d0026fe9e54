"""Ingest: read the configured source and keep the freshest training window."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from freightml.config import DataSettings, Settings
from freightml.domain import SERIES_KEY
from freightml.stages.result import StageResult
from freightml.stages.timing import timed

log = logging.getLogger("freightml")


class FactsInfo(StageResult):
    """What a window of facts is and where it came from (the ingest artifact's metadata)."""

    digest: str  # content digest of the window (freightml.data.sources.digest_facts)
    rows: int
    series: int
    start: str
    end: str
    regions: list[str]
    cargo_types: list[str]
    source_uri: str
    source_sha256: str  # the source file's sha256, or the content digest of generated data
    window_days: int
    source_rows: int

    @classmethod
    def describe(cls, window: pd.DataFrame, source: SourcedFacts, window_days: int) -> FactsInfo:
        from freightml.data.sources import digest_facts

        regions = set(window["origin_region"].astype(str)) | set(
            window["destination_region"].astype(str)
        )
        return cls(
            digest=digest_facts(window),
            rows=len(window),
            series=window.groupby(list(SERIES_KEY), observed=True).ngroups,
            start=str(window["date"].min().date()),
            end=str(window["date"].max().date()),
            regions=sorted(regions),
            cargo_types=sorted(set(window["cargo_type"].astype(str))),
            source_uri=source.uri,
            source_sha256=source.sha256,
            window_days=window_days,
            source_rows=len(source.facts),
        )


@dataclass(frozen=True)
class SourcedFacts:
    """Facts as read, with their source URI and the source's sha256."""

    facts: pd.DataFrame
    uri: str
    sha256: str


def load_source(data: DataSettings) -> SourcedFacts:
    """The facts ``data`` points at: a file or URI (filtered by dates and regions), or
    synthetic data of ``data.synthetic_size`` when no source is set."""
    from freightml.data.sources import digest_facts, file_digest, load_facts
    from freightml.data.synthetic import generate

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


def load_window(data: DataSettings) -> tuple[pd.DataFrame, FactsInfo]:
    """The freshest ``data.train_window_days`` of the configured source, described."""
    source = load_source(data)
    if source.facts.empty:
        raise ValueError(f"no facts in {source.uri} after the date and region filters")
    window = freshest_window(source.facts, data.train_window_days)
    return window, FactsInfo.describe(window, source, data.train_window_days)


def ingest_data(settings: Settings, out_path: str | Path) -> FactsInfo:
    """Load the source, keep the freshest training window, write it as Parquet."""
    from freightml.data.sources import save_facts

    with timed("ingest_data"):
        window, info = load_window(settings.data)
        save_facts(window, Path(out_path))
    log.info(
        "ingested %s rows, %s series, %s..%s from %s",
        info.rows,
        info.series,
        info.start,
        info.end,
        info.source_uri,
    )
    return info
