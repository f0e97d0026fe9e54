"""The collector's store: inference events, inferences, forecasts and facts with history.

SQLite by default (WAL, one writer at a time), PostgreSQL by URL. Every write is
idempotent: a redelivered event, a re-sent forecast or an unchanged fact changes nothing.

One module per table family, over one shared :class:`~.database.Database`:

- ``inferences``: CloudEvents received and the request/response join (InferenceStore)
- ``forecasts``: online and batch forecasts, and their join with facts (ForecastStore)
- ``facts``: current facts and their revisions (FactStore)
- ``monitoring``: one snapshot per monitoring run (MonitoringStore)
- ``retraining``: one row per retraining decision and its run (RetrainingStore)

:class:`Store` composes them and keeps the API the rest of FreightML calls. To add a
family (say monitoring's tables): declare its tables in ``collector/tables.py`` (one
``metadata``, so ``create_all`` covers them), write a class taking the ``Database`` with a
``count_queries()`` method, and add it to ``Store.__init__`` (and ``Store.families``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Literal, Protocol

import pandas as pd
import sqlalchemy as sa

from freightml.collector.events import InferenceEvent, Outcome
from freightml.collector.store.database import DEFAULT_URL, Database, is_unavailable
from freightml.collector.store.facts import MAX_NAME_LENGTH, FactStore, IngestResult
from freightml.collector.store.forecasts import ForecastStore
from freightml.collector.store.inferences import InferenceStore
from freightml.collector.store.monitoring import MonitoringStore
from freightml.collector.store.retraining import RetrainingStore

__all__ = [
    "DEFAULT_URL",
    "MAX_NAME_LENGTH",
    "Database",
    "FactStore",
    "ForecastStore",
    "InferenceStore",
    "IngestResult",
    "MonitoringStore",
    "RetrainingStore",
    "Store",
    "TableFamily",
    "is_unavailable",
]


class TableFamily(Protocol):
    """What the facade needs of a table family."""

    def count_queries(self) -> dict[str, sa.Select[Any]]:
        """Named ``SELECT count(*)`` queries, reported by :meth:`Store.counts`."""
        ...


class Store:
    """SQL store of the collector. ``url`` is any SQLAlchemy SQLite or PostgreSQL URL
    (``postgresql+psycopg://user:pw@host/db``). Missing tables are created unless
    ``create=False`` (then call :meth:`create_all`), as MLflow does with its stores.

    The table families are reachable as ``store.inferences``, ``store.forecasts``,
    ``store.facts``, ``store.monitoring`` and ``store.retraining``; the methods below are
    the stable API over the first three (monitoring and retraining are used through their
    attributes directly).
    """

    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True, echo: bool = False) -> None:
        self.db = Database(url, echo=echo)
        self.forecasts = ForecastStore(self.db)
        self.inferences = InferenceStore(self.db, self.forecasts)
        self.facts = FactStore(self.db)
        self.monitoring = MonitoringStore(self.db)
        self.retraining = RetrainingStore(self.db)
        if create:
            self.create_all()

    @property
    def families(self) -> tuple[TableFamily, ...]:
        """Every table family, in the order :meth:`counts` reports them."""
        return (self.inferences, self.forecasts, self.facts, self.monitoring, self.retraining)

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

    # -- schema and connection --------------------------------------------------------------
    def create_all(self) -> Store:
        """Create missing tables and indexes (existing ones are left alone)."""
        self.db.create_all()
        return self

    def drop_all(self) -> None:
        """Drop the collector's tables (tests and resets only)."""
        self.db.drop_all()

    def close(self) -> None:
        self.db.close()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        self.db.ping()

    def counts(self) -> dict[str, int]:
        """Row counts: events, inferences (and complete ones), forecasts, facts, revisions,
        monitoring snapshots, retraining decisions."""
        queries = {k: q for family in self.families for k, q in family.count_queries().items()}
        with self.db.read() as conn:
            return {name: int(conn.execute(q).scalar_one()) for name, q in queries.items()}

    # -- events and inferences ----------------------------------------------------------------
    def record_event(self, event: InferenceEvent) -> Outcome:
        """Store one CloudEvent: ``stored``, or ``duplicate`` for a redelivery."""
        return self.inferences.record([event])[0]

    def record_events(self, events: Sequence[InferenceEvent]) -> list[Outcome]:
        """Store a batch of events in one transaction; see :meth:`InferenceStore.record`."""
        return self.inferences.record(events)

    def inference(self, event_id: str) -> dict[str, Any] | None:
        """One inference with its events and forecasts; see :meth:`InferenceStore.get`."""
        return self.inferences.get(event_id)

    # -- forecasts ------------------------------------------------------------------------------
    def write_forecasts(
        self,
        frame: pd.DataFrame,
        *,
        run_id: str,
        model_name: str | None = None,
        model_version: str | None = None,
        lineage: str | None = None,
        source: Literal["online", "batch"] = "batch",
    ) -> int:
        """Store a batch-scoring run's forecasts; see :meth:`ForecastStore.write`."""
        return self.forecasts.write(
            frame,
            run_id=run_id,
            model_name=model_name,
            model_version=model_version,
            lineage=lineage,
            source=source,
        )

    def forecasts_with_facts(
        self,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        model_name: str | None = None,
        source: Literal["online", "batch"] | None = None,
        include_pending: bool = False,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Forecasts joined to their day's current fact; see :meth:`ForecastStore.with_facts`."""
        return self.forecasts.with_facts(
            start,
            end,
            model_name=model_name,
            source=source,
            include_pending=include_pending,
            limit=limit,
        )

    # -- facts ----------------------------------------------------------------------------------
    def ingest_facts(self, df: pd.DataFrame) -> IngestResult:
        """Upsert facts with revisions, in one transaction; see :meth:`FactStore.ingest`."""
        return self.facts.ingest(df)

    def facts_frame(
        self, start: date | str | None = None, end: date | str | None = None
    ) -> pd.DataFrame:
        """Current facts in the facts schema; see :meth:`FactStore.frame`."""
        return self.facts.frame(start, end)

    def fact_history(
        self, origin_station: str, destination_station: str, cargo_type: str, day: date | str
    ) -> pd.DataFrame:
        """Every value one fact has had, oldest first; see :meth:`FactStore.history`."""
        return self.facts.history(origin_station, destination_station, cargo_type, day)
