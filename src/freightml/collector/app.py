"""The collector's HTTP service (FastAPI): a CloudEvents sink for KServe's payload logger,
a facts endpoint, the joined forecasts, health and Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any, Literal

import pandas as pd
import sqlalchemy as sa
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from freightml.collector import openapi as api
from freightml.collector.events import (
    BadEventError,
    InferenceEvent,
    Outcome,
    event_from_http,
    events_from_batch,
    is_batch,
)
from freightml.collector.guard import CREDENTIAL_KEY, IntakeGuard, Tokens, route_scope
from freightml.collector.inferences import InferenceStore
from freightml.collector.intake import (
    BadFactsBody,
    FactsRejected,
    facts_from_body,
    prepare_facts,
)
from freightml.collector.writer import EventWriter
from freightml.config import DataSettings

# every table family of the store of record, so /stats counts them all
from freightml.monitoring import snapshots as _snapshots  # noqa: F401
from freightml.monitoring.exporter import DEFAULT_TTL_SECONDS, SnapshotCollector
from freightml.monitoring.types import Snapshot
from freightml.retraining import decisions as _decisions  # noqa: F401
from freightml.store import MAX_NAME_LENGTH, IngestResult, Store, is_unavailable
from freightml.store.facts import StaleFacts, UnknownFacts
from freightml.timing import ResponseTimer

_ROUTES = ("/", "/events", "/facts", "/healthz", "/metrics", "/forecasts/joined", "/stats")
_DESCRIPTION = (
    "`POST /` and `POST /events` take one CloudEvent, binary mode (`ce-id`, `ce-type`, "
    "`ce-source`, `ce-specversion` headers and a JSON body, as KServe's payload logger "
    "sends it) or structured mode (`application/cloudevents+json`). Answers: 200 "
    '`{"status": "stored"}` once committed, 200 `{"status": "duplicate"}` for a '
    'redelivery, 400 `{"status": "rejected", "error": ...}` naming what is wrong. '
    "See docs/collector.md."
)
RETRY_AFTER_S = 1  # the Retry-After of a 503: the database was unavailable
_STORED = b'{"status":"stored"}'
_DUPLICATE = b'{"status":"duplicate"}'


class CollectorMetrics:
    """The collector's Prometheus metrics, in their own registry (one per app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events = Counter(
            "freightml_collector_events",
            "CloudEvents received, by kind (request, response, other, invalid) and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.facts = Counter(
            "freightml_collector_facts",
            "Facts ingested, by outcome (inserted, revised, duplicate, rejected, stale, withdrawn)",
            ["outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "freightml_collector_rejected_requests",
            "Requests refused before any handler ran, by reason (unauthenticated, forbidden, "
            "too_large)",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "freightml_collector_request_duration_seconds",
            "HTTP request latency, by method, route and status code",
            ["method", "route", "code"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "freightml_collector_write_batch_events",
            "Events written per store transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "freightml_collector_write_batch_seconds",
            "Time to write one batch of events",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def count_facts(self, result: IngestResult) -> None:
        self.facts.labels("inserted").inc(result.inserted)
        self.facts.labels("revised").inc(result.revised)
        self.facts.labels("duplicate").inc(result.duplicates)


def _route(scope: Scope) -> tuple[str, str]:
    """The latency histogram's (method, route) labels of a call: a known route, the
    inference lookup's template, or "other" (bounded label values)."""
    path = scope.get("path", "")
    route = (
        path
        if path in _ROUTES
        else ("/inferences/{id}" if path.startswith("/inferences/") else "other")
    )
    return scope.get("method", ""), route


def _conflict(event: InferenceEvent) -> str:
    return (
        f"event {event.event_id!r} ({event.event_type}) was stored before from another "
        "source or with another body; this one was not stored"
    )


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(content, default=_json_default, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _describe(exc: BaseException) -> str:
    """The exception's type and the first line of its message (drivers add SQL and links)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _store_error(what: str, exc: BaseException) -> Response:
    """503 with ``Retry-After`` when the database is unavailable (the same request will
    succeed later: every write is idempotent), else 500; both name the error."""
    reason = f"{what}: {_describe(exc)}"
    if is_unavailable(exc):
        return _json(
            {"status": "unavailable", "error": f"{reason} (database unavailable; retry later)"},
            503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return _json({"status": "error", "error": reason}, 500)


def _json_default(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def create_app(
    store: Store,
    *,
    max_batch: int = 1000,
    data_settings: DataSettings | None = None,
    snapshots: Callable[[], Snapshot | None] | None = None,
    snapshot_ttl_seconds: float = DEFAULT_TTL_SECONDS,
    tokens: Tokens | None = None,
    open_scopes: Iterable[str] = (),
    max_event_bytes: int = 4 * 1024**2,
    max_facts_bytes: int = 16 * 1024**2,
) -> FastAPI:
    """The collector app over ``store``; posted facts are validated by ``data_settings``
    (the settings' data section; None = the defaults).

    ``tokens`` are the bearer tokens writes and payload reads need
    (freightml.collector.guard; None: every route open, for an app embedded in a test or
    behind another authenticating proxy; ``open_scopes`` need none, see IntakeGuard);
    bodies over ``max_event_bytes`` (events) or ``max_facts_bytes`` (facts) get 413.

    Events are written in batches by a writer task (group commit, see
    freightml.collector.writer); a handler answers only once its event is committed.
    With ``snapshots`` (e.g. ``SnapshotStore(store).latest``), /metrics also exposes the latest
    monitoring snapshot as gauges (freightml.monitoring.exporter), read at most once per
    ``snapshot_ttl_seconds``.
    """
    metrics = CollectorMetrics()
    if snapshots is not None:
        SnapshotCollector(snapshots, registry=metrics.registry, ttl_seconds=snapshot_ttl_seconds)
    inferences = InferenceStore(store)
    writer = EventWriter(inferences, max_batch=max_batch, on_batch=metrics.observe_batch)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        writer.start()
        try:
            yield
        finally:
            await writer.stop()

    app = FastAPI(
        title="FreightML collector",
        summary="KServe payload-log CloudEvents, forecasts and facts",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.store, app.state.metrics, app.state.writer = store, metrics, writer
    _document_event_routes(app, guarded=tokens is not None)
    app.add_middleware(
        IntakeGuard,
        tokens=tokens,
        open_scopes=open_scopes,
        limits={"events": max_event_bytes, "facts": max_facts_bytes},
        on_reject=lambda reason: metrics.rejected.labels(reason).inc(),
    )
    app.add_middleware(  # outside the guard: refusals are timed and counted by status too
        ResponseTimer,
        select=_route,
        observe=lambda labels, status, seconds: metrics.latency.labels(
            *labels, str(status)
        ).observe(seconds),
    )

    async def database_error(request: Request, exc: Exception) -> Response:
        return _store_error(f"{request.method} {request.url.path} failed", exc)

    # any route whose store call fails: 503 while the database is unavailable, else 500
    app.add_exception_handler(sa.exc.SQLAlchemyError, database_error)

    async def receive_batch(body: bytes) -> Response:
        """A CloudEvents JSON batch: store every valid event, name every invalid one."""
        try:
            parsed = events_from_batch(body)
        except BadEventError as exc:
            metrics.events.labels("invalid", "rejected").inc()
            return _json({"status": "rejected", "error": str(exc)}, 400)
        valid = [e for e in parsed if isinstance(e, InferenceEvent)]
        errors = [
            {"index": i, "error": str(e)}
            for i, e in enumerate(parsed)
            if isinstance(e, BadEventError)
        ]
        if errors:
            metrics.events.labels("invalid", "rejected").inc(len(errors))
        results = await _store_batch(inferences, writer, valid, metrics.observe_batch)
        counts = {"stored": 0, "duplicates": 0}
        conflicts: list[dict[str, Any]] = []
        tally: dict[tuple[str, str], int] = {}
        failed: BaseException | None = None
        for event, result in zip(valid, results, strict=True):
            if isinstance(result, BaseException):
                failed = result
                key = (event.kind or "other", "error")
            else:
                key = (event.kind or "other", result)
                if result == "conflict":
                    conflicts.append({"id": event.event_id, "error": _conflict(event)})
                else:
                    counts["stored" if result == "stored" else "duplicates"] += 1
            tally[key] = tally.get(key, 0) + 1
        for (kind, outcome), n in tally.items():
            metrics.events.labels(kind, outcome).inc(n)
        if failed is not None:  # the sender resends the whole batch; duplicates are ignored
            return _store_error(
                f"could not store {len(valid) - sum(counts.values()) - len(conflicts)} of "
                f"{len(valid)} events of the batch",
                failed,
            )
        if errors:
            return _json(
                {
                    "status": "rejected",
                    **counts,
                    "rejected": len(errors),
                    **({"conflicts": len(conflicts)} if conflicts else {}),
                    "errors": errors[:100] + conflicts[:100],
                },
                400,
            )
        if conflicts:
            answer = {"status": "conflict", **counts, "conflicts": len(conflicts)}
            return _json({**answer, "errors": conflicts[:100]}, 409)
        return _json({"status": "ok", **counts})

    async def receive_event(request: Request) -> Response:
        """A CloudEvent (binary, structured or batched mode) from a payload logger."""
        body = await request.body()
        if is_batch(request.headers.get("content-type")):
            return await receive_batch(body)
        try:
            event = event_from_http(dict(request.headers), body)
        except BadEventError as exc:
            metrics.events.labels("invalid", "rejected").inc()
            return _json({"status": "rejected", "error": str(exc)}, 400)
        kind = event.kind or "other"
        try:
            outcome = await writer.submit(event)
        except Exception as exc:
            metrics.events.labels(kind, "error").inc()
            return _store_error("could not store the event", exc)
        metrics.events.labels(kind, outcome).inc()
        if outcome == "conflict":
            return _json({"status": "conflict", "error": _conflict(event)}, 409)
        return Response(
            _STORED if outcome == "stored" else _DUPLICATE, media_type="application/json"
        )

    # Plain Starlette routes: the hot path skips FastAPI's dependency solving (~20% of the
    # CPU per event); their OpenAPI path items are written by hand (collector/openapi.py).
    app.add_route("/", receive_event, methods=["POST"], include_in_schema=False)
    app.add_route("/events", receive_event, methods=["POST"], include_in_schema=False)

    @app.post(
        "/facts",
        summary="Ingest facts (JSON records or CSV), idempotently",
        responses=api.FACTS_RESPONSES,
        openapi_extra=api.facts_request_body(),
        tags=["facts"],
    )
    async def post_facts(request: Request) -> Response:
        body = await request.body()
        try:
            raw = facts_from_body(body, request.headers.get("content-type"))
        except BadFactsBody as exc:
            metrics.facts.labels("rejected").inc()
            return _json({"status": "rejected", "errors": [str(exc)]}, 400)
        except FactsRejected as exc:  # JSON values of the wrong type
            metrics.facts.labels("rejected").inc()
            return _json({"status": "rejected", "errors": exc.errors}, 422)
        try:
            result, warnings = await run_in_threadpool(_ingest, store, raw, data_settings)
        except FactsRejected as exc:
            metrics.facts.labels("rejected").inc(len(raw))
            return _json({"status": "rejected", "errors": exc.errors}, 422)
        except StaleFacts as exc:
            metrics.facts.labels("stale").inc(exc.n)
            metrics.facts.labels("rejected").inc(len(raw) - exc.n)
            return _json({"status": "rejected", "errors": [str(exc)]}, 409)
        except ValueError as exc:
            metrics.facts.labels("rejected").inc(len(raw))
            return _json({"status": "rejected", "errors": [str(exc)]}, 422)
        metrics.count_facts(result)
        return _json({"status": "ok", **result.to_dict(), "warnings": warnings})

    @app.post(
        "/facts/withdrawals",
        summary="Withdraw facts: no longer current, audited (who, why, which token)",
        responses=api.WITHDRAWAL_RESPONSES,
        openapi_extra=api.withdrawal_request_body(),
        tags=["facts"],
    )
    async def withdraw_facts(request: Request) -> Response:
        try:
            raw = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _json({"status": "rejected", "errors": ["the body is not JSON"]}, 400)
        if not isinstance(raw, dict):
            return _json({"status": "rejected", "errors": ["the body is not a JSON object"]}, 400)
        try:
            body = api.Withdrawal.model_validate(raw)
        except ValidationError as exc:  # named without echoing the input
            errors = [
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors()[:20]
            ]
            return _json({"status": "rejected", "errors": errors}, 422)
        keys = pd.DataFrame([k.model_dump() for k in body.facts])
        credential = request.scope.get(CREDENTIAL_KEY, "open")
        try:
            result = await run_in_threadpool(
                store.facts.withdraw, keys, by=body.by, reason=body.reason, credential=credential
            )
        except UnknownFacts as exc:
            return _json({"status": "rejected", "errors": [str(exc)]}, 404)
        except ValueError as exc:
            return _json({"status": "rejected", "errors": [str(exc)]}, 422)
        metrics.facts.labels("withdrawn").inc(result.withdrawn)
        return _json({"status": "ok", **result.to_dict()})

    @app.get(
        "/forecasts/joined",
        summary="Forecasts joined with the facts of their target day",
        responses={200: {"model": list[api.JoinedForecast]}, **api.UNAVAILABLE},
        tags=["forecasts"],
    )
    async def forecasts_joined(
        limit: Annotated[int, Query(ge=1, le=100_000, description="rows at most")] = 1000,
        start: Annotated[api.IsoDate | None, Query(description="first target date")] = None,
        end: Annotated[api.IsoDate | None, Query(description="last target date")] = None,
        model_name: Annotated[
            str | None,
            Query(
                description="only this model",
                max_length=MAX_NAME_LENGTH,
                pattern=api.NO_NUL,
            ),
        ] = None,
        source: Annotated[Literal["online", "batch"] | None, Query()] = None,
        include_pending: Annotated[
            bool, Query(description="also forecasts whose fact has not arrived")
        ] = False,
    ) -> Response:
        frame = await run_in_threadpool(
            store.forecasts.with_facts,
            start,
            end,
            model_name=model_name,
            source=source,
            include_pending=include_pending,
            limit=limit,
        )
        for col in ("origin_date", "date"):
            frame[col] = frame[col].dt.strftime("%Y-%m-%d")
        frame["created_at"] = frame["created_at"].astype(str)
        return Response(frame.to_json(orient="records"), media_type="application/json")

    @app.get(
        "/inferences/{inference_id}",
        summary="One inference: request, response, forecasts",
        responses=api.INFERENCE_RESPONSES,
        tags=["events"],
    )
    async def get_inference(
        inference_id: Annotated[str, Path(pattern=api.NO_NUL, description="the event id")],
    ) -> Response:
        found = await run_in_threadpool(inferences.get, inference_id)
        if found is None:
            return _json({"error": f"no inference with id {inference_id!r}"}, 404)
        return _json(found)

    @app.get(
        "/stats",
        summary="Row counts of the store",
        responses={200: {"model": dict[str, int]}, **api.UNAVAILABLE},
    )
    async def stats() -> Response:
        return _json(await run_in_threadpool(store.counts))

    @app.get(
        "/healthz",
        summary="Liveness and database reachability",
        responses=api.HEALTH_RESPONSES,
    )
    async def healthz() -> Response:
        try:
            await run_in_threadpool(store.ping)
        except Exception as exc:
            return _json(
                {"status": "unavailable", "error": f"database unreachable: {_describe(exc)}"},
                503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return _json({"status": "ok", "writer": writer.running})

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses=api.METRICS_RESPONSES,
    )
    async def prometheus() -> Response:
        if snapshots is None:
            text = generate_latest(metrics.registry)
        else:  # reading the snapshot may query the database: off the event loop
            text = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(text, media_type=api.METRICS_CONTENT_TYPE)

    return app


def _document_event_routes(app: FastAPI, *, guarded: bool) -> None:
    """Add the CloudEvent routes (plain Starlette routes) to the app's OpenAPI document, and
    the gate's answers (freightml.collector.guard): 413 on the routes with a body; with
    ``guarded``, the bearer scheme and 401/403 on every route that needs a scope."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema["paths"] = {**api.event_paths(), **schema["paths"]}
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(api.event_schemas())
            api.document_gate(schema, route_scope, guarded=guarded)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _store_batch(
    inferences: InferenceStore,
    writer: EventWriter,
    events: list[InferenceEvent],
    on_batch: Callable[[int, float], None],
) -> list[Outcome | BaseException]:
    """Store a batch's events: in transactions of ``writer.max_batch`` events, on the event
    loop as the writer does (a batch already is a group commit). If a transaction fails,
    its events go through the writer one by one, so a bad event or a database outage is
    reported per event."""
    results: list[Outcome | BaseException] = []
    for start in range(0, len(events), writer.max_batch):
        chunk = events[start : start + writer.max_batch]
        started = time.perf_counter()
        try:
            results += inferences.record(chunk)
            on_batch(len(chunk), time.perf_counter() - started)
        except Exception:
            results += await asyncio.gather(
                *(writer.submit(e) for e in chunk), return_exceptions=True
            )
    return results


def _ingest(
    store: Store, raw: Any, data_settings: DataSettings | None
) -> tuple[IngestResult, list[str]]:
    facts, report = prepare_facts(raw, data_settings, store_regions=store.facts.station_regions)
    return store.facts.ingest(facts), [f"[{i.check}] {i.message}" for i in report.warnings]
