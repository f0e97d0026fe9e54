"""The shapes the retraining decision exchanges: the evidence it judges, each trigger and
guard with its value, and the :class:`Decision` stored in ``retraining_decisions``.

Apart from freightml.retraining.decision so that the store can read and write decisions
without importing the code that gathers evidence from it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from freightml.monitoring.types import Snapshot

Status = Literal["decided", "started", "finished", "failed", "skipped"]
STATUSES: tuple[str, ...] = ("decided", "started", "finished", "failed", "skipped")
# statuses of a decision whose run may still be going
IN_FLIGHT: tuple[str, ...] = ("decided", "started")
# statuses of a decision that used its key (a failed run may be tried again)
KEY_USED: tuple[str, ...] = ("decided", "started", "finished")
# statuses of a decision whose run counts for the cool-down
RAN: tuple[str, ...] = ("started", "finished")
MANUAL = "manual"
# the cause the key names when several triggers fire: abrupt changes first (they decide the
# training window), then degradation, then routine
TRIGGER_ORDER: tuple[str, ...] = (
    "no_champion",
    "new_regions",
    "new_stations",
    "new_series",
    "quality",
    "input_drift",
    "prediction_drift",
    "champion_age",
    "new_facts",
)
TAG_PREFIX = "retrain."


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TriggerResult(_Model):
    """One trigger: its value against its threshold, and whether it fired."""

    name: str
    enabled: bool
    fired: bool
    value: float | None  # None when it could not be judged (detail says why)
    threshold: float | None
    detail: str


class GuardResult(_Model):
    """One guard: its value against its limit, and whether it blocked the retrain."""

    name: str
    blocked: bool
    value: float | None
    limit: float | None
    detail: str


class ChampionInfo(_Model):
    """The champion and the training window its run recorded (params data_start/data_end)."""

    version: str
    run_id: str
    window_start: date | None
    window_end: date
    registered_at: datetime | None = None


class FactCount(_Model):
    """Facts dated after the champion's training window, up to the as-of date."""

    rows: int
    days: int
    first: date | None
    last: date | None


class NewEntities(_Model):
    """Tonnes over the look-back carried by regions, stations and series the champion's
    training window never had."""

    start: date
    end: date
    tonnes: float
    region_share: float
    station_share: float
    series_share: float
    new_regions: list[str]
    new_stations: list[str]  # at most MAX_NAMED, the largest first
    new_series: int


class PastDecision(_Model):
    """A recorded decision, as the guards read it."""

    id: str
    key: str
    as_of: date
    status: str
    decided_at: datetime
    updated_at: datetime


class Evidence(_Model):
    """Everything :func:`decide` judges, read by :func:`gather_evidence`."""

    model_name: str
    as_of: date
    snapshot: Snapshot | None
    champion: ChampionInfo | None
    new_facts: FactCount | None  # None without a champion (no window to count from)
    new_entities: NewEntities | None
    history: list[PastDecision] = Field(default_factory=list)  # newest first


class Decision(_Model):
    """Retrain or not, why, and what stopped it; stored in ``retraining_decisions``."""

    id: str
    decided_at: datetime
    model_name: str
    as_of: date
    retrain: bool
    forced: bool
    trigger: str | None  # the cause the key names (first fired in TRIGGER_ORDER, or manual)
    key: str  # model:trigger:as-of, the idempotency key
    reason: str  # one line in words
    triggers: list[TriggerResult]
    guards: list[GuardResult]
    # names of the new regions / stations whose trigger fired: the training window rule
    # treats their first day as a change (freightml.retraining.window.choose_window)
    new_segments: list[str]
    evidence: dict[str, Any]  # the values the decision was taken on (champion, snapshot, facts)

    @property
    def fired(self) -> list[TriggerResult]:
        return [t for t in self.triggers if t.fired]

    @property
    def blocked_by(self) -> list[GuardResult]:
        return [g for g in self.guards if g.blocked]
