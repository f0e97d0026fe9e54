"""The collector's store: inference events, inferences, forecasts and facts with history.

SQLite by default (WAL, one writer at a time), PostgreSQL by URL. Every write is
idempotent: a redelivered event, a re-sent forecast or an unchanged fact changes nothing.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from freightml.collector import tables as t
from freightml.collector.events import InferenceEvent, Outcome
from freightml.collector.payloads import ForecastBody, ForecastBodyError, parse_forecast_body
from freightml.data.schema import FACT_COLUMNS, SERIES_KEY, coerce_facts

DEFAULT_URL = "sqlite:///.freightml/collector.db"
MAX_NAME_LENGTH = 128  # stations, regions and cargo types (the facts columns' width)
_WRITE = "freightml_write"  # execution option: this connection will write
_FORECAST_META = ("source", "source_id", "model_name", "model_version", "lineage", "created_at")
_FORECAST_ROW = (
    "origin_station",
    "destination_station",
    "cargo_type",
    "origin_date",
    "target_date",
    "horizon",
    "tonnes",
    "wagons",
)
_FORECAST_COLUMNS = (*_FORECAST_META[:2], *_FORECAST_ROW, *_FORECAST_META[2:])
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
_CHUNK_ROWS = 1000  # rows per multi-row INSERT (14 parameters each; SQLite allows 32766)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What one facts ingestion did: new facts, changed facts, unchanged repeats."""

    inserted: int = 0
    revised: int = 0
    duplicates: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.revised + self.duplicates

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """SQL store of the collector. ``url`` is any SQLAlchemy SQLite or PostgreSQL URL
    (``postgresql+psycopg://user:pw@host/db``). Missing tables are created unless
    ``create=False`` (then call :meth:`create_all`), as MLflow does with its stores."""

    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True, echo: bool = False) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported store URL {url!r}: use sqlite:/// or postgresql+psycopg://"
            )
        self.url = url
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(parsed, echo)
            self._insert = sqlite.insert
        else:
            self.engine = sa.create_engine(url, echo=echo, pool_pre_ping=True)
            self._insert = postgresql.insert
        self._statements: dict[str, Any] = {}
        if create:
            self.create_all()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- schema ---------------------------------------------------------------------------
    def create_all(self) -> Store:
        """Create missing tables and indexes (existing ones are left alone)."""
        try:
            t.metadata.create_all(self.engine)
        except sa.exc.DBAPIError:  # another replica created them at the same moment
            t.metadata.create_all(self.engine)
        return self

    def drop_all(self) -> None:
        """Drop the collector's tables (tests and resets only)."""
        t.metadata.drop_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)
        so two writers wait for each other instead of failing to upgrade a read lock."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    # -- events ---------------------------------------------------------------------------
    def record_event(self, event: InferenceEvent) -> Outcome:
        """Store one CloudEvent: ``stored``, or ``duplicate`` for a redelivery."""
        return self.record_events([event])[0]

    def record_events(self, events: Sequence[InferenceEvent]) -> list[Outcome]:
        """Store a batch of events in one transaction; one outcome per event, in order.

        A stored request or response creates or completes its inference (either order);
        a stored response whose body holds forecasts adds them as ``online`` forecasts.
        """
        outcomes: list[Outcome] = ["duplicate"] * len(events)
        first: dict[tuple[str, str], int] = {}
        for i, e in enumerate(events):
            first.setdefault((e.event_id, e.event_type), i)
        if not first:
            return outcomes
        now = _now()
        rows = [_event_row(events[i], now) for i in first.values()]
        with self._write() as conn:
            result = conn.execute(self._statement("events"), rows)
            stored = {(r.event_id, r.event_type): r.id for r in result}
            requests, responses = [], []
            for key, pk in stored.items():
                i = first[key]
                outcomes[i] = "stored"
                if events[i].kind == "request":
                    requests.append((events[i], pk))
                elif events[i].kind == "response":
                    responses.append((events[i], pk))
            self._join_inferences(conn, requests, responses, now)
        return outcomes

    def _join_inferences(
        self,
        conn: sa.Connection,
        requests: list[tuple[InferenceEvent, int]],
        responses: list[tuple[InferenceEvent, int]],
        now: datetime,
    ) -> None:
        if requests:
            rows = [
                _inference_row(e, now, request_event=pk, request_time=e.time) for e, pk in requests
            ]
            conn.execute(self._statement("request"), rows).close()
        if not responses:
            return
        rows, forecasts = [], []
        for e, pk in responses:
            body = _forecast_body(e)
            rows.append(
                _inference_row(
                    e,
                    now,
                    response_event=pk,
                    response_time=e.time,
                    protocol=body.protocol if body else None,
                    model_name=body.model_name if body else None,
                    model_version=body.model_version if body else None,
                    n_forecasts=len(body.rows) if body else None,
                )
            )
            if body and body.rows:
                meta = _forecast_meta(
                    "online", e.event_id, body.model_name, body.model_version, None, now
                )
                forecasts.append((meta, body.rows))
        conn.execute(self._statement("response"), rows).close()
        if forecasts:
            self._insert_forecasts(conn, forecasts)

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
                    self._insert(t.inference_events)
                    .on_conflict_do_nothing(index_elements=["event_id", "event_type"])
                    .returning(c.id, c.event_id, c.event_type)
                )
            else:
                insert = self._insert(t.inferences)
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

    # -- forecasts ------------------------------------------------------------------------
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
        """Store forecasts of a batch-scoring run; returns how many rows were new.

        ``frame`` has the series columns, ``origin_date``, ``date`` (or ``target_date``),
        ``tonnes`` and optionally ``horizon`` and ``wagons``. Writing the same run again
        adds nothing (one row per run, series, origin date and target date).
        """
        if not run_id:
            raise ValueError("write_forecasts needs a run_id (the batch run that made them)")
        rows = _forecast_frame_rows(frame)
        if not rows:
            return 0
        version = None if model_version is None else str(model_version)
        meta = _forecast_meta(source, str(run_id), model_name, version, lineage, _now())
        with self._write() as conn:
            return self._insert_forecasts(conn, [(meta, rows)])

    def _insert_forecasts(
        self, conn: sa.Connection, groups: list[tuple[dict[str, Any], list[dict[str, Any]]]]
    ) -> int:
        """INSERT ... ON CONFLICT DO NOTHING of forecast rows (each group: the metadata of
        one response or run, and its rows); returns how many rows were new.

        The collector's hot path (28 rows a response), so it skips SQLAlchemy's per-row
        parameter processing and hands tuples to the driver. SQLite gets multi-row VALUES
        statements of ``_CHUNK_ROWS`` rows: sqlite3's executemany steps (and gives up the
        GIL) once per row. psycopg gets one single-row statement with executemany, which
        it pipelines; a 14,000-parameter statement would cost it ~70 ms just to parse the
        placeholders. On SQLite, dates and times are written in SQLAlchemy's own text
        formats so that reads through SQLAlchemy agree.
        """
        sqlite_ = self.dialect == "sqlite"
        params: list[tuple[Any, ...]] = []
        for meta, rows in groups:
            head = (meta["source"], meta["source_id"])
            created = _sqlite_value(meta["created_at"]) if sqlite_ else meta["created_at"]
            tail = (meta["model_name"], meta["model_version"], meta["lineage"], created)
            for r in rows:
                origin, target = r["origin_date"], r["target_date"]
                if sqlite_:
                    origin, target = origin.isoformat(), target.isoformat()
                params.append(
                    (
                        *head,
                        r["origin_station"],
                        r["destination_station"],
                        r["cargo_type"],
                        origin,
                        target,
                        r["horizon"],
                        r["tonnes"],
                        r["wagons"],
                        *tail,
                    )
                )
        if not params:
            return 0
        if not sqlite_:
            result = conn.exec_driver_sql(_forecast_insert_sql(self.dialect, 1), params)
            return max(int(result.rowcount), 0)
        inserted = 0
        for first in range(0, len(params), _CHUNK_ROWS):
            chunk = params[first : first + _CHUNK_ROWS]
            flat = tuple(value for row in chunk for value in row)
            result = conn.exec_driver_sql(_forecast_insert_sql(self.dialect, len(chunk)), flat)
            inserted += max(int(result.rowcount), 0)
        return inserted

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
        """Forecasts joined to the current fact of their series and target date.

        One row per forecast: the forecast's ``tonnes`` and ``wagons`` next to the fact's
        ``volume_tonnes``, ``fact_wagons`` and ``fact_revision`` (columns keep their own
        table's names). ``start``/``end`` bound the target ``date`` (inclusive).
        Forecasts whose fact has not arrived are left out unless ``include_pending``
        (then the fact columns are NA).
        """
        f, a = t.forecasts.alias("f"), t.facts.alias("a")
        on = sa.and_(*(f.c[k] == a.c[k] for k in SERIES_KEY), a.c.date == f.c.target_date)
        query = (
            sa.select(
                f.c.source,
                f.c.source_id,
                f.c.model_name,
                f.c.model_version,
                f.c.lineage,
                *(f.c[k] for k in SERIES_KEY),
                a.c.origin_region,
                a.c.destination_region,
                f.c.origin_date,
                f.c.target_date.label("date"),
                f.c.horizon,
                f.c.tonnes,
                f.c.wagons,
                a.c.volume_tonnes,
                a.c.wagons.label("fact_wagons"),
                a.c.revision.label("fact_revision"),
                f.c.created_at,
            )
            .select_from(f.join(a, on, isouter=include_pending))
            .order_by(f.c.target_date, f.c.id)
        )
        if start is not None:
            query = query.where(f.c.target_date >= _as_date(start))
        if end is not None:
            query = query.where(f.c.target_date <= _as_date(end))
        if model_name is not None:
            query = query.where(f.c.model_name == model_name)
        if source is not None:
            query = query.where(f.c.source == source)
        if limit is not None:
            query = query.limit(int(limit))
        with self.engine.connect() as conn:
            result = conn.execute(query)
            out = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for col in ("origin_date", "date"):
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
        for col in ("tonnes", "volume_tonnes"):
            out[col] = out[col].astype("float64")
        for col in ("wagons", "fact_wagons", "fact_revision"):
            out[col] = out[col].astype("Int64")
        out["horizon"] = out["horizon"].astype("int64")
        return out

    # -- facts ----------------------------------------------------------------------------
    def ingest_facts(self, df: pd.DataFrame) -> IngestResult:
        """Upsert facts: new ones are inserted, changed ones revised (the old value goes to
        facts_revisions with its validity interval), unchanged repeats counted as duplicates.

        ``df`` is coerced to the facts contract; a (series, date) key twice in ``df`` is an
        error. Runs in one transaction: all of ``df`` lands or none of it.
        """
        new = coerce_facts(df, categorical=False).reset_index(drop=True)
        if new.empty:
            return IngestResult()
        _check_facts(new)
        key = [*SERIES_KEY, "date"]
        now = _now()
        with self._write() as conn:
            if self.dialect == "postgresql":  # concurrent ingests wait for each other
                conn.exec_driver_sql("LOCK TABLE facts IN SHARE ROW EXCLUSIVE MODE")
            old = self._facts_between(conn, new["date"].min(), new["date"].max(), with_meta=True)
            merged = new.merge(old, on=key, how="left", suffixes=("", "_old"), indicator=True)
            found = (merged.pop("_merge") == "both").to_numpy()
            same = found & _same_values(merged)
            revised = merged[found & ~same]
            inserted = merged[~found]
            if len(inserted):
                rows = _records(inserted[list(FACT_COLUMNS)], revision=1, valid_from=now)
                conn.execute(sa.insert(t.facts), rows)
            if len(revised):
                self._revise(conn, revised, now)
        return IngestResult(len(inserted), len(revised), int(same.sum()))

    def _revise(self, conn: sa.Connection, revised: pd.DataFrame, now: datetime) -> None:
        history = revised[[*SERIES_KEY, "date"]].copy()
        for col in ("origin_region", "destination_region", "volume_tonnes", "wagons"):
            history[col] = revised[f"{col}_old"]
        history["wagons"] = history["wagons"].astype("int64")
        history["revision"] = revised["revision"].astype("int64")
        history["valid_from"] = revised["valid_from"]
        conn.execute(sa.insert(t.facts_revisions), _records(history, valid_to=now))
        c = t.facts.c
        update = (
            sa.update(t.facts)
            .where(*(c[k] == sa.bindparam(f"k_{k}") for k in (*SERIES_KEY, "date")))
            .values(
                origin_region=sa.bindparam("v_origin_region"),
                destination_region=sa.bindparam("v_destination_region"),
                volume_tonnes=sa.bindparam("v_volume_tonnes"),
                wagons=sa.bindparam("v_wagons"),
                revision=c.revision + 1,
                valid_from=now,
            )
        )
        frame = revised[list(FACT_COLUMNS)].copy()
        frame.columns = [
            f"k_{col}" if col in (*SERIES_KEY, "date") else f"v_{col}" for col in frame.columns
        ]
        conn.execute(update, _records(frame))

    def facts_frame(
        self, start: date | str | None = None, end: date | str | None = None
    ) -> pd.DataFrame:
        """Current facts (latest revision) in the facts schema, sorted by series and date;
        ``start``/``end`` are inclusive dates."""
        with self.engine.connect() as conn:
            frame = self._facts_between(conn, start, end, with_meta=False)
        facts = coerce_facts(frame)
        return facts.sort_values([*SERIES_KEY, "date"], kind="stable").reset_index(drop=True)

    def fact_history(
        self, origin_station: str, destination_station: str, cargo_type: str, day: date | str
    ) -> pd.DataFrame:
        """Every value one fact has had, oldest first (revision, values, validity)."""
        key = dict(
            zip(SERIES_KEY, (origin_station, destination_station, cargo_type)), date=_as_date(day)
        )
        cols = [
            "revision",
            "volume_tonnes",
            "wagons",
            "origin_region",
            "destination_region",
            "valid_from",
        ]
        h, f = t.facts_revisions.c, t.facts.c
        with self.engine.connect() as conn:
            past = conn.execute(
                sa.select(*(h[c] for c in cols), h.valid_to).where(
                    *(h[k] == v for k, v in key.items())
                )
            ).fetchall()
            current = conn.execute(
                sa.select(*(f[c] for c in cols), sa.null().label("valid_to")).where(
                    *(f[k] == v for k, v in key.items())
                )
            ).fetchall()
        out = pd.DataFrame([*past, *current], columns=[*cols, "valid_to"])
        return out.sort_values("revision").reset_index(drop=True)

    def _facts_between(
        self, conn: sa.Connection, start: Any, end: Any, *, with_meta: bool
    ) -> pd.DataFrame:
        c = t.facts.c
        cols = [c[name] for name in FACT_COLUMNS]
        if with_meta:
            cols += [c.revision, c.valid_from]
        query = sa.select(*cols)
        if start is not None:
            query = query.where(c.date >= _as_date(start))
        if end is not None:
            query = query.where(c.date <= _as_date(end))
        result = conn.execute(query)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
        frame["volume_tonnes"] = frame["volume_tonnes"].astype("float64")
        frame["wagons"] = frame["wagons"].astype("int64")
        return frame

    # -- reading --------------------------------------------------------------------------
    def inference(self, event_id: str) -> dict[str, Any] | None:
        """One inference by its id (the CloudEvent id): request and response events (body
        parsed), the joined metadata and its forecasts; None if nothing has that id."""
        e, i, f = t.inference_events.c, t.inferences.c, t.forecasts.c
        with self.engine.connect() as conn:
            joined = conn.execute(sa.select(t.inferences).where(i.inference_id == event_id)).first()
            events = conn.execute(
                sa.select(t.inference_events).where(e.event_id == event_id).order_by(e.id)
            ).fetchall()
            if joined is None and not events:
                return None
            forecast_rows = conn.execute(
                sa.select(t.forecasts)
                .where(f.source == "online", f.source_id == event_id)
                .order_by(f.id)
            ).fetchall()
        out: dict[str, Any] = (
            dict(joined._mapping) if joined is not None else {"inference_id": event_id}
        )
        out["complete"] = bool(joined and joined.request_event and joined.response_event)
        by_type = {row.event_type: _event_dict(row) for row in events}
        out["request"] = by_type.pop("org.kubeflow.serving.inference.request", None)
        out["response"] = by_type.pop("org.kubeflow.serving.inference.response", None)
        out["other_events"] = list(by_type.values())
        out["forecasts"] = [dict(r._mapping) for r in forecast_rows]
        return out

    def counts(self) -> dict[str, int]:
        """Row counts: events, inferences (and complete ones), forecasts, facts, revisions."""
        i = t.inferences.c
        queries = {
            "events": sa.select(sa.func.count()).select_from(t.inference_events),
            "inferences": sa.select(sa.func.count()).select_from(t.inferences),
            "inferences_complete": sa.select(sa.func.count())
            .select_from(t.inferences)
            .where(i.request_event.is_not(None), i.response_event.is_not(None)),
            "forecasts": sa.select(sa.func.count()).select_from(t.forecasts),
            "facts": sa.select(sa.func.count()).select_from(t.facts),
            "facts_revisions": sa.select(sa.func.count()).select_from(t.facts_revisions),
        }
        with self.engine.connect() as conn:
            return {name: int(conn.execute(q).scalar_one()) for name, q in queries.items()}


# --- engines ---------------------------------------------------------------------------


def _sqlite_engine(url: sa.URL, echo: bool) -> sa.Engine:
    database = url.database
    memory = not database or database == ":memory:" or database.startswith("file::memory:")
    if memory:
        engine = sa.create_engine(
            url, echo=echo, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 60}
        )

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint, fast
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


# --- rows ------------------------------------------------------------------------------


def _event_row(e: InferenceEvent, now: datetime) -> dict[str, Any]:
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
        "received_at": now,
    }


def _inference_row(e: InferenceEvent, now: datetime, **side: Any) -> dict[str, Any]:
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
        "updated_at": now,
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


def _forecast_frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    df = frame.rename(columns={"date": "target_date"})
    required = [*SERIES_KEY, "origin_date", "target_date", "tonnes"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"forecasts frame is missing column(s) {missing} (need {required}, 'date' may "
            f"stand for 'target_date'); columns: {[str(c) for c in frame.columns]}"
        )
    if df.empty:
        return []
    out = pd.DataFrame({k: df[k].astype(str) for k in SERIES_KEY})
    for col in ("origin_date", "target_date"):
        parsed = pd.to_datetime(df[col], errors="coerce")
        if parsed.isna().any():
            raise ValueError(
                f"forecasts column {col} has {int(parsed.isna().sum())} unparsable date(s)"
            )
        out[col] = parsed.dt.normalize()
    tonnes = pd.to_numeric(df["tonnes"], errors="coerce").astype("float64")
    if not np.isfinite(tonnes.to_numpy()).all():
        raise ValueError(
            f"forecasts column tonnes has {int((~np.isfinite(tonnes)).sum())} non-finite value(s)"
        )
    out["tonnes"] = tonnes.to_numpy()
    if "horizon" in df.columns:
        out["horizon"] = pd.to_numeric(df["horizon"]).astype("int64").to_numpy()
    else:
        out["horizon"] = (out["target_date"] - out["origin_date"]).dt.days.astype("int64")
    if "wagons" in df.columns:
        out["wagons"] = pd.to_numeric(df["wagons"]).round().astype("Int64").to_numpy()
    else:
        out["wagons"] = None
    return _records(out)


def _records(frame: pd.DataFrame, **constants: Any) -> list[dict[str, Any]]:
    """Plain-Python rows for executemany: dates as ``date``, NaN/NA as None, numpy
    scalars as Python ones (what the DB drivers accept)."""
    columns: dict[str, list[Any]] = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            if col in ("valid_from", "valid_to", "created_at"):
                values = [None if pd.isna(v) else v.to_pydatetime() for v in s]
            else:
                values = [None if pd.isna(v) else v.date() for v in s]
        elif isinstance(s.dtype, pd.Int64Dtype):
            values = [None if pd.isna(v) else int(v) for v in s]
        else:
            arr = s.to_numpy(dtype=object)
            values = [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else v
                for v in arr.tolist()
            ]
        columns[str(col)] = values
    names = list(columns)
    rows = [dict(zip(names, vals)) for vals in zip(*columns.values())] if names else []
    if constants:
        for row in rows:
            row.update(constants)
    return rows


def _same_values(merged: pd.DataFrame) -> np.ndarray:
    same = np.isclose(
        merged["volume_tonnes"].to_numpy(dtype=float),
        merged["volume_tonnes_old"].to_numpy(dtype=float),
        rtol=1e-12,
        atol=1e-9,
    )
    same &= merged["wagons"].to_numpy() == merged["wagons_old"].to_numpy()
    for col in ("origin_region", "destination_region"):
        same &= merged[col].astype(str).to_numpy() == merged[f"{col}_old"].astype(str).to_numpy()
    return same


def _check_facts(facts: pd.DataFrame) -> None:
    key = [*SERIES_KEY, "date"]
    dup = facts.duplicated(key, keep=False)
    if dup.any():
        r = facts[dup].iloc[0]
        raise ValueError(
            f"{int(dup.sum())} facts share their (series, date) key with another row (first: "
            f"{r['date'].date()} {r['origin_station']}->{r['destination_station']} "
            f"{r['cargo_type']}); send one value per series and day"
        )
    for col in (
        "origin_station",
        "destination_station",
        "cargo_type",
        "origin_region",
        "destination_region",
    ):
        s = facts[col]
        if s.isna().any() or (s.astype(str).str.len() == 0).any():
            raise ValueError(f"facts column {col} has empty values")
        too_long = s.astype(str).str.len() > MAX_NAME_LENGTH
        if too_long.any():
            raise ValueError(
                f"facts column {col} has values longer than {MAX_NAME_LENGTH} characters "
                f"(first: {s[too_long].iloc[0][:40]!r}...)"
            )
    if not np.isfinite(facts["volume_tonnes"].to_numpy()).all():
        raise ValueError("facts column volume_tonnes has NaN or infinite values")


def _forecast_meta(
    source: str,
    source_id: str,
    model_name: str | None,
    model_version: str | None,
    lineage: str | None,
    created_at: datetime,
) -> dict[str, Any]:
    return {
        "source": source,
        "source_id": source_id,
        "model_name": model_name,
        "model_version": model_version,
        "lineage": lineage,
        "created_at": created_at,
    }


@lru_cache(maxsize=32)
def _forecast_insert_sql(dialect: str, n_rows: int) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    row = "(" + ",".join([mark] * len(_FORECAST_COLUMNS)) + ")"
    return (
        f"INSERT INTO {t.forecasts.name} ({', '.join(_FORECAST_COLUMNS)}) "
        f"VALUES {','.join([row] * n_rows)} ON CONFLICT DO NOTHING"
    )


def _sqlite_value(value: Any) -> Any:
    """A value as SQLAlchemy's SQLite types store it (DATE and DATETIME are text)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _as_date(value: date | str | pd.Timestamp) -> date:
    return pd.Timestamp(value).date()
