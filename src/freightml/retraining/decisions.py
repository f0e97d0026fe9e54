"""Retraining's table family in the store of record: one row per retraining decision, its status
(decided -> started -> finished | failed, or skipped) and the run it started, with the
whole :class:`~freightml.retraining.types.Decision` as JSON beside the summary columns."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from freightml.retraining.types import (
    IN_FLIGHT,
    KEY_USED,
    STATUSES,
    Decision,
    PastDecision,
)
from freightml.store import Store
from freightml.store.database import count, metadata, now, register_counts

SUMMARY_COLUMNS: tuple[str, ...] = (
    "id",
    "key",
    "model_name",
    "as_of",
    "decided_at",
    "updated_at",
    "retrain",
    "forced",
    "trigger",
    "status",
    "run_id",
    "model_version",
    "message",
)
# status changes a row may take (a finished, failed or skipped decision is final)
_NEXT: dict[str, tuple[str, ...]] = {
    "decided": ("started", "failed", "skipped"),
    "started": ("started", "finished", "failed"),  # started again: the run id is known
}


# the statuses that hold a decision's key (KEY_USED), as a partial index's condition
KEY_HELD = "status IN ({})".format(", ".join(f"'{s}'" for s in KEY_USED))

# One row per retraining decision (`freightml retrain run`, the retraining pipeline): the
# summary columns, the run it started and its outcome, and the whole Decision as JSON in
# details (freightml.retraining.types.Decision).
retraining_decisions = sa.Table(
    "retraining_decisions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the decision id
    sa.Column("key", sa.String(512), nullable=False),  # model:trigger:as-of (idempotency)
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("retrain", sa.Boolean, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("trigger", sa.String(64)),  # the trigger the key names; None when none fired
    # decided | started | finished | failed | skipped
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(255)),  # the KFP run or MLflow training run it started
    sa.Column("model_version", sa.String(255)),  # the version the run registered
    sa.Column("message", sa.Text),  # the outcome in words (promotion decision, error)
    sa.Column("details", sa.Text, nullable=False),
    sa.Index("ix_retraining_decisions_model_as_of", "model_name", "as_of", "decided_at"),
    sa.Index("ix_retraining_decisions_key", "key"),
    # One decision holds an idempotency key (decided, started or finished: KEY_USED);
    # skipped and failed ones may repeat it. The database refuses a second holder whatever
    # the writers do, so two processes claiming at once start one run.
    sa.Index(
        "ux_retraining_decisions_key_held",
        "key",
        unique=True,
        sqlite_where=sa.text(KEY_HELD),
        postgresql_where=sa.text(KEY_HELD),
    ),
)
register_counts({"retraining_decisions": count(retraining_decisions)})


class DecisionStore:
    """Records retraining decisions and their outcome in ``store``; the guards read them
    back (its table is created there when missing, unless the store was opened with
    ``create=False``)."""

    def __init__(self, store: Store) -> None:
        self.db = store.db
        self.db.ensure(retraining_decisions)

    def record(
        self,
        decision: Decision,
        status: str,
        *,
        max_in_flight: int = 1,
        message: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Store ``decision`` with ``status``; returns the status stored.

        A decision to retrain recorded as ``decided`` or ``started`` claims its key: in the
        same transaction, if another decision already used the key or ``max_in_flight``
        runs are in flight, it is stored as ``skipped`` instead (two processes deciding at
        once start one run). ``run_id`` (the run that acts on it, when known before it
        starts: a pipeline run deciding for itself) is stored with a claim that succeeded.
        Recording the same decision id twice is an error."""
        _check_status(status)
        if status in IN_FLIGHT and not decision.retrain:
            raise ValueError(f"decision {decision.id} does not retrain: it cannot be {status}")
        try:
            return self._record(decision, status, max_in_flight, message, run_id)
        except sa.exc.IntegrityError:
            # the key's unique index: a concurrent claim of the same key committed first
            # (the PostgreSQL table lock makes this rare, the index makes it impossible to
            # miss); a second record of the same decision id is the caller's error
            if status not in IN_FLIGHT or self.get(decision.id) is not None:
                raise
            return self._record(decision, status, max_in_flight, message, run_id)

    def _record(
        self,
        decision: Decision,
        status: str,
        max_in_flight: int,
        message: str | None,
        run_id: str | None,
    ) -> str:
        c = retraining_decisions.c
        stamp = now()
        with self.db.write() as conn:
            if self.db.dialect == "postgresql":  # concurrent claims wait for each other
                conn.exec_driver_sql("LOCK TABLE retraining_decisions IN SHARE ROW EXCLUSIVE MODE")
            if status in IN_FLIGHT:
                used = conn.execute(
                    sa.select(c.id, c.status).where(c.key == decision.key, c.status.in_(KEY_USED))
                ).first()
                flying = conn.execute(
                    sa.select(sa.func.count()).where(
                        c.model_name == decision.model_name, c.status.in_(IN_FLIGHT)
                    )
                ).scalar_one()
                if used is not None:
                    status, message = "skipped", f"key {decision.key} already {used.status}"
                elif flying >= max_in_flight:
                    status, message = "skipped", f"{flying} run(s) already in flight"
            conn.execute(
                sa.insert(retraining_decisions).values(
                    id=decision.id,
                    key=decision.key,
                    model_name=decision.model_name,
                    as_of=decision.as_of,
                    decided_at=_utc(decision.decided_at),
                    updated_at=stamp,
                    retrain=decision.retrain,
                    forced=decision.forced,
                    trigger=decision.trigger,
                    status=status,
                    run_id=run_id if status in IN_FLIGHT else None,
                    message=message,
                    details=decision.model_dump_json(),
                )
            )
        return status

    def mark(
        self,
        decision_id: str,
        status: str,
        *,
        run_id: str | None = None,
        model_version: str | None = None,
        message: str | None = None,
    ) -> None:
        """Move a recorded decision to ``status`` (started, finished, failed, skipped),
        with the run it started, the version that run registered and the outcome in words
        (values given as None keep what is stored). A finished decision may be marked
        finished again with the same version (two recorders of one outcome: the run's own
        step and the registry reconciliation), which updates its message."""
        _check_status(status)
        c = retraining_decisions.c
        with self.db.write() as conn:
            found = conn.execute(
                sa.select(c.status, c.model_version).where(c.id == decision_id)
            ).first()
            if found is None:
                raise KeyError(f"no retraining decision {decision_id!r} is recorded")
            current = found.status
            again = (
                current == status == "finished"
                and model_version is not None
                and model_version == found.model_version
            )
            if not again and status not in _NEXT.get(current, ()):
                raise ValueError(
                    f"retraining decision {decision_id} is {current}: it cannot become {status}"
                )
            values: dict[str, Any] = {"status": status, "updated_at": now()}
            for name, value in (
                ("run_id", run_id),
                ("model_version", model_version),
                ("message", message),
            ):
                if value is not None:
                    values[name] = value
            conn.execute(
                sa.update(retraining_decisions).where(c.id == decision_id).values(**values)
            )

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """The summary columns of one decision plus ``decision`` (the Decision), or None."""
        c = retraining_decisions.c
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(*(c[n] for n in SUMMARY_COLUMNS), c.details).where(c.id == decision_id)
            ).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["decision"] = Decision.model_validate_json(out.pop("details"))
        return _normalised(out)

    def in_flight_for_run(self, run_id: str) -> builtins.list[str]:
        """Ids of the decisions still in flight (``decided`` or ``started``) that recorded
        ``run_id`` as their run, oldest first."""
        c = retraining_decisions.c
        query = (
            sa.select(c.id)
            .where(c.run_id == run_id, c.status.in_(IN_FLIGHT))
            .order_by(c.decided_at, c.id)
        )
        with self.db.read() as conn:
            return [str(r.id) for r in conn.execute(query)]

    def history(self, model_name: str, limit: int = 500) -> builtins.list[PastDecision]:
        """The newest ``limit`` decisions of ``model_name`` that asked for a retrain, newest
        first: what the cool-down, in-flight and dedupe guards read."""
        c = retraining_decisions.c
        query = (
            sa.select(c.id, c.key, c.as_of, c.status, c.decided_at, c.updated_at)
            .where(c.model_name == model_name, c.retrain.is_(True))
            .order_by(c.decided_at.desc(), c.id.desc())
            .limit(int(limit))
        )
        with self.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return [PastDecision.model_validate(_normalised(r)) for r in rows]

    def list(self, limit: int = 20, model_name: str | None = None) -> builtins.list[dict[str, Any]]:
        """The summary columns (:data:`SUMMARY_COLUMNS`) of up to ``limit`` decisions,
        newest first; times are timezone-aware UTC on both backends."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        c = retraining_decisions.c
        query = (
            sa.select(*(c[n] for n in SUMMARY_COLUMNS))
            .order_by(c.decided_at.desc(), c.id.desc())
            .limit(int(limit))
        )
        if model_name is not None:
            query = query.where(c.model_name == model_name)
        with self.db.read() as conn:
            return [_normalised(dict(r._mapping)) for r in conn.execute(query)]


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown retraining status {status!r}; known: {', '.join(STATUSES)}")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _normalised(row: dict[str, Any]) -> dict[str, Any]:
    for name in ("decided_at", "updated_at"):
        if name in row:
            row[name] = _utc(row[name])
    return row
