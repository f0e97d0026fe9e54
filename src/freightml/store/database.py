"""The database under every table family: engine, dialect, transactions, value helpers,
the one ``metadata`` every family declares its tables on, and the row counts they report.

SQLite by default (WAL, one writer at a time), PostgreSQL by URL.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

DEFAULT_URL = "sqlite:///.freightml/collector.db"
# Seconds to wait for a PostgreSQL connection (unless the URL sets connect_timeout): an
# unreachable server then fails a write in bounded time instead of the OS's minutes.
PG_CONNECT_TIMEOUT_S = 10
# SQLite errors that pass: another writer holds the lock, the file or disk is unusable.
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
    "readonly database",
)
_WRITE = "freightml_write"  # execution option: this connection will write

# Every table of the store of record, whichever package's family declares it.
metadata = sa.MetaData()
# Named row counts (``Store.counts``, the collector's /stats), registered by each family.
COUNT_QUERIES: dict[str, sa.Select[Any]] = {}


def register_counts(queries: Mapping[str, sa.Select[Any]]) -> None:
    """Add a family's named ``SELECT count(*)`` queries to the store's row counts."""
    COUNT_QUERIES.update(queries)


class Database:
    """One SQLAlchemy engine over a SQLite or PostgreSQL URL, shared by the table families.

    ``url`` is any SQLAlchemy SQLite or PostgreSQL URL (``postgresql+psycopg://user:pw@host/db``).
    """

    def __init__(self, url: str = DEFAULT_URL, *, echo: bool = False, create: bool = True) -> None:
        parsed = make_url(url)
        dialect = parsed.get_backend_name()
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported store URL {url!r}: use sqlite:/// or postgresql+psycopg://"
            )
        self.url = url
        self.create = create  # whether ``ensure`` creates a family's missing tables
        self._ensured: set[str] = set()
        self.dialect: Literal["sqlite", "postgresql"] = dialect  # type: ignore[assignment]
        # the dialect's INSERT, which has ON CONFLICT clauses
        self.insert: Callable[[sa.Table], Any]
        if dialect == "sqlite":
            self.engine = _sqlite_engine(parsed, echo)
            self.insert = sqlite.insert
        else:
            connect_args = {}
            if "connect_timeout" not in parsed.query:
                connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
            self.engine = sa.create_engine(
                url, echo=echo, pool_pre_ping=True, connect_args=connect_args
            )
            self.insert = postgresql.insert

    def create_all(self) -> None:
        """Create every declared table and index that is missing (existing ones are left
        alone): an index added to a table in a later release is created on a store made
        before it, and so is a nullable column (e.g. the forecasts' interval bounds), with
        ALTER TABLE ADD COLUMN."""
        self._create(metadata.sorted_tables)

    def ensure(self, *tables: sa.Table) -> None:
        """Create ``tables`` (as ``create_all`` does) unless this process did already or the
        database was opened with ``create=False``: a table family calls it when it is built."""
        missing = [t for t in tables if t.name not in self._ensured]
        if self.create and missing:
            self._create(missing)

    def _create(self, tables: list[sa.Table]) -> None:
        try:
            metadata.create_all(self.engine, tables=tables)
        except sa.exc.DBAPIError:  # another replica created them at the same moment
            metadata.create_all(self.engine, tables=tables)
        self._add_missing_columns(tables)
        for table in tables:
            for index in table.indexes:
                index.create(self.engine, checkfirst=True)
        self._ensured.update(t.name for t in tables)

    def _add_missing_columns(self, tables: list[sa.Table]) -> None:
        inspector = sa.inspect(self.engine)
        for table in tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                if not column.nullable or column.primary_key:
                    raise RuntimeError(
                        f"the store's table {table.name} lacks the required column "
                        f"{column.name}: migrate it by hand"
                    )
                kind = column.type.compile(dialect=self.engine.dialect)
                ddl = f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"
                try:
                    with self.engine.begin() as conn:
                        conn.execute(sa.text(ddl))
                except sa.exc.DBAPIError:  # another replica added it at the same moment
                    if column.name not in {
                        c["name"] for c in sa.inspect(self.engine).get_columns(table.name)
                    }:
                        raise

    def drop_all(self) -> None:
        metadata.drop_all(self.engine)
        self._ensured.clear()

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def read(self) -> sa.Connection:
        """A connection for reading (use as a context manager)."""
        return self.engine.connect()

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)
        so two writers wait for each other instead of failing to upgrade a read lock."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be used right now (down, unreachable,
    restarting, locked, out of connections), so the same write may succeed later; as
    opposed to an error of the data or the statement."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.OperationalError) and isinstance(exc.orig, sqlite3.Error):
        # sqlite3 reports a missing table or bad SQL as OperationalError too
        message = str(exc.orig).lower()
        return any(m in message for m in _SQLITE_UNAVAILABLE)
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError)


def _sqlite_engine(url: sa.URL, echo: bool) -> sa.Engine:
    database = url.database
    memory = not database or database == ":memory:" or database.startswith("file::memory:")
    if memory:
        engine = sa.create_engine(
            url, echo=echo, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        Path(str(database)).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
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


# --- values ----------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def as_date(value: date | str | pd.Timestamp) -> date:
    return pd.Timestamp(value).date()


def count(table: sa.Table, *where: Any) -> sa.Select[Any]:
    """``SELECT count(*) FROM table [WHERE ...]``."""
    return sa.select(sa.func.count()).select_from(table).where(*where)


def records(frame: pd.DataFrame, **constants: Any) -> list[dict[str, Any]]:
    """Plain-Python rows for executemany: naive datetimes as ``date`` (the facts' days),
    zoned ones and the bookkeeping times as ``datetime``, NaN/NA as None, numpy scalars as
    Python ones (what the DB drivers accept)."""
    columns: dict[str, list[Any]] = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            # times with a zone stay times; naive ones are the facts' days
            if isinstance(s.dtype, pd.DatetimeTZDtype) or col in (
                "valid_from",
                "valid_to",
                "created_at",
            ):
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
    rows = (
        [dict(zip(names, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]
        if names
        else []
    )
    if constants:
        for row in rows:
            row.update(constants)
    return rows


def sqlite_value(value: Any) -> Any:
    """A value as SQLAlchemy's SQLite types store it (DATE and DATETIME are text)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value
