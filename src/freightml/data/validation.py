"""Validate a facts frame: hard errors (schema, impossible values) and warnings (gaps,
anomalies, unseen or unknown categories, wagon loads), as a JSON/HTML report.

The thresholds and vocabularies are the data section of the settings (``DataSettings``:
``anomaly_z``, ``known_regions``, ``wagon_checks``...), so the CLI, the validate_data stage,
the collector's intake and MLExperimentManager apply the same rules.

Types, nullability, ranges and key uniqueness are checked by pandera (FactSchema); the
statistical checks are vectorised pandas/numpy so 2M rows take a few seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.engines import pandas_engine

from freightml.config import DataSettings
from freightml.data.schema import (
    DEFAULT_WAGON_CAPACITY_T,
    FACT_COLUMNS,
    SERIES_KEY,
    WAGON_CAPACITY_T,
    FactSchema,
    parse_dates,
)

Severity = Literal["error", "warning"]
MAX_EXAMPLES = 5
WAGON_OVERLOAD = 1.6  # tonnes per wagon above this x typical capacity are suspicious
_MAD_TO_SD = 1.4826  # MAD x this estimates the standard deviation of a normal sample
_MIN_WEEKDAY_POINTS = 4  # positive days a (series, weekday) needs for its own level

# The value checks run on a type-coerced copy, so dtypes are not checked twice; key
# uniqueness is checked with DataFrame.duplicated (pandera's report of it is slow when
# many rows repeat).
_VALUE_SCHEMA = FactSchema.update_columns({c: {"dtype": None} for c in FACT_COLUMNS})
_VALUE_SCHEMA.unique = None


@dataclass(frozen=True)
class Issue:
    """One finding: ``check`` is a stable short name, ``message`` says what and where."""

    severity: Severity
    check: str
    message: str
    n_rows: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "check": self.check,
            "message": self.message,
            "n_rows": self.n_rows,
            "examples": self.examples,
        }


class DataValidationError(Exception):
    """Raised by ValidationReport.raise_for_errors(); carries the report."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        lines = [f"- [{i.check}] {i.message}" for i in report.errors]
        super().__init__(
            f"facts failed validation with {len(lines)} error(s):\n" + "\n".join(lines)
        )


@dataclass
class ValidationReport:
    """All issues of one validation run plus a summary of the frame."""

    issues: list[Issue]
    n_rows: int
    n_series: int
    start: str | None  # first date, ISO
    end: str | None  # last date, ISO
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def date_range(self) -> tuple[str | None, str | None]:
        return self.start, self.end

    def checks(self) -> set[str]:
        """Names of the checks that produced an issue."""
        return {i.check for i in self.issues}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "n_rows": self.n_rows,
            "n_series": self.n_series,
            "start": self.start,
            "end": self.end,
            "created_at": self.created_at,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "issues": [i.to_dict() for i in self.issues],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_html(self) -> str:
        """A self-contained HTML page (inline CSS, no external assets)."""
        template = resources.files("freightml.data").joinpath("report.html.j2").read_text()
        env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
        return env.from_string(template).render(report=self, columns=FACT_COLUMNS)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write report.json and report.html into ``out_dir``; return both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, html_path = out / "report.json", out / "report.html"
        json_path.write_text(self.to_json(), encoding="utf-8")
        html_path.write_text(self.to_html(), encoding="utf-8")
        return json_path, html_path

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise DataValidationError(self)

    def __str__(self) -> str:
        state = "OK" if self.ok else "FAILED"
        return (
            f"validation {state}: {self.n_rows:,} rows, {self.n_series:,} series, "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        )


def validate_facts(
    df: pd.DataFrame,
    *,
    reference: pd.DataFrame | None = None,
    settings: DataSettings | None = None,
    max_missing_day_share: float | None = None,
    anomaly_z: float | None = None,
    today: date | None = None,
) -> ValidationReport:
    """Check ``df`` against the facts contract and for suspicious data.

    The rules come from ``settings`` (the data section of the settings; None = the
    defaults); ``max_missing_day_share`` and ``anomaly_z``, when given, override theirs.

    Errors: schema/type violations, negative or NaN volume, negative wagons, duplicate
    (series, date) rows, future dates, missing days above ``max_missing_day_share``,
    volumes above ``impossible_ratio`` x their series' robust maximum.
    Warnings: missing days, volume anomalies (robust z of log1p volume against the
    series' weekday level > ``anomaly_z``, most extreme first), categories unseen in
    ``reference``, regions/cargo types outside ``known_regions``/``known_cargo_types``,
    loads above 1.6x wagon capacity (with ``wagon_checks`` and when some row has wagons).
    ``today`` defaults to the local date.
    """
    rules = settings or DataSettings()
    overrides = {
        k: v
        for k, v in (("max_missing_day_share", max_missing_day_share), ("anomaly_z", anomaly_z))
        if v is not None
    }
    if overrides:
        rules = DataSettings.model_validate({**rules.model_dump(), **overrides})
    df = df.reset_index(drop=True)
    missing = [c for c in FACT_COLUMNS if c not in df.columns]
    if missing:
        issue = _error(
            "schema",
            f"missing required column(s) {missing}; "
            f"available columns: {[str(c) for c in df.columns]}",
        )
        return ValidationReport([issue], len(df), 0, None, None)

    facts, issues = _coerce_types(df)
    issues += _value_issues(facts)
    dated = facts[facts["date"].notna()]
    issues += _future_issues(dated, today or date.today())
    codes = _series_codes(dated)
    issues += _missing_day_issues(dated, codes, rules.max_missing_day_share)
    issues += _anomaly_issues(dated, codes, rules)
    issues += _category_issues(facts, reference, rules)
    if rules.wagon_checks:
        issues += _wagon_issues(facts)
    start = dated["date"].min() if len(dated) else None
    end = dated["date"].max() if len(dated) else None
    return ValidationReport(
        issues,
        n_rows=len(facts),
        n_series=int(codes.max() + 1) if len(codes) else 0,
        start=start.date().isoformat() if start is not None else None,
        end=end.date().isoformat() if end is not None else None,
    )


# --- helpers --------------------------------------------------------------------------


def _error(check: str, message: str, n_rows: int = 0, examples: list | None = None) -> Issue:
    return Issue("error", check, message, n_rows, examples or [])


def _warning(check: str, message: str, n_rows: int = 0, examples: list | None = None) -> Issue:
    return Issue("warning", check, message, n_rows, examples or [])


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _examples(facts: pd.DataFrame, rows: np.ndarray) -> list[dict[str, Any]]:
    sample = facts.iloc[rows[:MAX_EXAMPLES]]
    return [
        {"row": int(i), **{c: _jsonable(r[c]) for c in facts.columns}}
        for i, r in zip(rows[:MAX_EXAMPLES], sample.to_dict("records"), strict=True)
    ]


def _describe(facts: pd.DataFrame, row: int) -> str:
    """``2024-03-02 NSK->VLD coal`` for one row."""
    r = facts.iloc[row]
    day = r["date"].date().isoformat() if pd.notna(r["date"]) else "no-date"
    return f"{day} {r['origin_station']}->{r['destination_station']} {r['cargo_type']}"


_SINGULAR = {
    "have": "has",
    "share": "shares",
    "are": "is",
    "use": "uses",
    "carry": "carries",
    "fail": "fails",
}


def _rows_issue(
    facts: pd.DataFrame,
    mask: np.ndarray,
    severity: Severity,
    check: str,
    what: str,
    order: np.ndarray | None = None,
) -> list[Issue]:
    """An issue for rows where ``mask`` holds: '<n> rows <what> (first: <row>)'.

    ``order`` (row numbers, most important first) picks the first row and the examples;
    by default they are the first rows of the frame.
    """
    rows = np.flatnonzero(mask) if order is None else np.asarray(order)
    if not len(rows):
        return []
    if len(rows) == 1:
        verb, _, rest = what.partition(" ")
        what = f"{_SINGULAR.get(verb, verb)} {rest}"
    noun = "row" if len(rows) == 1 else "rows"
    message = f"{len(rows):,} {noun} {what} (first: {_describe(facts, rows[0])})"
    return [Issue(severity, check, message, len(rows), _examples(facts, rows))]


def _lookup(s: pd.Series, mapping: dict[str, float], default: float) -> np.ndarray:
    codes, uniques = pd.factorize(s)
    values = np.array([mapping.get(str(u), default) for u in uniques] + [np.nan])
    return values[codes]


# --- checks ---------------------------------------------------------------------------


def _coerce_types(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Issue]]:
    """Copy of the fact columns with the contract's dtypes; a schema error per bad column.

    Values that cannot be parsed become missing, so the later checks still run.
    """
    out: dict[str, pd.Series] = {}
    issues: list[Issue] = []
    for col in FACT_COLUMNS:
        s = df[col]
        expected = FactSchema.columns[col].dtype
        if expected is None:  # strings: object, string or category are all fine
            if (
                pd.api.types.is_object_dtype(s.dtype)
                or pd.api.types.is_string_dtype(s.dtype)
                or isinstance(s.dtype, pd.CategoricalDtype)
            ):
                out[col] = s
                continue
            want, parsed = "strings (object or category)", s.where(s.isna(), s.astype(str))
        elif _has_dtype(s, expected):
            out[col] = s
            continue
        elif col == "date":
            want, parsed = str(expected), parse_dates(s)
        else:
            want, parsed = str(expected), pd.to_numeric(s, errors="coerce").astype("float64")
        bad = (parsed.isna() & s.notna()).to_numpy()
        message = f"column {col} has dtype {s.dtype}, expected {want}"
        if bad.any():
            message += f"; {int(bad.sum()):,} value(s) cannot be parsed (first: {s[bad].iloc[0]!r})"
        message += "; load with load_facts() or fix it with coerce_facts()"
        examples = [
            {"row": int(i), "column": col, "value": repr(s.iloc[i])}
            for i in np.flatnonzero(bad)[:MAX_EXAMPLES]
        ]
        issues.append(_error("schema", message, int(bad.sum()), examples))
        out[col] = parsed
    return pd.DataFrame(out), issues


def _has_dtype(s: pd.Series, expected: Any) -> bool:
    try:
        return bool(expected.check(pandas_engine.Engine.dtype(s.dtype)))
    except TypeError:  # a dtype pandera does not know, e.g. a pyarrow-backed one
        return False


_VALUE_CHECKS: dict[tuple[str, str], tuple[str, str]] = {
    ("volume_tonnes", "not_nullable"): ("nan_volume", "have NaN volume_tonnes"),
    ("volume_tonnes", "finite"): ("nan_volume", "have infinite volume_tonnes"),
    ("volume_tonnes", "greater_than_or_equal_to(0)"): (
        "negative_volume", "have negative volume_tonnes"),
    ("wagons", "greater_than_or_equal_to(0)"): ("negative_wagons", "have negative wagons"),
    ("date", "midnight"): ("schema", "have a date that is not at midnight"),
}  # fmt: skip


def _value_issues(facts: pd.DataFrame) -> list[Issue]:
    """Duplicate keys, then nullability and ranges from pandera: one issue per failure kind."""
    key = ["date", *SERIES_KEY]
    duplicated = (facts.duplicated(key, keep=False) & facts[key].notna().all(axis=1)).to_numpy()
    issues = _rows_issue(
        facts,
        duplicated,
        "error",
        "duplicate_rows",
        "share their (series, date) key with another row",
    )
    try:
        _VALUE_SCHEMA.validate(facts, lazy=True)
        return issues
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    cases = cases[cases["index"].notna()]
    for (col, check), group in cases.groupby(["column", "check"], sort=False):
        name, what = _VALUE_CHECKS.get(
            (col, check),
            (
                "schema",
                f"have an empty {col}" if check == "not_nullable" else f"fail {check} on {col}",
            ),
        )
        mask = np.zeros(len(facts), dtype=bool)
        mask[group["index"].astype(np.int64).unique()] = True
        issues += _rows_issue(facts, mask, "error", name, what)
    return issues


def _future_issues(facts: pd.DataFrame, today: date) -> list[Issue]:
    mask = (facts["date"] > pd.Timestamp(today)).to_numpy()
    return _rows_issue(facts, mask, "error", "future_dates", f"are dated after today ({today})")


def _series_codes(facts: pd.DataFrame) -> np.ndarray:
    keys = facts[list(SERIES_KEY)]
    return (
        keys.groupby(list(SERIES_KEY), observed=True, sort=False, dropna=False).ngroup().to_numpy()
    )


def _missing_day_issues(facts: pd.DataFrame, codes: np.ndarray, max_share: float) -> list[Issue]:
    """Calendar gaps between each series' first and last date."""
    if not len(facts):
        return []
    day = facts["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    order = np.lexsort((day, codes))
    c, d = codes[order], day[order]
    same = c[1:] == c[:-1]
    gap = np.where(same, np.maximum(d[1:] - d[:-1] - 1, 0), 0)
    first = np.ones(len(c), dtype=bool)
    first[1:] = ~same
    last = np.roll(first, -1)
    expected = int((d[last] - d[first] + 1).sum())
    n_missing = int(gap.sum())
    if n_missing == 0:
        return []
    at = np.flatnonzero(gap)
    share = n_missing / expected
    n_series = len(np.unique(c[at]))
    row = order[at[0]]
    origin = facts.iloc[row]
    gap_from = (pd.Timestamp(d[at[0]] + 1, unit="D")).date()
    gap_to = (pd.Timestamp(d[at[0] + 1] - 1, unit="D")).date()
    message = (
        f"{n_missing:,} series-days missing in {n_series:,} series ({share:.1%} of {expected:,} "
        f"expected between each series' first and last date; first: {origin['origin_station']}"
        f"->{origin['destination_station']} {origin['cargo_type']} {gap_from} to {gap_to})"
    )
    examples = []
    for i in at[:MAX_EXAMPLES]:
        r = facts.iloc[order[i]]
        examples.append(
            {
                **{k: _jsonable(r[k]) for k in SERIES_KEY},
                "gap_from": str(pd.Timestamp(d[i] + 1, unit="D").date()),
                "gap_days": int(gap[i]),
            }
        )
    if share > max_share:
        message += f"; exceeds max_missing_day_share {max_share:.0%}"
        return [_error("missing_days", message, n_missing, examples)]
    return [_warning("missing_days", message, n_missing, examples)]


def _group_median(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The median of ``x`` within each group, per element."""
    return pd.Series(x).groupby(groups).transform("median").to_numpy()


def anomaly_scores(
    volume: np.ndarray, codes: np.ndarray, weekday: np.ndarray, settings: DataSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust z-score, usual volume and series' robust maximum of each row's volume.

    On a series' positive days (zero days are pauses, not anomalies) x = log1p(volume);
    the level is the median of x on the same weekday when the series has at least 4
    positive days on that weekday, else its median over all days; the spread is 1.4826 x
    the median absolute deviation from the level, floored at ``anomaly_min_scale`` (a
    near-constant series has almost no spread, and a small change must not explode its
    z). Series with fewer than ``anomaly_min_points`` positive days get no score.
    Returns, per row (NaN where not scored): ``z``, the ``usual`` volume (the level, back
    in volume units) and ``robust_max``, the largest volume of the row's series whose
    |z| <= ``anomaly_z``. ``codes`` numbers the series 0..n-1, ``weekday`` is 0..6.
    """
    z = np.full(len(volume), np.nan)
    usual_volume = np.full(len(volume), np.nan)
    robust_max = np.full(len(volume), np.nan)
    pos = np.flatnonzero(np.isfinite(volume) & (volume > 0))
    if not len(pos):
        return z, usual_volume, robust_max
    g = codes[pos]
    count = np.bincount(g)[g]
    scored = count >= settings.anomaly_min_points
    pos, g = pos[scored], g[scored]
    if not len(pos):
        return z, usual_volume, robust_max
    x = np.log1p(volume[pos])
    cell = g.astype(np.int64) * 7 + weekday[pos]
    cell_level = _group_median(x, cell)
    cell_count = np.bincount(cell)[cell]
    level = np.where(cell_count >= _MIN_WEEKDAY_POINTS, cell_level, _group_median(x, g))
    resid = x - level
    scale = np.maximum(_MAD_TO_SD * _group_median(np.abs(resid), g), settings.anomaly_min_scale)
    z[pos] = resid / scale
    usual_volume[pos] = np.expm1(level)
    usual = np.abs(z[pos]) <= settings.anomaly_z
    top = pd.Series(np.where(usual, volume[pos], np.nan)).groupby(g).transform("max")
    robust_max[pos] = top.to_numpy()
    return z, usual_volume, robust_max


def _anomaly_issues(facts: pd.DataFrame, codes: np.ndarray, settings: DataSettings) -> list[Issue]:
    """Impossible volumes (errors) and volume anomalies (warnings), most extreme first."""
    volume = facts["volume_tonnes"].to_numpy(dtype=float)
    weekday = facts["date"].dt.dayofweek.to_numpy()
    z, usual, robust_max = anomaly_scores(volume, codes, weekday, settings)
    z_max, ratio = settings.anomaly_z, settings.impossible_ratio
    with np.errstate(invalid="ignore"):
        impossible = volume > ratio * robust_max
        flagged = (np.abs(z) > z_max) & ~impossible
    issues: list[Issue] = []
    if impossible.any():
        rows = np.flatnonzero(impossible)
        rows = rows[np.argsort(-(volume[rows] / robust_max[rows]), kind="stable")]
        first = rows[0]
        what = (
            f"have volume_tonnes above {ratio:g}x their series' robust maximum (the largest "
            f"day within |robust z| <= {z_max:g}), most extreme first; first has "
            f"{volume[first]:,.1f} t vs a robust maximum of {robust_max[first]:,.1f} t"
        )
        issues += _rows_issue(facts, impossible, "error", "impossible_volume", what, rows)
    if flagged.any():
        rows = np.flatnonzero(flagged)
        rows = rows[np.argsort(-np.abs(z[rows]), kind="stable")]
        first = rows[0]
        what = (
            f"have volume_tonnes far from their series' usual level (|robust z| > {z_max:g} "
            f"on log volume against the series' weekday level), most extreme first; first "
            f"has {volume[first]:,.1f} t vs a usual {usual[first]:,.1f} t (z = {z[first]:+.1f})"
        )
        issues += _rows_issue(facts, flagged, "warning", "volume_anomaly", what, rows)
    return issues


_CATEGORY_GROUPS: dict[str, tuple[str, ...]] = {
    "stations": ("origin_station", "destination_station"),
    "regions": ("origin_region", "destination_region"),
    "cargo types": ("cargo_type",),
}


def _values(df: pd.DataFrame, cols: tuple[str, ...]) -> set[str]:
    return {str(v) for c in cols if c in df.columns for v in pd.unique(df[c].dropna())}


def _unseen(
    facts: pd.DataFrame, cols: tuple[str, ...], allowed: set[str], check: str, label: str
) -> list[Issue]:
    unseen = sorted(_values(facts, cols) - allowed)
    if not unseen:
        return []
    mask = np.zeros(len(facts), dtype=bool)
    for c in cols:
        mask |= facts[c].astype(object).isin(unseen).to_numpy()
    shown = unseen[:10] + (["..."] if len(unseen) > 10 else [])
    return _rows_issue(facts, mask, "warning", check, f"use {len(unseen)} {label}: {shown}")


def _category_issues(
    facts: pd.DataFrame, reference: pd.DataFrame | None, settings: DataSettings
) -> list[Issue]:
    """Regions and cargo types outside the configured vocabularies (``known_regions``,
    ``known_cargo_types``; None = not checked), then categories absent from ``reference``."""
    issues: list[Issue] = []
    if settings.known_regions is not None:
        issues += _unseen(
            facts,
            _CATEGORY_GROUPS["regions"],
            set(settings.known_regions),
            "unknown_region",
            f"region(s) outside data.known_regions ({len(settings.known_regions)} known)",
        )
    if settings.known_cargo_types is not None:
        issues += _unseen(
            facts,
            ("cargo_type",),
            set(settings.known_cargo_types),
            "unknown_cargo_type",
            f"cargo type(s) outside data.known_cargo_types "
            f"({len(settings.known_cargo_types)} known)",
        )
    if reference is not None:
        for label, cols in _CATEGORY_GROUPS.items():
            issues += _unseen(
                facts,
                cols,
                _values(reference, cols),
                "unseen_category",
                f"{label} not present in the reference data",
            )
    return issues


def _wagon_issues(facts: pd.DataFrame) -> list[Issue]:
    """Tonnes per wagon above 1.6x the cargo's typical wagon load (incl. load with 0 wagons).

    Data without wagons (no row has a positive count: e.g. not rail data) is not checked.
    """
    if not (facts["wagons"].to_numpy(dtype=float) > 0).any():
        return []
    capacity = _lookup(facts["cargo_type"], WAGON_CAPACITY_T, DEFAULT_WAGON_CAPACITY_T)
    tonnes = facts["volume_tonnes"].to_numpy(dtype=float)
    wagons = facts["wagons"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        mask = (tonnes > 0) & (wagons >= 0) & (tonnes > WAGON_OVERLOAD * capacity * wagons)
    return _rows_issue(
        facts,
        mask,
        "warning",
        "wagon_capacity",
        f"carry more than {WAGON_OVERLOAD:g}x the typical wagon load of their "
        "cargo (see WAGON_CAPACITY_T), or tonnes with 0 wagons",
    )
