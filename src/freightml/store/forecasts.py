"""The forecasts table: online forecasts (from payload-log responses) and batch-scoring
runs, and their join with the facts of their target day."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

import freightml.store.tables as t
from freightml.domain import SERIES_KEY
from freightml.store.database import (
    Database,
    as_date,
    count,
    now,
    records,
    register_counts,
    sqlite_value,
)

_FORECAST_META = (
    "source",
    "source_id",
    "model_name",
    "model_version",
    "lineage",
    "created_at",
    "environment",
)
_FORECAST_ROW = (
    "origin_station",
    "destination_station",
    "cargo_type",
    "origin_date",
    "target_date",
    "horizon",
    "tonnes",
    "wagons",
    "tonnes_p10",
    "tonnes_p90",
)
BAND_COLUMNS = ("tonnes_p10", "tonnes_p90")  # the 80% interval, when the model has one
_FORECAST_COLUMNS = (*_FORECAST_META[:2], *_FORECAST_ROW, *_FORECAST_META[2:])
_CHUNK_ROWS = 1000  # rows per multi-row INSERT (16 parameters each; SQLite allows 32766)

# One group of forecast rows: the metadata of one response or run, and its rows.
ForecastGroup = tuple[dict[str, Any], list[dict[str, Any]]]


register_counts({"forecasts": count(t.forecasts)})


class ForecastStore:
    """Writes forecasts idempotently (one row per source, series, origin and target date)
    and reads them joined with facts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def write(
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
        ``tonnes`` and optionally ``horizon``, ``wagons`` and the 80% interval
        (``tonnes_p10``, ``tonnes_p90``). Writing the same run again
        adds nothing (one row per run, series, origin date and target date).
        """
        if not run_id:
            raise ValueError("write_forecasts needs a run_id (the batch run that made them)")
        rows = _forecast_frame_rows(frame)
        if not rows:
            return 0
        version = None if model_version is None else str(model_version)
        meta = forecast_meta(source, str(run_id), model_name, version, lineage, now())
        with self.db.write() as conn:
            return self.insert(conn, [(meta, rows)])

    def insert(self, conn: sa.Connection, groups: list[ForecastGroup]) -> int:
        """INSERT ... ON CONFLICT DO NOTHING of forecast rows in the caller's transaction;
        returns how many rows were new.

        The collector's hot path (28 rows a response), so it skips SQLAlchemy's per-row
        parameter processing and hands tuples to the driver. SQLite gets multi-row VALUES
        statements of ``_CHUNK_ROWS`` rows: sqlite3's executemany steps (and gives up the
        GIL) once per row. psycopg gets one single-row statement with executemany, which
        it pipelines; a 14,000-parameter statement would cost it ~70 ms just to parse the
        placeholders. On SQLite, dates and times are written in SQLAlchemy's own text
        formats so that reads through SQLAlchemy agree.
        """
        sqlite_ = self.db.dialect == "sqlite"
        params: list[tuple[Any, ...]] = []
        for meta, rows in groups:
            head = (meta["source"], meta["source_id"])
            created = sqlite_value(meta["created_at"]) if sqlite_ else meta["created_at"]
            tail = (
                meta["model_name"],
                meta["model_version"],
                meta["lineage"],
                created,
                meta.get("environment"),
            )
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
                        r.get("tonnes_p10"),
                        r.get("tonnes_p90"),
                        *tail,
                    )
                )
        if not params:
            return 0
        if not sqlite_:
            result = conn.exec_driver_sql(_forecast_insert_sql(self.db.dialect, 1), params)
            return max(int(result.rowcount), 0)
        inserted = 0
        for first in range(0, len(params), _CHUNK_ROWS):
            chunk = params[first : first + _CHUNK_ROWS]
            flat = tuple(value for row in chunk for value in row)
            result = conn.exec_driver_sql(_forecast_insert_sql(self.db.dialect, len(chunk)), flat)
            inserted += max(int(result.rowcount), 0)
        return inserted

    def with_facts(
        self,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        model_name: str | None = None,
        source: Literal["online", "batch"] | None = None,
        include_pending: bool = False,
        limit: int | None = None,
        environment: str | None = None,
    ) -> pd.DataFrame:
        """Forecasts joined to the current fact of their series and target date.

        One row per forecast: the forecast's ``tonnes``, ``wagons`` and 80% interval
        (``tonnes_p10``, ``tonnes_p90``; NaN without one) next to the fact's
        ``volume_tonnes``, ``fact_wagons`` and ``fact_revision`` (columns keep their own
        table's names). ``start``/``end`` bound the target ``date`` (inclusive).
        Forecasts whose fact has not arrived are left out unless ``include_pending``
        (then the fact columns are NA). ``environment`` keeps only the online forecasts
        answered in that serving environment (namespace).
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
                f.c.tonnes_p10,
                f.c.tonnes_p90,
                a.c.volume_tonnes,
                a.c.wagons.label("fact_wagons"),
                a.c.revision.label("fact_revision"),
                f.c.created_at,
            )
            .select_from(f.join(a, on, isouter=include_pending))
            .order_by(f.c.target_date, f.c.id)
        )
        if start is not None:
            query = query.where(f.c.target_date >= as_date(start))
        if end is not None:
            query = query.where(f.c.target_date <= as_date(end))
        if model_name is not None:
            query = query.where(f.c.model_name == model_name)
        if source is not None:
            query = query.where(f.c.source == source)
        if environment is not None:
            query = query.where(f.c.environment == environment)
        if limit is not None:
            query = query.limit(int(limit))
        with self.db.read() as conn:
            result = conn.execute(query)
            out = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for col in ("origin_date", "date"):
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
        for col in ("tonnes", "volume_tonnes", *BAND_COLUMNS):
            out[col] = out[col].astype("float64")
        for col in ("wagons", "fact_wagons", "fact_revision"):
            out[col] = out[col].astype("Int64")
        out["horizon"] = out["horizon"].astype("int64")
        return out

    def online_between(
        self, start: date | str, end: date | str, *, environment: str | None = None
    ) -> pd.DataFrame:
        """The online forecast rows whose forecast origin falls in ``[start, end]``: the
        series, ``origin_date``, ``target_date``, ``horizon`` and ``tonnes`` (the requests
        answered in those days, whether or not their facts have arrived); ``environment``
        keeps one serving environment's."""
        f = t.forecasts.c
        query = (
            sa.select(
                *(f[k] for k in SERIES_KEY), f.origin_date, f.target_date, f.horizon, f.tonnes
            )
            .where(
                f.source == "online",
                f.origin_date >= as_date(start),
                f.origin_date <= as_date(end),
                *([f.environment == environment] if environment is not None else []),
            )
            .order_by(f.id)
        )
        with self.db.read() as conn:
            result = conn.execute(query)
            out = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for col in ("origin_date", "target_date"):
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
        out["horizon"] = out["horizon"].astype("int64")
        out["tonnes"] = out["tonnes"].astype("float64")
        return out

    def of_source(self, conn: sa.Connection, source: str, source_id: str) -> list[dict[str, Any]]:
        """The forecast rows of one response or run, in insertion order."""
        f = t.forecasts.c
        rows = conn.execute(
            sa.select(t.forecasts)
            .where(f.source == source, f.source_id == source_id)
            .order_by(f.id)
        ).fetchall()
        return [dict(r._mapping) for r in rows]


def forecast_meta(
    source: str,
    source_id: str,
    model_name: str | None,
    model_version: str | None,
    lineage: str | None,
    created_at: datetime,
    environment: str | None = None,
) -> dict[str, Any]:
    return {
        "source": source,
        "source_id": source_id,
        "model_name": model_name,
        "model_version": model_version,
        "lineage": lineage,
        "created_at": created_at,
        "environment": environment,
    }


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
    for col in BAND_COLUMNS:
        band = pd.to_numeric(df[col], errors="coerce") if col in df.columns else None
        out[col] = None if band is None else band.where(np.isfinite(band)).astype(object)
    return records(out)


@lru_cache(maxsize=32)
def _forecast_insert_sql(dialect: str, n_rows: int) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    row = "(" + ",".join([mark] * len(_FORECAST_COLUMNS)) + ")"
    return (
        f"INSERT INTO {t.forecasts.name} ({', '.join(_FORECAST_COLUMNS)}) "
        f"VALUES {','.join([row] * n_rows)} ON CONFLICT DO NOTHING"
    )
