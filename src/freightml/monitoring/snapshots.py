"""Monitoring's table family in the store of record: one row per monitoring run, the whole
:class:`~freightml.monitoring.types.Snapshot` as JSON with its summary columns beside it."""

from __future__ import annotations

import builtins
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from freightml.monitoring.types import Snapshot
from freightml.store import Store
from freightml.store.database import count, metadata, register_counts

# The widths of the summary columns (monitoring_snapshots); PostgreSQL enforces them.
MAX_ID_LENGTH = 64
MAX_MODEL_LENGTH = 255
SUMMARY_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "as_of",
    "model_name",
    "model_version",
    "status",
    "n_alerts",
)

# One row per monitoring run (`freightml monitor run`): the summary columns for listing and
# the whole Snapshot as JSON text in details (freightml.monitoring.types.Snapshot).
monitoring_snapshots = sa.Table(
    "monitoring_snapshots",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the snapshot id
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(255)),
    sa.Column("status", sa.String(8), nullable=False),  # green | amber | red
    sa.Column("n_alerts", sa.Integer, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("environment", sa.String(255)),  # the serving namespace judged; NULL: all
    sa.Index("ix_monitoring_snapshots_model_as_of", "model_name", "as_of", "created_at"),
)
register_counts({"monitoring_snapshots": count(monitoring_snapshots)})


class SnapshotStore:
    """Saves monitoring snapshots idempotently (one row per snapshot id) and reads them back,
    in ``store`` (its table is created there when missing, unless the store was opened with
    ``create=False``)."""

    def __init__(self, store: Store) -> None:
        self.db = store.db
        self.db.ensure(monitoring_snapshots)

    def save(self, snapshot: Snapshot) -> bool:
        """Store one snapshot; True when it was new. Saving an id that is already stored
        changes nothing (whatever the content) and returns False."""
        _check_lengths(snapshot)
        row = {
            "id": snapshot.id,
            "created_at": _utc(snapshot.created_at),
            "as_of": snapshot.as_of,
            "model_name": snapshot.model_name,
            "model_version": snapshot.model_version,
            "status": snapshot.status,
            "n_alerts": len(snapshot.alerts),
            "details": snapshot.model_dump_json(),
            "environment": snapshot.environment,
        }
        statement = (
            self.db.insert(monitoring_snapshots)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(monitoring_snapshots.c.id)
        )
        with self.db.write() as conn:  # psycopg reports no rowcount here: count what returned
            return conn.execute(statement).first() is not None

    def get(self, snapshot_id: str) -> Snapshot | None:
        """The snapshot with this id, or None."""
        c = monitoring_snapshots.c
        with self.db.read() as conn:
            details = conn.execute(sa.select(c.details).where(c.id == snapshot_id)).scalar()
        return None if details is None else Snapshot.model_validate_json(details)

    def latest(
        self,
        model_name: str | None = None,
        *,
        until: date | None = None,
        environment: str | None = None,
    ) -> Snapshot | None:
        """The newest snapshot (of ``model_name``, or of any model; with ``until``, as of
        that day or earlier; with ``environment``, of that serving environment): greatest
        ``as_of``, then ``created_at`` (then id, so ties resolve the same way every time);
        None if none."""
        c = monitoring_snapshots.c
        query = sa.select(c.details).order_by(*_newest_first()).limit(1)
        if model_name is not None:
            query = query.where(c.model_name == model_name)
        if environment is not None:
            query = query.where(c.environment == environment)
        if until is not None:
            query = query.where(c.as_of <= until)
        with self.db.read() as conn:
            details = conn.execute(query).scalar()
        return None if details is None else Snapshot.model_validate_json(details)

    def list(self, limit: int = 20, model_name: str | None = None) -> builtins.list[dict[str, Any]]:
        """The summary columns (:data:`SUMMARY_COLUMNS`) of up to ``limit`` snapshots, newest
        first as in :meth:`latest`; ``created_at`` is timezone-aware UTC on both backends."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        c = monitoring_snapshots.c
        query = (
            sa.select(*(c[name] for name in SUMMARY_COLUMNS))
            .order_by(*_newest_first())
            .limit(int(limit))
        )
        if model_name is not None:
            query = query.where(c.model_name == model_name)
        with self.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["created_at"] = _utc(row["created_at"])
        return rows


def _newest_first() -> tuple[Any, ...]:
    c = monitoring_snapshots.c
    return (c.as_of.desc(), c.created_at.desc(), c.id.desc())


def _utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive time is taken to be UTC already (SQLite returns them so)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check_lengths(snapshot: Snapshot) -> None:
    if not snapshot.id or len(snapshot.id) > MAX_ID_LENGTH:
        raise ValueError(
            f"snapshot id must have 1 to {MAX_ID_LENGTH} characters, got {len(snapshot.id)}"
        )
    for name, value in (
        ("model_name", snapshot.model_name),
        ("model_version", snapshot.model_version),
    ):
        if value is not None and len(value) > MAX_MODEL_LENGTH:
            raise ValueError(
                f"snapshot {name} is longer than {MAX_MODEL_LENGTH} characters: {value[:40]!r}..."
            )
