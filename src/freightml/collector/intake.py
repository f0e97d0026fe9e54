"""Facts arriving at the collector: parse a request body, coerce, validate.

Facts arrive in increments (a day, a late week, a correction), so gaps between a
series' dates are not an error here (``max_missing_day_share=1``); they are judged when
a training window is assembled. Every other hard error of validate_facts rejects the lot.
The other rules (anomaly thresholds, vocabularies, wagon checks) are the data section of
the settings, as everywhere else validation runs.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date
from typing import Any

import pandas as pd

from freightml.config import DataSettings
from freightml.data.schema import CATEGORY_COLUMNS, coerce_facts
from freightml.data.validation import ValidationReport, validate_facts

TEXT_COLUMNS = CATEGORY_COLUMNS  # stations, regions, cargo type
MAX_WAGONS = 1_000_000  # wagons of one series in one day, at most (the column is 32-bit)
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
    raw: pd.DataFrame, data_settings: DataSettings | None = None
) -> tuple[pd.DataFrame, ValidationReport]:
    """Coerce ``raw`` to the facts contract and validate it by ``data_settings`` (None =
    the defaults; gaps are never an error here); FactsRejected on hard errors.

    Returns the coerced facts and the report (its warnings are informative).
    """
    try:
        facts = coerce_facts(raw, categorical=False)
    except ValueError as exc:  # missing columns, unparsable dates or numbers
        raise FactsRejected([str(exc)]) from exc
    report = validate_facts(facts, settings=data_settings, max_missing_day_share=1.0)
    if not report.ok:
        raise FactsRejected([f"[{i.check}] {i.message}" for i in report.errors], report)
    return facts, report
