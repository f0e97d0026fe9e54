"""The Kubeflow Pipelines recurring run that retrains on a schedule, and the runs in flight.

What the recurring run should be (:class:`RecurringRunSpec`) is compared with what the
backend has (:class:`RecurringRun`, found by experiment and display name) and reconciled so
that there is always exactly one: created when missing, kept when it already matches,
replaced when anything differs. The open-source KFP API has no update for a recurring run
(its v2beta1 RecurringRunService offers create, get, list, enable, disable and delete, and
enable/disable cannot change a schedule or parameters), so a change is a replacement: the
new one is created disabled, the old ones are deleted, then the new one is enabled. No two
are ever enabled at the same time, and if creating fails the old schedule is untouched.

Nothing here imports kfp: the backend is a protocol, implemented over ``kfp.Client`` in
``pipelines.run.KfpClientBackend``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

DEFAULT_CRON = "0 0 3 * * 1"  # Mondays 03:00:00 (KFP cron: seconds first)

_FIELDS = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    ),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_PART = re.compile(r"^(?P<range>\*|\?|[A-Z0-9]+(?:-[A-Z0-9]+)?)(?:/(?P<step>\d+))?$")

# A run in one of these states still occupies its slot (KFP v2beta1 RuntimeState).
IN_FLIGHT_STATES = frozenset(
    {"RUNTIME_STATE_UNSPECIFIED", "PENDING", "RUNNING", "CANCELING", "PAUSED"}
)


def _value(token: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if token in names:
        return names.index(token) + low
    if not token.isdigit():
        raise ValueError(f"cron {name} field: {token!r} is not a number or a name")
    number = int(token)
    if not low <= number <= high:
        raise ValueError(f"cron {name} field: {number} is outside {low}-{high}")
    return number


def validate_cron(expression: str) -> str:
    """Check a 6-field cron expression as KFP's scheduler reads it (seconds, minutes, hours,
    day of month, month, day of week; ``*``, ``?``, lists, ranges, steps, month and weekday
    names) and return it normalised to single spaces."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(
            f"cron {expression!r} has {len(fields)} fields; KFP needs 6 "
            f"(second minute hour day-of-month month day-of-week), e.g. {DEFAULT_CRON!r}"
        )
    for text, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        for part in text.upper().split(","):
            match = _PART.match(part)
            if not match:
                raise ValueError(f"cron {name} field: {part!r} is not valid")
            span, step = match["range"], match["step"]
            if span == "?" and name not in ("day of month", "day of week"):
                raise ValueError(f"cron {name} field: '?' is allowed only in the day fields")
            if step is not None and int(step) == 0:
                raise ValueError(f"cron {name} field: a step of 0 in {part!r}")
            if span not in ("*", "?"):
                bounds = [_value(t, name, low, high, names) for t in span.split("-")]
                if len(bounds) == 2 and bounds[0] > bounds[1]:
                    raise ValueError(f"cron {name} field: range {span!r} runs backwards")
    return " ".join(fields)


@dataclass(frozen=True)
class RecurringRunSpec:
    """The recurring run that should exist."""

    name: str
    cron: str
    pipeline_id: str
    version_id: str
    parameters: dict[str, Any]
    max_concurrency: int = 1
    no_catchup: bool = True
    description: str = ""


@dataclass(frozen=True)
class RecurringRun:
    """A recurring run the backend has."""

    id: str
    name: str
    cron: str | None
    pipeline_version_id: str | None
    parameters: dict[str, Any]
    max_concurrency: int
    no_catchup: bool
    enabled: bool

    def differences(self, spec: RecurringRunSpec) -> list[str]:
        """What differs from ``spec`` (empty when it already is what ``spec`` asks for)."""
        pairs = {
            "cron": (self.cron, spec.cron),
            "pipeline version": (self.pipeline_version_id, spec.version_id),
            "parameters": (self.parameters, spec.parameters),
            "max_concurrency": (self.max_concurrency, spec.max_concurrency),
            "no_catchup": (self.no_catchup, spec.no_catchup),
        }
        return [name for name, (have, want) in pairs.items() if have != want]


@dataclass(frozen=True)
class RunInfo:
    """A pipeline run, as far as the in-flight guard needs it."""

    id: str
    name: str
    state: str
    pipeline_name: str | None
    created_at: str | None = None

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT_STATES


class ScheduleBackend(Protocol):
    """The recurring-run part of a KFP backend (see ``pipelines.run.KfpClientBackend``)."""

    def find_recurring_runs(self, name: str) -> list[RecurringRun]: ...

    def create_recurring_run(self, spec: RecurringRunSpec, *, enabled: bool) -> str: ...

    def set_recurring_run_enabled(self, recurring_run_id: str, enabled: bool) -> None: ...

    def delete_recurring_run(self, recurring_run_id: str) -> None: ...


Action = Literal["created", "unchanged", "enabled", "replaced"]


@dataclass(frozen=True)
class ScheduleOutcome:
    """What :func:`reconcile` did."""

    action: Action
    recurring_run_id: str
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def reconcile(backend: ScheduleBackend, spec: RecurringRunSpec) -> ScheduleOutcome:
    """Make ``spec`` the one recurring run named ``spec.name``: keep a matching one (and
    enable it if it was paused), otherwise create the new one disabled, delete the others,
    then enable it. Extra copies with the same name (made by hand) are deleted."""
    validate_cron(spec.cron)
    existing = backend.find_recurring_runs(spec.name)
    matching = [r for r in existing if not r.differences(spec)]
    if matching:
        keep = next((r for r in matching if r.enabled), matching[0])
        removed = [r.id for r in existing if r.id != keep.id]
        for recurring_run_id in removed:
            backend.delete_recurring_run(recurring_run_id)
        if not keep.enabled:
            backend.set_recurring_run_enabled(keep.id, True)
        return ScheduleOutcome("unchanged" if keep.enabled else "enabled", keep.id, removed)
    if not existing:
        return ScheduleOutcome("created", backend.create_recurring_run(spec, enabled=True))
    new_id = backend.create_recurring_run(spec, enabled=False)
    for old in existing:
        backend.delete_recurring_run(old.id)
    backend.set_recurring_run_enabled(new_id, True)
    changed = sorted({d for old in existing for d in old.differences(spec)})
    return ScheduleOutcome("replaced", new_id, [r.id for r in existing], changed)
