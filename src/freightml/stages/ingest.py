"""Ingest: read the configured source and keep the freshest training window."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from freightml.config import DataSettings, Settings
from freightml.data.sources import (
    SourcedFacts,
    digest_facts,
    freshest_window,
    load_source,
    save_facts,
)
from freightml.domain import SERIES_KEY
from freightml.stages.result import StageResult
from freightml.timing import timed

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


def load_window(data: DataSettings) -> tuple[pd.DataFrame, FactsInfo]:
    """The freshest ``data.train_window_days`` of the configured source, described."""
    source = load_source(data)
    if source.facts.empty:
        raise ValueError(f"no facts in {source.uri} after the date and region filters")
    window = freshest_window(source.facts, data.train_window_days)
    return window, FactsInfo.describe(window, source, data.train_window_days)


def ingest_data(settings: Settings, out_path: str | Path) -> FactsInfo:
    """Load the source, keep the freshest training window, write it as Parquet."""

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
