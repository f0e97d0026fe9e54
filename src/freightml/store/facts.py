"""The facts and facts_revisions tables: the current value of each fact (series, day) and
every value it had before, with its validity interval."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

import freightml.store.tables as t
from freightml.data.schema import FACT_COLUMNS, REPORTED_AT, coerce_facts
from freightml.domain import SERIES_KEY
from freightml.store.database import Database, as_date, count, now, records, register_counts

MAX_NAME_LENGTH = 128  # stations, regions and cargo types (the facts columns' width)
_KEY = [*SERIES_KEY, "date"]


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


class StaleFacts(ValueError):
    """Facts older (by their ``reported_at``) than the values the store holds; nothing of
    the batch was stored. ``rows`` says which."""

    def __init__(self, rows: list[str], n: int) -> None:
        self.rows, self.n = rows, n
        shown = "; ".join(rows) + (f"; and {n - len(rows)} more" if n > len(rows) else "")
        super().__init__(
            f"{n} fact(s) are stale: reported at or before the value the store holds, with "
            f"another value ({shown}); nothing was stored"
        )


@dataclass(frozen=True)
class FactDays:
    """Facts in a date range: rows, distinct days, first and last day (None when none)."""

    rows: int
    days: int
    first: date | None
    last: date | None


@dataclass(frozen=True)
class WithdrawResult:
    """What one withdrawal did: facts withdrawn now, and keys withdrawn before (a repeat)."""

    withdrawn: int = 0
    already: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class UnknownFacts(LookupError):
    """Keys the store never held: nothing of the withdrawal was done."""

    def __init__(self, rows: list[str], n: int) -> None:
        self.rows, self.n = rows, n
        shown = "; ".join(rows) + (f"; and {n - len(rows)} more" if n > len(rows) else "")
        super().__init__(f"{n} fact(s) to withdraw are not in the store ({shown}); none withdrawn")


MAX_REASON_LENGTH = 1000


register_counts(
    {
        "facts": count(t.facts),
        "facts_revisions": count(t.facts_revisions),
        "fact_withdrawals": count(t.fact_withdrawals),
    }
)


class FactStore:
    """Upserts facts idempotently, keeping every superseded value as a revision."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ingest(self, df: pd.DataFrame) -> IngestResult:
        """Upsert facts: new ones are inserted, changed ones revised (the old value goes to
        facts_revisions with its validity interval), unchanged repeats counted as duplicates.

        ``df`` is coerced to the facts contract; a (series, date) key twice in ``df`` is an
        error. Runs in one transaction: all of ``df`` lands or none of it. With a
        ``reported_at`` column (when the source produced each value), a changed value that
        is not reported after the stored one is stale: StaleFacts, and nothing is stored
        (without it, the order of arrival decides).
        """
        reported = reported_times(df)
        new = coerce_facts(df, categorical=False).reset_index(drop=True)
        if new.empty:
            return IngestResult()
        new[REPORTED_AT] = reported.reset_index(drop=True)
        _check_facts(new)
        stamp = now()
        with self.db.write() as conn:
            if self.db.dialect == "postgresql":  # concurrent ingests wait for each other
                conn.exec_driver_sql("LOCK TABLE facts IN SHARE ROW EXCLUSIVE MODE")
            old = _facts_between(conn, new["date"].min(), new["date"].max(), with_meta=True)
            merged = new.merge(old, on=_KEY, how="left", suffixes=("", "_old"), indicator=True)
            found = (merged.pop("_merge") == "both").to_numpy()
            same = found & _same_values(merged)
            stale = found & ~same & _not_after(merged[REPORTED_AT], merged[f"{REPORTED_AT}_old"])
            if stale.any():
                raise StaleFacts(_describe(merged[stale]), int(stale.sum()))
            revised = merged[found & ~same]
            inserted = merged[~found]
            if len(inserted):
                columns = [*FACT_COLUMNS, REPORTED_AT]
                rows = records(inserted[columns], revision=1, valid_from=stamp)
                conn.execute(sa.insert(t.facts), rows)
            if len(revised):
                _revise(conn, revised, stamp)
        return IngestResult(len(inserted), len(revised), int(same.sum()))

    def withdraw(
        self, keys: pd.DataFrame, *, by: str, reason: str, credential: str = "local"
    ) -> WithdrawResult:
        """Withdraw the current facts of ``keys`` (series key columns and ``date``): each
        value moves to facts_revisions, and a row of fact_withdrawals says who (``by``, as
        declared; ``credential``, which token), when and why. Keys withdrawn before count as
        ``already``; a key the store never held raises UnknownFacts and nothing is done. One
        transaction. Readers (the predictor, monitoring, retraining) no longer see them."""
        by, reason = by.strip(), reason.strip()
        if not by or not reason:
            raise ValueError("a withdrawal needs who asks for it (by) and why (reason)")
        if len(reason) > MAX_REASON_LENGTH or len(by) > 255:
            raise ValueError(f"by is at most 255 characters, reason {MAX_REASON_LENGTH}")
        missing = [c for c in _KEY if c not in keys.columns]
        if missing:
            raise ValueError(f"facts to withdraw lack columns {missing}; each needs {_KEY}")
        wanted = keys[_KEY].copy()
        wanted["date"] = pd.to_datetime(wanted["date"], errors="coerce")
        if wanted["date"].isna().any():
            raise ValueError("facts to withdraw have dates that are not YYYY-MM-DD")
        for col in SERIES_KEY:
            wanted[col] = wanted[col].astype(str)
        wanted = wanted.drop_duplicates().reset_index(drop=True)
        if wanted.empty:
            return WithdrawResult()
        stamp = now()
        with self.db.write() as conn:
            start, end = wanted["date"].min(), wanted["date"].max()
            current = _facts_between(conn, start, end, with_meta=True)
            found = wanted.merge(current, on=_KEY, how="left", indicator=True)
            here = (found.pop("_merge") == "both").to_numpy()
            gone = found.loc[~here, _KEY]
            before = _withdrawn_keys(conn, start, end)
            repeat = gone.merge(before, on=_KEY, how="left", indicator=True)
            unknown = gone[(repeat["_merge"] == "left_only").to_numpy()]
            if len(unknown):
                raise UnknownFacts(_name_keys(unknown), len(unknown))
            rows = found.loc[here]
            if len(rows):
                history = rows[[*FACT_COLUMNS, "revision", "valid_from", REPORTED_AT]].copy()
                conn.execute(sa.insert(t.facts_revisions), records(history, valid_to=stamp))
                audit = rows[[*_KEY, "volume_tonnes", "wagons", "revision"]]
                conn.execute(
                    sa.insert(t.fact_withdrawals),
                    records(
                        audit,
                        withdrawn_at=stamp,
                        withdrawn_by=by,
                        credential=credential[:64],
                        reason=reason,
                    ),
                )
                c = t.facts.c
                delete = sa.delete(t.facts).where(*(c[k] == sa.bindparam(f"k_{k}") for k in _KEY))
                frame = rows[_KEY].copy()
                frame.columns = [f"k_{k}" for k in _KEY]
                conn.execute(delete, records(frame))
        return WithdrawResult(int(here.sum()), len(gone))

    def withdrawals(self) -> pd.DataFrame:
        """Every withdrawal, oldest first (the audit trail)."""
        with self.db.read() as conn:
            result = conn.execute(sa.select(t.fact_withdrawals).order_by(t.fact_withdrawals.c.id))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def frame(self, start: date | str | None = None, end: date | str | None = None) -> pd.DataFrame:
        """Current facts (latest revision) in the facts schema, sorted by series and date;
        ``start``/``end`` are inclusive dates."""
        with self.db.read() as conn:
            frame = _facts_between(conn, start, end, with_meta=False)
        facts = coerce_facts(frame)
        return facts.sort_values(_KEY, kind="stable").reset_index(drop=True)

    def newest_by_series(
        self, *, until: date | str | None = None, since: date | str | None = None
    ) -> pd.DataFrame:
        """The newest fact date of every series: columns ``origin_station``,
        ``destination_station``, ``cargo_type`` and ``newest`` (datetime64), sorted by series.

        Only facts dated on or before ``until`` count (a run as of a past day ignores later
        facts); with ``since`` only series whose newest such fact is on or after it are kept
        (the series active in a look-back). Both bounds are inclusive dates.
        """
        c = t.facts.c
        newest = sa.func.max(c.date).label("newest")
        query = sa.select(*(c[k] for k in SERIES_KEY), newest).group_by(*(c[k] for k in SERIES_KEY))
        if until is not None:
            query = query.where(c.date <= as_date(until))
        if since is not None:
            query = query.having(sa.func.max(c.date) >= as_date(since))
        with self.db.read() as conn:
            result = conn.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        frame["newest"] = pd.to_datetime(frame["newest"]).astype("datetime64[ns]")
        for k in SERIES_KEY:
            frame[k] = frame[k].astype(object)
        return frame.sort_values(list(SERIES_KEY), kind="stable").reset_index(drop=True)

    def station_regions(self, stations: Iterable[str]) -> dict[str, set[str]]:
        """The regions the stored facts give each of ``stations`` (as origin or
        destination); stations the store has never seen are absent."""
        wanted = sorted(set(stations))
        found: dict[str, set[str]] = {}
        c = t.facts.c
        with self.db.read() as conn:
            for station, region in (
                (c.origin_station, c.origin_region),
                (c.destination_station, c.destination_region),
            ):
                for start in range(0, len(wanted), 500):  # bounded IN lists
                    chunk = wanted[start : start + 500]
                    query = sa.select(station, region).where(station.in_(chunk)).distinct()
                    for name, known in conn.execute(query):
                        found.setdefault(name, set()).add(known)
        return found

    def days_between(self, start: date | str, end: date | str) -> FactDays:
        """How many facts are dated in ``[start, end]`` (inclusive), on how many distinct
        days, and the first and last of those days."""
        c = t.facts.c
        query = sa.select(
            sa.func.count(),
            sa.func.count(sa.distinct(c.date)),
            sa.func.min(c.date),
            sa.func.max(c.date),
        ).where(c.date >= as_date(start), c.date <= as_date(end))
        with self.db.read() as conn:
            rows, days, first, last = conn.execute(query).one()
        return FactDays(
            rows=int(rows),
            days=int(days),
            first=None if first is None else as_date(first),
            last=None if last is None else as_date(last),
        )

    def volume_by_series(self, start: date | str, end: date | str) -> pd.DataFrame:
        """Tonnes of every series (with its regions) over ``[start, end]`` (inclusive):
        columns ``origin_station``, ``destination_station``, ``cargo_type``,
        ``origin_region``, ``destination_region``, ``tonnes``; summed in the database."""
        c = t.facts.c
        keys = [c[k] for k in (*SERIES_KEY, "origin_region", "destination_region")]
        query = (
            sa.select(*keys, sa.func.sum(c.volume_tonnes).label("tonnes"))
            .where(c.date >= as_date(start), c.date <= as_date(end))
            .group_by(*keys)
        )
        with self.db.read() as conn:
            result = conn.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        frame["tonnes"] = frame["tonnes"].astype("float64")
        return frame

    def history(
        self, origin_station: str, destination_station: str, cargo_type: str, day: date | str
    ) -> pd.DataFrame:
        """Every value one fact has had, oldest first (revision, values, validity)."""
        key = dict(
            zip(SERIES_KEY, (origin_station, destination_station, cargo_type), strict=True),
            date=as_date(day),
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
        with self.db.read() as conn:
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


def _revise(conn: sa.Connection, revised: pd.DataFrame, stamp: datetime) -> None:
    history = revised[_KEY].copy()
    for col in ("origin_region", "destination_region", "volume_tonnes", "wagons"):
        history[col] = revised[f"{col}_old"]
    history["wagons"] = history["wagons"].astype("int64")
    history["revision"] = revised["revision"].astype("int64")
    history["valid_from"] = revised["valid_from"]
    history[REPORTED_AT] = revised[f"{REPORTED_AT}_old"]
    conn.execute(sa.insert(t.facts_revisions), records(history, valid_to=stamp))
    c = t.facts.c
    update = (
        sa.update(t.facts)
        .where(*(c[k] == sa.bindparam(f"k_{k}") for k in _KEY))
        .values(
            origin_region=sa.bindparam("v_origin_region"),
            destination_region=sa.bindparam("v_destination_region"),
            volume_tonnes=sa.bindparam("v_volume_tonnes"),
            wagons=sa.bindparam("v_wagons"),
            reported_at=sa.bindparam(f"v_{REPORTED_AT}"),
            revision=c.revision + 1,
            valid_from=stamp,
        )
    )
    frame = revised[[*FACT_COLUMNS, REPORTED_AT]].copy()
    frame.columns = [f"k_{col}" if col in _KEY else f"v_{col}" for col in frame.columns]
    conn.execute(update, records(frame))


def _facts_between(conn: sa.Connection, start: Any, end: Any, *, with_meta: bool) -> pd.DataFrame:
    c = t.facts.c
    cols = [c[name] for name in FACT_COLUMNS]
    if with_meta:
        cols += [c.revision, c.valid_from, c.reported_at]
    query = sa.select(*cols)
    if start is not None:
        query = query.where(c.date >= as_date(start))
    if end is not None:
        query = query.where(c.date <= as_date(end))
    result = conn.execute(query)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    frame["volume_tonnes"] = frame["volume_tonnes"].astype("float64")
    frame["wagons"] = frame["wagons"].astype("int64")
    if REPORTED_AT in frame:
        frame[REPORTED_AT] = pd.to_datetime(frame[REPORTED_AT], utc=True)
    return frame


def _withdrawn_keys(conn: sa.Connection, start: Any, end: Any) -> pd.DataFrame:
    w = t.fact_withdrawals.c
    query = sa.select(*(w[k] for k in _KEY)).where(w.date >= as_date(start), w.date <= as_date(end))
    frame = pd.DataFrame(conn.execute(query).fetchall(), columns=_KEY)
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame.drop_duplicates()


def _name_keys(rows: pd.DataFrame, n: int = 3) -> list[str]:
    return [
        f"{r['origin_station']}->{r['destination_station']} {r['cargo_type']} "
        f"{pd.Timestamp(r['date']).date()}"
        for r in rows.head(n).to_dict("records")
    ]


def reported_times(df: pd.DataFrame) -> pd.Series:
    """``df``'s ``reported_at`` as UTC timestamps (NaT where absent; a time without a zone
    is taken as UTC); ValueError naming the rows that do not parse."""
    if REPORTED_AT not in df:
        return pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    raw = df[REPORTED_AT]
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna() & raw.notna()
    if bad.any():
        shown = ", ".join(repr(v) for v in raw[bad].head(3))
        raise ValueError(
            f"{int(bad.sum())} row(s) have a reported_at that is not an ISO 8601 time: {shown}"
        )
    return parsed


def _not_after(new: pd.Series, old: pd.Series) -> np.ndarray:
    """Both times known and the new one not after the stored one."""
    new_t = pd.to_datetime(new, utc=True)
    old_t = pd.to_datetime(old, utc=True)
    return (new_t.notna() & old_t.notna() & (new_t <= old_t)).to_numpy()


def _describe(rows: pd.DataFrame, n: int = 3) -> list[str]:
    out = []
    for r in rows.head(n).to_dict("records"):
        new_at = pd.Timestamp(r[REPORTED_AT]).isoformat()
        old_at = pd.Timestamp(r[f"{REPORTED_AT}_old"]).isoformat()
        out.append(
            f"{r['origin_station']}->{r['destination_station']} {r['cargo_type']} "
            f"{pd.Timestamp(r['date']).date()}: {r['volume_tonnes']:g} t reported {new_at}, "
            f"stored {r['volume_tonnes_old']:g} t reported {old_at}"
        )
    return out


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
    dup = facts.duplicated(_KEY, keep=False)
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
        if s.astype(str).str.contains("\x00", regex=False).any():
            raise ValueError(f"facts column {col} has values with NUL characters")
        too_long = s.astype(str).str.len() > MAX_NAME_LENGTH
        if too_long.any():
            raise ValueError(
                f"facts column {col} has values longer than {MAX_NAME_LENGTH} characters "
                f"(first: {s[too_long].iloc[0][:40]!r}...)"
            )
    if not np.isfinite(facts["volume_tonnes"].to_numpy()).all():
        raise ValueError("facts column volume_tonnes has NaN or infinite values")
