"""Facts arriving at the collector: parse a request body, coerce, validate.

Facts arrive in increments (a day, a late week, a correction), so gaps between a
series' dates are not an error here (``max_missing_day_share=1``); they are judged when
a training window is assembled. Every other hard error of validate_facts rejects the lot.
The other rules (anomaly thresholds, vocabularies, wagon checks) are the data section of
the settings, as everywhere else validation runs.

The anomaly rules need a series' history, so a small post escapes them; the hard bounds
(``bound_errors``) need none and hold at any batch size: finite tonnes within what a day
of one series can carry, wagons within a cap, tonnes per wagon within what a wagon can
carry, dates within ``MAX_FACT_AGE_DAYS`` of today, printable names; and a station keeps
its region (``region_errors``, against the post itself and the store).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

import pandas as pd

from freightml.config import DataSettings
from freightml.data.schema import CATEGORY_COLUMNS, REPORTED_AT, coerce_facts
from freightml.data.validation import ValidationReport, validate_facts
from freightml.store.facts import reported_times

TEXT_COLUMNS = CATEGORY_COLUMNS  # stations, regions, cargo type
MAX_WAGONS = 1_000_000  # a JSON value's type bound (the column is 32-bit); see the caps below
# Physical bounds of one series' day (../shared/data/freight-figures.md: eight-axle wagons
# carry 150-151 t; the whole network loads about 50,000 wagons a day).
MAX_TONNES_PER_WAGON = 160.0
MAX_WAGONS_PER_DAY = 20_000
MAX_TONNES_PER_DAY = MAX_WAGONS_PER_DAY * MAX_TONNES_PER_WAGON
MAX_FACT_AGE_DAYS = 30 * 366  # older facts are refused at intake (a typo's 1900-01-01)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EXAMPLES = 3
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_TYPE_ERRORS = 5


class FactsRejected(ValueError):
    """Facts that cannot be stored; ``errors`` lists what is wrong, ``report`` when validated."""

    def __init__(self, errors: list[str], report: ValidationReport | None = None) -> None:
        self.errors = errors
        self.report = report
        super().__init__("facts rejected: " + "; ".join(errors))


class BadFactsBody(ValueError):
    """The request body is not a JSON list of records or a CSV table."""


def facts_from_body(body: bytes, content_type: str | None) -> pd.DataFrame:
    """A raw facts table from a JSON body (a list of records, or ``{"facts": [...]}``)
    or a CSV body (``text/csv``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        raise BadFactsBody("empty body: send a JSON list of fact records or a CSV table")
    if media in ("text/csv", "application/csv"):
        try:
            return pd.read_csv(io.BytesIO(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadFactsBody(f"body is not a readable CSV table: {exc}") from exc
    if media and media != "application/json" and not media.endswith("+json"):
        raise BadFactsBody(
            f"unsupported content-type {content_type!r}: use application/json or text/csv"
        )
    try:
        data: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadFactsBody(f"body is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("facts"), list):
        data = data["facts"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BadFactsBody(
            'JSON body must be a list of fact records (objects), or {"facts": [...]}'
        )
    check_record_types(data)
    return pd.DataFrame.from_records(data)


def check_record_types(records: list[dict[str, Any]]) -> None:
    """JSON fact records hold their values with the documented JSON types: text fields are
    strings, ``date`` an ISO date ``YYYY-MM-DD``, ``volume_tonnes`` a number, ``wagons`` a
    whole number up to MAX_WAGONS; FactsRejected (422) names the first offenders.

    A missing field or null is left to validation, which names it for every row. (CSV
    has no types: its values are coerced.)
    """
    errors: list[str] = []
    for i, record in enumerate(records):
        for col, value in record.items():
            if value is None:
                continue
            problem = _type_problem(col, value)
            if problem:
                errors.append(f"record {i}: {col} {problem}, got {_show(value)}")
                if len(errors) == _MAX_TYPE_ERRORS:
                    raise FactsRejected([*errors, "(further records not checked)"])
    if errors:
        raise FactsRejected(errors)


def _type_problem(col: str, value: Any) -> str | None:
    if col in TEXT_COLUMNS:
        if not isinstance(value, str):
            return "must be a string"
        if "\x00" in value:
            return "must not contain NUL characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text"
    elif col == "date":
        if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
            return "is an unparsable date: use an ISO date YYYY-MM-DD"
        try:
            date.fromisoformat(value)
        except ValueError:
            return "is an unparsable date (no such day)"
    elif col == REPORTED_AT:
        if not isinstance(value, str):
            return "must be an ISO 8601 time as a string"
    elif col == "volume_tonnes":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
    elif col == "wagons":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a whole number"
        if isinstance(value, float) and not value.is_integer():
            return "must be a whole number"
        if value > MAX_WAGONS:
            return f"must be at most {MAX_WAGONS:,}"
    return None


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def prepare_facts(
    raw: pd.DataFrame,
    data_settings: DataSettings | None = None,
    *,
    store_regions: Callable[[Iterable[str]], Mapping[str, set[str]]] | None = None,
    today: date | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Coerce ``raw`` to the facts contract and validate it by ``data_settings`` (None =
    the defaults; gaps are never an error here), then hold it to the hard bounds and to
    the regions the store already gives the batch's stations (``store_regions``, e.g.
    ``store.facts.station_regions``); FactsRejected on any hard error, naming every failed
    rule and a few of its rows.

    Returns the coerced facts and the report (its warnings are informative).
    """
    try:
        facts = coerce_facts(raw, categorical=False)
    except ValueError as exc:  # missing columns, unparsable dates or numbers
        raise FactsRejected([str(exc)]) from exc
    report = validate_facts(facts, settings=data_settings, max_missing_day_share=1.0)
    errors = [f"[{i.check}] {i.message}" for i in report.errors]
    if REPORTED_AT in raw:
        try:
            facts[REPORTED_AT] = reported_times(raw)
        except ValueError as exc:
            errors.append(f"[reported_at] {exc}")
    errors += bound_errors(facts, today or date.today())
    batch = station_regions(facts)
    errors += region_errors(batch, store_regions(batch) if store_regions else {})
    if errors:
        raise FactsRejected(errors, report)
    return facts, report


def _rows(facts: pd.DataFrame, mask: Any) -> str:
    rows = facts.loc[mask].head(_EXAMPLES)
    shown = [
        f"{r.origin_station}->{r.destination_station} {r.cargo_type} {pd.Timestamp(r.date).date()}"
        f" ({r.volume_tonnes:g} t, {r.wagons} wagons)"
        for r in rows.itertuples()
    ]
    more = int(mask.sum()) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def bound_errors(facts: pd.DataFrame, today: date) -> list[str]:
    """The hard bounds every fact meets, whatever the size of the batch (module
    docstring): one message per failed bound, naming its rows."""
    tonnes = pd.to_numeric(facts["volume_tonnes"], errors="coerce").astype(float)
    wagons = pd.to_numeric(facts["wagons"], errors="coerce").astype(float)
    days = pd.to_datetime(facts["date"], errors="coerce")
    oldest = pd.Timestamp(today) - pd.Timedelta(days=MAX_FACT_AGE_DAYS)
    loaded = wagons > 0
    checks = [
        (
            tonnes > MAX_TONNES_PER_DAY,
            "tonnes_bound",
            f"more than {MAX_TONNES_PER_DAY:,.0f} t in one series' day",
        ),
        (wagons > MAX_WAGONS_PER_DAY, "wagons_bound", f"more than {MAX_WAGONS_PER_DAY:,} wagons"),
        (
            loaded & (tonnes > wagons * MAX_TONNES_PER_WAGON),
            "tonnes_per_wagon",
            f"more than {MAX_TONNES_PER_WAGON:g} t per wagon",
        ),
        (loaded & (tonnes == 0), "tonnes_per_wagon", "loaded wagons carrying 0 t"),
        (days < oldest, "date_bound", f"dates before {oldest.date()} ({MAX_FACT_AGE_DAYS} days)"),
    ]
    errors = [
        f"[{name}] {int(mask.sum())} row(s) with {what}: {_rows(facts, mask)}"
        for mask, name, what in checks
        if mask.any()
    ]
    for col in TEXT_COLUMNS:
        if col in facts:
            bad = facts[col].astype(str).str.contains(_CONTROL)
            if bad.any():
                errors.append(
                    f"[printable_names] {int(bad.sum())} row(s) with a control character in "
                    f"{col}: {_rows(facts, bad)}"
                )
    return errors


def station_regions(facts: pd.DataFrame) -> dict[str, set[str]]:
    """The regions a batch gives each station, as origin or destination."""
    pairs = pd.concat(
        [
            facts[["origin_station", "origin_region"]].set_axis(["station", "region"], axis=1),
            facts[["destination_station", "destination_region"]].set_axis(
                ["station", "region"], axis=1
            ),
        ]
    ).drop_duplicates()
    return {str(k): set(map(str, g)) for k, g in pairs.groupby("station")["region"]}


def region_errors(batch: Mapping[str, set[str]], known: Mapping[str, set[str]]) -> list[str]:
    """A station is in one region: within the batch (``station_regions`` of it), and as the
    store knows it (``known``)."""
    errors = []
    for station, regions in sorted(batch.items()):
        if len(regions) > 1:
            errors.append(
                f"[station_region] station {station!r} is given {len(regions)} regions in "
                f"this post: {sorted(regions)}"
            )
        elif station in known and not regions <= known[station]:
            errors.append(
                f"[station_region] station {station!r} is in {sorted(known[station])} in the "
                f"store; this post puts it in {sorted(regions)}"
            )
    return errors[:20]
