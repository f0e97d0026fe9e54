"""The retraining policy as a typed, frozen object loaded from configs/retraining.yaml.

Every threshold the decision (freightml.retraining.decision) compares a value with lives
here; docs/retraining.md explains each one.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from freightml.policy_files import load_yaml_model
from freightml.retraining.window import WindowSettings

DEFAULT_RETRAINING_PATH = Path("configs/retraining.yaml")

# The six fields of a KFP recurring run's cron expression (robfig/cron with seconds):
# name, lowest value, highest value, names allowed in place of numbers.
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_ATOM = re.compile(r"^(?P<range>\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")


def _cron_value(token: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    upper = token.upper()
    if upper in names:
        return names.index(upper) + low
    if not token.isdigit():
        raise ValueError(f"{name} field: {token!r} is not a number from {low} to {high}")
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"{name} field: {value} is outside {low}-{high}")
    return value


def validate_cron(expression: str) -> str:
    """``expression`` if it is a valid 6-field cron expression (second minute hour
    day-of-month month day-of-week), as KFP recurring runs take it; else a ValueError that
    names the field and the value that is wrong."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise ValueError(
            f"cron expression {expression!r} has {len(fields)} fields; KFP recurring runs "
            "need 6: second minute hour day-of-month month day-of-week (e.g. '0 0 3 * * 1')"
        )
    for text, (name, low, high, names) in zip(fields, CRON_FIELDS, strict=True):
        for part in text.split(","):
            match = _ATOM.match(part)
            if match is None:
                raise ValueError(
                    f"cron expression {expression!r}: {name} field {text!r} is invalid"
                )
            span, step = match["range"], match["step"]
            if step is not None and int(step) < 1:
                raise ValueError(f"cron expression {expression!r}: {name} step must be >= 1")
            if span == "?" and name not in ("day of month", "day of week"):
                raise ValueError(
                    f"cron expression {expression!r}: '?' is allowed in the day fields only, "
                    f"not in {name}"
                )
            if span in ("*", "?"):
                continue
            try:
                bounds = [_cron_value(v, name, low, high, names) for v in span.split("-")]
            except ValueError as exc:
                raise ValueError(f"cron expression {expression!r}: {exc}") from None
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise ValueError(
                    f"cron expression {expression!r}: {name} range {span} runs backwards"
                )
    return expression


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduleSpec(_Frozen):
    """Routine retraining, whatever the monitor says."""

    cron: str = Field(
        "0 0 3 * * 1",
        description="6-field cron of the KFP recurring run (second minute hour day-of-month "
        "month day-of-week); `freightml retrain schedule` creates it",
    )
    max_champion_age_days: int = Field(
        35,
        ge=1,
        description="retrain when the champion's training window ended this many days or "
        "more before the as-of date (trigger champion_age)",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)


class _Trigger(_Frozen):
    enabled: bool = Field(True, description="false: the trigger is reported but never fires")


class InputDriftTrigger(_Trigger):
    """Model inputs drifted (the monitoring snapshot's facts and requests drift reports).

    Off by default: monitoring reports input drift but does not decide on it (its inputs
    are compared with the whole training window, not the same calendar months, and a 7-day
    window's PSI on lag ratios is large on ordinary days: on the first day of `demo --loop`,
    before any shift, 12 supported segments had at least half of their inputs over a
    threshold). The deciding drift, of the forecasts, is ``prediction_drift``."""

    enabled: bool = Field(False, description="false: the trigger is reported but never fires")

    feature_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a supported segment counts when at least this share of its input "
        "features drifted (any statistic over its threshold)",
    )
    min_segments: int = Field(
        1, ge=1, description="fires when at least this many supported segments count"
    )


class PredictionDriftTrigger(_Trigger):
    """The served forecasts drifted: segments where monitoring's deciding statistic of the
    requests window (the forecasts' Wasserstein distance on the log scale against the
    training window's forecasts of the same calendar months) is over its threshold."""

    min_segments: int = Field(
        1, ge=1, description="fires when the forecasts drifted in this many supported segments"
    )


class QualityTrigger(_Trigger):
    """Realised quality degraded (the snapshot's daily rolling WAPE against expectation)."""

    consecutive_days: int = Field(
        5,
        ge=1,
        description="fires when a segment's scored days exceeded their expected WAPE on this "
        "many consecutive days up to its newest scored day (at most the monitoring window)",
    )


class NewEntitiesTrigger(_Trigger):
    """Stations, series or regions the champion never saw, weighed by their volume."""

    look_back_days: int = Field(
        28,
        ge=1,
        description="the recent facts the shares are taken over (only facts after the "
        "champion's training window count)",
    )
    region_share: float = Field(
        0.02, gt=0, le=1, description="fires when new regions carry this share of tonnes"
    )
    station_share: float = Field(
        0.05, gt=0, le=1, description="fires when new stations carry this share of tonnes"
    )
    series_share: float = Field(
        0.10, gt=0, le=1, description="fires when new series carry this share of tonnes"
    )


class NewFactsTrigger(_Trigger):
    """Facts arrived after the champion's training window ended."""

    min_days: int = Field(
        28,
        ge=1,
        description="fires when facts exist for at least this many days after the window end",
    )


class Triggers(_Frozen):
    """Each trigger with its threshold; any one that fires asks for a retrain."""

    input_drift: InputDriftTrigger = InputDriftTrigger()
    prediction_drift: PredictionDriftTrigger = PredictionDriftTrigger()
    quality: QualityTrigger = QualityTrigger()
    new_entities: NewEntitiesTrigger = NewEntitiesTrigger()
    new_facts: NewFactsTrigger = NewFactsTrigger()
    max_snapshot_age_days: int = Field(
        2,
        ge=0,
        description="the monitoring snapshot must be at most this many days older than the "
        "as-of date, else the monitoring triggers are not judged",
    )


class Guards(_Frozen):
    """What stops a retrain that a trigger asked for."""

    cooldown_days: int = Field(
        7,
        ge=0,
        description="no retrain within this many days (of as-of dates) after one started",
    )
    max_in_flight: int = Field(
        1, ge=1, description="at most this many retraining runs in flight at a time"
    )
    in_flight_expiry_hours: float = Field(
        24.0,
        gt=0,
        description="a run still marked started after this many hours no longer counts as in "
        "flight (its process died without saying so)",
    )
    min_new_fact_days: int = Field(
        7,
        ge=0,
        description="days with facts after the champion's training window needed to retrain",
    )
    dedupe: bool = Field(
        True,
        description="one run per idempotency key (model, trigger, as-of date): a key that "
        "already started or finished a run does not start another",
    )


class Policy(_Frozen):
    """Everything `freightml retrain check|run` decides by; see docs/retraining.md."""

    version: int = 1
    schedule: ScheduleSpec = ScheduleSpec()
    triggers: Triggers = Triggers()
    guards: Guards = Guards()
    window: WindowSettings = Field(
        default_factory=WindowSettings,
        description="the shift-aware training window rule (freightml.retraining.window)",
    )


def load_policy(path: str | Path = DEFAULT_RETRAINING_PATH) -> Policy:
    """Read and validate the retraining YAML; errors name the file and the bad keys."""

    return load_yaml_model(path, Policy, "retraining policy")
