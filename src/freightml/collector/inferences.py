"""The collector's table family in the store of record: every CloudEvent received
(inference_events), and each inference's request and response joined (inferences); the
online forecasts of a response go to the store's forecasts table."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from freightml.collector import tables as t
from freightml.collector.events import InferenceEvent, Outcome
from freightml.collector.payloads import ForecastBody, ForecastBodyError, parse_forecast_body
from freightml.domain import REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE
from freightml.store import Store
from freightml.store.database import count, now, register_counts
from freightml.store.forecasts import ForecastGroup, forecast_meta

_INFERENCE_SIDES = {
    "request": ("request_event", "request_time"),
    "response": (
        "response_event",
        "response_time",
        "protocol",
        "model_name",
        "model_version",
        "n_forecasts",
    ),
}
log = logging.getLogger(__name__)


register_counts(
    {
        "events": count(t.inference_events),
        "inferences": count(t.inferences),
        "inferences_complete": count(
            t.inferences,
            t.inferences.c.request_event.is_not(None),
            t.inferences.c.response_event.is_not(None),
        ),
    }
)


class InferenceStore:
    """Stores CloudEvents idempotently in ``store`` and joins requests with responses; a
    response's forecasts are written through the store's forecasts in the same transaction.
    Its tables are created there when missing, unless the store was opened with
    ``create=False``."""

    def __init__(self, store: Store) -> None:
        self.db = store.db
        self.forecasts = store.forecasts
        self._statements: dict[str, Any] = {}
        self.db.ensure(t.inference_events, t.inferences)

    def record(self, events: Sequence[InferenceEvent]) -> list[Outcome]:
        """Store a batch of events in one transaction; one outcome per event, in order.

        A stored request or response creates or completes its inference (either order);
        a stored response whose body holds forecasts adds them as ``online`` forecasts.
        """
        outcomes: list[Outcome] = ["duplicate"] * len(events)
        first: dict[tuple[str, str], int] = {}
        for i, e in enumerate(events):
            j = first.setdefault((e.event_id, e.event_type), i)
            if j != i and not _same_event(events[j], e.source, e.body):
                outcomes[i] = "conflict"
        if not first:
            return outcomes
        stamp = now()
        rows = [_event_row(events[i], stamp) for i in first.values()]
        with self.db.write() as conn:
            result = conn.execute(self._statement("events"), rows)
            stored = {(r.event_id, r.event_type): r.id for r in result}
            if len(stored) < len(first):
                self._conflicts(conn, events, first, stored, outcomes)
            requests, responses = [], []
            for key, pk in stored.items():
                i = first[key]
                outcomes[i] = "stored"
                if events[i].kind == "request":
                    requests.append((events[i], pk))
                elif events[i].kind == "response":
                    responses.append((events[i], pk))
            self._join(conn, requests, responses, stamp)
        return outcomes

    @staticmethod
    def _conflicts(
        conn: sa.Connection,
        events: Sequence[InferenceEvent],
        first: dict[tuple[str, str], int],
        stored: dict[tuple[str, str], int],
        outcomes: list[Outcome],
    ) -> None:
        """Mark as ``conflict`` the events whose (id, type) was stored before from another
        source or with another body (a redelivery repeats both: a duplicate)."""
        e = t.inference_events.c
        known = [k for k in first if k not in stored]
        rows = conn.execute(
            sa.select(e.event_id, e.event_type, e.source, e.body).where(
                sa.tuple_(e.event_id, e.event_type).in_(known)
            )
        ).fetchall()
        before = {(r.event_id, r.event_type): (r.source, r.body) for r in rows}
        for i, ev in enumerate(events):
            old = before.get((ev.event_id, ev.event_type))
            if old is not None and not _same_event(ev, *old):
                outcomes[i] = "conflict"

    def by_correlation(self, correlation: str) -> list[str]:
        """Ids of the inferences whose events carry ``correlation`` as their
        ``correlationid`` (the client's request id the predictor keeps), oldest first."""
        e = t.inference_events.c
        needle = json.dumps({"correlationid": correlation}, separators=(",", ":"))[1:-1]
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(e.event_id)
                .where(e.attributes.like(f"%{escaped}%", escape="\\"))
                .order_by(e.id)
            ).fetchall()
        return list(dict.fromkeys(r.event_id for r in rows))

    def get(self, event_id: str) -> dict[str, Any] | None:
        """One inference by its id (the CloudEvent id): request and response events (body
        parsed), the joined metadata and its forecasts; None if nothing has that id."""
        e, i = t.inference_events.c, t.inferences.c
        with self.db.read() as conn:
            joined = conn.execute(sa.select(t.inferences).where(i.inference_id == event_id)).first()
            events = conn.execute(
                sa.select(t.inference_events).where(e.event_id == event_id).order_by(e.id)
            ).fetchall()
            if joined is None and not events:
                return None
            forecasts = self.forecasts.of_source(conn, "online", event_id)
        out: dict[str, Any] = (
            dict(joined._mapping) if joined is not None else {"inference_id": event_id}
        )
        out["complete"] = bool(joined and joined.request_event and joined.response_event)
        by_type = {row.event_type: _event_dict(row) for row in events}
        out["request"] = by_type.pop(REQUEST_EVENT_TYPE, None)
        out["response"] = by_type.pop(RESPONSE_EVENT_TYPE, None)
        out["other_events"] = list(by_type.values())
        out["forecasts"] = forecasts
        return out

    def _join(
        self,
        conn: sa.Connection,
        requests: list[tuple[InferenceEvent, int]],
        responses: list[tuple[InferenceEvent, int]],
        stamp: datetime,
    ) -> None:
        if requests:
            sides = [
                _inference_row(e, stamp, request_event=pk, request_time=e.time)
                for e, pk in requests
            ]
            conn.execute(self._statement("request"), sides).close()
        if not responses:
            return
        rows: list[dict[str, Any]] = []
        forecasts: list[ForecastGroup] = []
        for e, pk in responses:
            body = _forecast_body(e)
            rows.append(
                _inference_row(
                    e,
                    stamp,
                    response_event=pk,
                    response_time=e.time,
                    protocol=body.protocol if body else None,
                    model_name=body.model_name if body else None,
                    model_version=body.model_version if body else None,
                    n_forecasts=len(body.rows) if body else None,
                )
            )
            if body and body.rows:
                meta = forecast_meta(
                    "online",
                    e.event_id,
                    body.model_name,
                    body.model_version,
                    None,
                    stamp,
                    environment=e.namespace,
                )
                forecasts.append((meta, body.rows))
        conn.execute(self._statement("response"), rows).close()
        if forecasts:
            self.forecasts.insert(conn, forecasts)

    def _statement(self, name: Literal["events", "request", "response"]) -> Any:
        """The event insert and the two inference upserts, built once per store.

        The upserts insert an inference or fill in its request or response side, so the
        two events join whichever arrives first. RETURNING makes SQLAlchemy send one
        multi-row statement ("insertmanyvalues") instead of one per row.
        """
        if name not in self._statements:
            if name == "events":
                c = t.inference_events.c
                stmt = (
                    self.db.insert(t.inference_events)
                    .on_conflict_do_nothing(index_elements=["event_id", "event_type"])
                    .returning(c.id, c.event_id, c.event_type)
                )
            else:
                insert = self.db.insert(t.inferences)
                own = _INFERENCE_SIDES[name]
                current, new = t.inferences.c, insert.excluded
                set_: dict[str, Any] = {k: new[k] for k in (*own, "updated_at")}
                for k in ("inference_service", "namespace", "component", "endpoint"):
                    set_[k] = sa.func.coalesce(current[k], new[k])
                stmt = insert.on_conflict_do_update(
                    index_elements=["inference_id"], set_=set_
                ).returning(current.inference_id)
            self._statements[name] = stmt
        return self._statements[name]


def _same_event(e: InferenceEvent, source: str | None, body: str | None) -> bool:
    """The same source and the same body (as JSON data: one event may arrive in binary
    mode, its data as sent, and again in structured mode, its data re-serialised)."""
    if e.source != source:
        return False
    if e.body == body:
        return True
    if e.body is None or body is None:
        return False
    try:
        return bool(json.loads(e.body) == json.loads(body))
    except ValueError:
        return False


def _event_row(e: InferenceEvent, stamp: datetime) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "event_type": e.event_type,
        "source": e.source,
        "specversion": e.specversion,
        "event_time": e.time,
        "inference_service": e.inference_service,
        "namespace": e.namespace,
        "component": e.component,
        "endpoint": e.endpoint,
        "content_type": e.content_type,
        "attributes": json.dumps(e.attributes, separators=(",", ":"), default=str),
        "body": e.body,
        "received_at": stamp,
    }


def _inference_row(e: InferenceEvent, stamp: datetime, **side: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "inference_id": e.event_id,
        "inference_service": e.inference_service,
        "namespace": e.namespace,
        "component": e.component,
        "endpoint": e.endpoint,
        "request_event": None,
        "request_time": None,
        "response_event": None,
        "response_time": None,
        "protocol": None,
        "model_name": None,
        "model_version": None,
        "n_forecasts": None,
        "updated_at": stamp,
    }
    row.update(side)
    return row


def _forecast_body(e: InferenceEvent) -> ForecastBody | None:
    try:
        return parse_forecast_body(e.data())
    except ForecastBodyError as exc:
        log.warning("response %s: forecasts not stored: %s", e.event_id, exc)
    except ValueError as exc:  # body is not JSON (only possible for hand-built events)
        log.warning("response %s: body is not JSON: %s", e.event_id, exc)
    return None


def _event_dict(row: sa.Row) -> dict[str, Any]:
    out = dict(row._mapping)
    out["attributes"] = json.loads(out["attributes"])
    out["body"] = json.loads(out["body"]) if out["body"] else None
    return out
