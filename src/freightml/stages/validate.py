"""Validate: check the facts against the schema and the data rules."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from freightml.config import Settings
from freightml.data.validation import validate_facts
from freightml.stages.result import StageResult
from freightml.timing import timed

log = logging.getLogger("freightml")
MAX_MESSAGES = 10


class ValidationSummary(StageResult):
    """Counts and the first warnings of a validation report (what the cards show)."""

    ok: bool
    errors: int
    warnings: int
    messages: list[str]

    @classmethod
    def from_report_file(cls, path: str | Path) -> ValidationSummary:
        """Read the report JSON that :func:`validate_data` wrote
        (``freightml.data.validation.ValidationReport.to_json``)."""
        report = json.loads(Path(path).read_text())
        warnings = [i["message"] for i in report["issues"] if i["severity"] == "warning"]
        return cls(
            ok=report["ok"],
            errors=report["n_errors"],
            warnings=report["n_warnings"],
            messages=warnings[:MAX_MESSAGES],
        )


def validate_data(
    settings: Settings,
    facts_path: str | Path,
    report_path: str | Path,
    report_html_path: str | Path,
    reference_path: str | Path | None = None,
) -> ValidationSummary:
    """Validate the facts, write the report (JSON + HTML), raise on hard errors."""

    with timed("validate_data"):
        facts = pd.read_parquet(facts_path)
        reference = pd.read_parquet(reference_path) if reference_path else None
        report = validate_facts(facts, reference=reference, settings=settings.data)
        for path, text in ((report_path, report.to_json()), (report_html_path, report.to_html())):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    for issue in report.warnings:
        log.warning("data warning [%s]: %s", issue.check, issue.message)
    for issue in report.errors:
        log.error("data error [%s]: %s", issue.check, issue.message)
    report.raise_for_errors()
    return ValidationSummary.from_report_file(report_path)
