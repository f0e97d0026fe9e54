"""Entry points for the command line: ingest a facts file, run the collector service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvicorn

from freightml.collector.app import create_app
from freightml.collector.guard import load_tokens
from freightml.collector.intake import prepare_facts
from freightml.config import CollectorSettings, DataSettings
from freightml.data.sources import load_facts
from freightml.monitoring.snapshots import SnapshotStore
from freightml.store import DEFAULT_URL, IngestResult, Store


def store_url_for(home: str | Path) -> str:
    """The embedded default store under a FreightML home: ``sqlite:///<home>/collector.db``."""
    return f"sqlite:///{Path(home) / 'collector.db'}"


def ingest_facts_file(
    path_or_uri: str | Path,
    store_url: str | None = None,
    *,
    column_mapping: dict[str, str] | None = None,
    storage_options: dict[str, Any] | None = None,
    data_settings: DataSettings | None = None,
) -> IngestResult:
    """Load facts from a CSV/Parquet file or URI, validate them (by ``data_settings``, None =
    the defaults) and ingest idempotently.

    Raises FactsRejected (with the validation errors) and stores nothing if the file
    fails validation; loading the same file twice counts every row as a duplicate.
    """
    raw = load_facts(path_or_uri, column_mapping=column_mapping, storage_options=storage_options)
    store = Store(store_url or DEFAULT_URL)
    try:
        facts, _ = prepare_facts(raw, data_settings, store_regions=store.facts.station_regions)
        return store.facts.ingest(facts)
    finally:
        store.close()


def serve_collector(
    store_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8085,
    *,
    log_level: str = "info",
    data_settings: DataSettings | None = None,
    collector_settings: CollectorSettings | None = None,
    home: Path = Path(".freightml"),
) -> None:
    """Run the collector on ``host:port`` until interrupted (tables are created first);
    posted facts are validated by ``data_settings`` (None = the defaults). Its tokens,
    body limits and whether it asks for tokens at all come from ``collector_settings``
    (None = the defaults: tokens required, the local token file under ``home``)."""

    cfg = collector_settings or CollectorSettings()
    tokens = load_tokens(cfg.tokens_dir, home) if cfg.auth else None
    store = Store(store_url or DEFAULT_URL)
    try:
        app = create_app(
            store,
            data_settings=data_settings,
            snapshots=SnapshotStore(store).latest,
            tokens=tokens,
            open_scopes=cfg.open_scopes,
            max_event_bytes=cfg.max_event_bytes,
            max_facts_bytes=cfg.max_facts_bytes,
        )
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        store.close()
