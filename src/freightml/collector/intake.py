"""Facts arriving at the collector: parse a request body, coerce, validate.

Facts arrive in increments (a day, a late week, a correction), so gaps between a
series' dates are not an error here (``max_missing_day_share=1``); they are judged when
a training window is assembled. Every other hard error of validate_facts rejects the lot.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

from freightml.data.schema import coerce_facts
from freightml.data.validation import ValidationReport, validate_facts


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
    return pd.DataFrame.from_records(data)


def prepare_facts(raw: pd.DataFrame) -> tuple[pd.DataFrame, ValidationReport]:
    """Coerce ``raw`` to the facts contract and validate it; FactsRejected on hard errors.

    Returns the coerced facts and the report (its warnings are informative).
    """
    try:
        facts = coerce_facts(raw, categorical=False)
    except ValueError as exc:  # missing columns, unparsable dates or numbers
        raise FactsRejected([str(exc)]) from exc
    report = validate_facts(facts, max_missing_day_share=1.0)
    if not report.ok:
        raise FactsRejected([f"[{i.check}] {i.message}" for i in report.errors], report)
    return facts, report
