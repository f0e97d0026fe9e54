"""The store of record: facts with their revisions, forecasts, and the database every
other table family shares.

SQLite by default (WAL, one writer at a time), PostgreSQL by URL. Every write is
idempotent: a re-sent forecast or an unchanged fact changes nothing.

This floor holds what serving, monitoring, retraining and the collector all read: the
database (``database``), the facts (``facts``: current values and their revisions) and the
forecasts (``forecasts``: online and batch, and their join with facts). Each domain owns
its own table family next to its code, built over a :class:`Store`:

- ``freightml.collector.inferences.InferenceStore``: CloudEvents and inferences;
- ``freightml.monitoring.snapshots.SnapshotStore``: one snapshot per monitoring run;
- ``freightml.retraining.decisions.DecisionStore``: one row per retraining decision.

A family declares its tables on ``database.metadata``, registers its row counts with
``database.register_counts`` and calls ``store.db.ensure(...)`` for its tables when built.
There are no forwarding methods: call a family's own methods (``store.facts.ingest``,
``store.forecasts.with_facts``, ``SnapshotStore(store).latest``).
"""

from __future__ import annotations

import sqlalchemy as sa

from freightml.store.database import (
    COUNT_QUERIES,
    DEFAULT_URL,
    Database,
    is_unavailable,
)
from freightml.store.facts import MAX_NAME_LENGTH, FactStore, IngestResult
from freightml.store.forecasts import ForecastStore

__all__ = [
    "DEFAULT_URL",
    "MAX_NAME_LENGTH",
    "Database",
    "FactStore",
    "ForecastStore",
    "IngestResult",
    "Store",
    "is_unavailable",
]


class Store:
    """The store of record over ``url``, any SQLAlchemy SQLite or PostgreSQL URL
    (``postgresql+psycopg://user:pw@host/db``). Missing tables are created unless
    ``create=False`` (then call :meth:`create_all`), as MLflow does with its stores.

    ``store.facts`` and ``store.forecasts`` are its own table families; the other domains'
    families take the store (module docstring).
    """

    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True, echo: bool = False) -> None:
        self.db = Database(url, echo=echo, create=create)
        self.facts = FactStore(self.db)
        self.forecasts = ForecastStore(self.db)
        if create:
            self.create_all()

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def engine(self) -> sa.Engine:
        return self.db.engine

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def create_all(self) -> Store:
        """Create the missing tables and indexes of every family declared so far (existing
        ones are left alone); families built later create theirs too."""
        self.db.create = True
        self.db.create_all()
        return self

    def drop_all(self) -> None:
        """Drop the declared tables (tests and resets only)."""
        self.db.drop_all()

    def close(self) -> None:
        self.db.close()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        self.db.ping()

    def counts(self) -> dict[str, int]:
        """Row counts of every family imported in this process (the collector imports them
        all: events, inferences and complete ones, forecasts, facts, revisions, monitoring
        snapshots, retraining decisions)."""
        with self.db.read() as conn:
            return {
                name: int(conn.execute(query).scalar_one()) for name, query in COUNT_QUERIES.items()
            }
