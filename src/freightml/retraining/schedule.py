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
``pipelines.run.KfpClientBackend``. The cron expression is checked by the policy's
:func:`~freightml.retraining.policy.validate_cron` (6 fields, seconds first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from freightml.retraining.policy import ScheduleSpec, validate_cron

# the policy's default schedule (configs/retraining.yaml: schedule.cron): Mondays 03:00:00
DEFAULT_CRON: str = ScheduleSpec.model_fields["cron"].default

# A run in one of these states still occupies its slot (KFP v2beta1 RuntimeState).
IN_FLIGHT_STATES = frozenset(
    {"RUNTIME_STATE_UNSPECIFIED", "PENDING", "RUNNING", "CANCELING", "PAUSED"}
)


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
