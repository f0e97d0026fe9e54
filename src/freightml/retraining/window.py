"""The shift-aware training window: which facts a retrain reads and how much the examples
from before an abrupt change weigh (docs/retraining.md, "The training window rule").

The rule of :func:`choose_window`:

- no abrupt change (gradual drift, a scheduled retrain, ...): ``full_window``, the
  configured window and uniform weights, i.e. today's training;
- an abrupt change on day ``c`` (the latest level shift :func:`segment_shifts` finds over
  the lookback, or the first day a segment named in ``new_segments`` has facts; changes
  within a week before the latest are one event, starting at the earliest):
  - with at least ``min_post_change_days`` of facts from ``c`` to ``as_of``:
    ``post_change``: the model learns only from examples whose forecast origin is on or
    after ``c`` (the examples before weigh 0); the facts window keeps ``history_days``
    before ``c`` so that the features of those examples (364-day lags, 91-day means,
    392-day EWM span) read full history;
  - with less: ``down_weight``: the configured window, the examples before ``c`` weigh
    ``pre_change_weight``, so the few weeks of the new regime are not drowned.

After a level shift, :func:`level_adjustments` estimates the classic intervention
adjustment (the facts of the shifted segment before the change multiplied by the step
after/before, so the long look-back features read one consistent level) and
:func:`adjust_levels` applies it. They are not part of the rule: the adjustment only helps
when the facts the model forecasts from are adjusted too, which the pipeline, the predictor,
batch scoring and monitoring do not do; bench/retrain_window.py measures what it would give
(docs/retraining.md, "Level adjustment: measured, not applied").

The choice is applied to :class:`~freightml.config.Settings` by :meth:`WindowChoice.apply`
(the GBM's ``weight_before`` / ``pre_change_weight`` parameters, which its fit and every
backtest refit honour, and ``data.train_window_days``) and recorded by
:meth:`WindowChoice.as_params` as ``retrain.window.*`` run parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from freightml.config import DataSettings, ModelSettings, Settings
from freightml.features.build import SERIES_KEY
from freightml.retraining.changepoint import (
    ALL,
    SegmentShift,
    days_between,
    first_seen,
    segment_shifts,
)

Rule = Literal["full_window", "post_change", "down_weight"]
FULL_WINDOW: Final = "full_window"
POST_CHANGE: Final = "post_change"
DOWN_WEIGHT: Final = "down_weight"
PARAM_PREFIX = "retrain.window."
WEIGHT_PARAMS = ("weight_before", "pre_change_weight")  # GlobalGBM parameters
MAX_PARAM_CHARS = 500  # a run parameter stays readable (MLflow allows 6000)
SAME_EVENT_DAYS = 7  # change points this close to the latest are one event


class WindowSettings(BaseModel):
    """How a retrain looks for an abrupt change and what it does about one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lookback_days: int = Field(
        182,
        ge=35,
        le=730,
        description="days of facts up to the as-of date searched for a level shift",
    )
    min_segment_days: int = Field(
        14,
        ge=7,
        description="fewest days on each side of a change point (a shift younger than this "
        "is not yet detectable)",
    )
    threshold: float = Field(
        7.0,
        gt=0,
        description="least t value of the level step (trend removed, weekly means) that "
        "counts as a change point; unshifted synthetic segments stay below 6",
    )
    min_shift_ratio: float = Field(
        1.2,
        ge=1,
        description="least size of a level step, after/before or before/after",
    )
    min_segment_share: float = Field(
        0.02,
        ge=0,
        le=1,
        description="segments with less of the lookback's tonnes are not tested (the "
        "methodology's support)",
    )
    segment_columns: tuple[str, ...] = Field(
        ("origin_region", "cargo_type"),
        description="fact columns whose values are the segments tested (plus the network)",
    )
    # 364: a post-change window shorter than a year holds no example of most months and
    # holidays; with 91, bench/retrain_window.py measured it worse than the full window
    min_post_change_days: int = Field(
        364,
        ge=28,
        description="facts from the change to the as-of date needed before only post-change "
        "examples are used (post_change); fewer: pre-change examples are down-weighted",
    )
    pre_change_weight: float = Field(
        0.25,
        gt=0,
        le=1,
        description="sample weight of examples whose forecast origin is before the change "
        "when the post-change history is short (down_weight)",
    )
    history_days: int = Field(
        400,
        ge=91,
        description="days of facts kept before the change under post_change, for the "
        "features' look-back (364-day lags, 392-day EWM span; serving keeps 400)",
    )
    max_window_days: int | None = Field(
        None,
        ge=91,
        description="longest facts window a shift-aware choice may use; None = the "
        "configured data.train_window_days",
    )

    @model_validator(mode="after")
    def _consistent(self) -> WindowSettings:
        if self.lookback_days < 2 * self.min_segment_days + 7:
            raise ValueError(
                f"lookback_days ({self.lookback_days}) must cover two segments of "
                f"min_segment_days ({self.min_segment_days}) and a week"
            )
        if not self.segment_columns:
            raise ValueError("segment_columns must name at least one fact column")
        return self


@dataclass(frozen=True)
class LevelAdjustment:
    """Facts with ``column == value`` dated before ``before`` are multiplied by ``factor``
    (the level after the change / before it)."""

    column: str
    value: str
    before: date
    factor: float

    def describe(self) -> str:
        """One line: ``cargo_type=coal before 2025-01-10 x1.600``."""
        return f"{self.column}={self.value} before {self.before} x{self.factor:.3f}"


def adjust_levels(facts: pd.DataFrame, adjustments: Sequence[LevelAdjustment]) -> pd.DataFrame:
    """A copy of ``facts`` with every adjustment applied to ``volume_tonnes`` (in order;
    facts matched by several are multiplied by each factor)."""
    if not adjustments:
        return facts
    missing = [
        c
        for c in {"date", "volume_tonnes", *(a.column for a in adjustments)}
        if c not in facts.columns
    ]
    if missing:
        raise ValueError(f"facts lack column(s) {sorted(missing)} needed by the level adjustments")
    volume = facts["volume_tonnes"].to_numpy(dtype=np.float64, copy=True)
    dates = pd.to_datetime(facts["date"]).to_numpy()
    for a in adjustments:
        if not (math.isfinite(a.factor) and a.factor > 0):
            raise ValueError(f"level adjustment {a.describe()}: the factor must be finite and > 0")
        hit = (facts[a.column].astype(str).to_numpy() == a.value) & (
            dates < pd.Timestamp(a.before).to_datetime64()
        )
        volume[hit] *= a.factor
    return facts.assign(volume_tonnes=volume)


def level_adjustments(
    facts: pd.DataFrame, *, as_of: date, settings: WindowSettings, max_adjustments: int = 4
) -> tuple[LevelAdjustment, ...]:
    """The intervention adjustments that remove the level shifts of ``facts`` up to
    ``as_of``: the segment shift with the largest step is adjusted (its facts before the
    change multiplied by the step), then the search runs again on the adjusted facts, at
    most ``max_adjustments`` times; the network total (``all``) is never
    adjusted itself (it moves with the segment that shifted). Only series with facts before
    the lookback are searched: a segment whose total steps up because new series (a new
    region's lanes) joined it has not changed level in the series that were there."""
    dates = pd.to_datetime(facts["date"])
    first = dates.groupby([facts[c] for c in SERIES_KEY], observed=True).transform("min")
    lookback_start = pd.Timestamp(as_of) - pd.Timedelta(days=settings.lookback_days - 1)
    known = facts.loc[(dates <= pd.Timestamp(as_of)) & (first < lookback_start)]
    out: list[LevelAdjustment] = []
    if max_adjustments < 1:
        raise ValueError(f"max_adjustments must be >= 1, got {max_adjustments}")
    for _ in range(max_adjustments):
        shifts = [s for s in _shifts(known, as_of, settings) if s.column != ALL]
        done = {(a.column, a.value) for a in out}
        shifts = [s for s in shifts if (s.column, s.value) not in done]
        if not shifts:
            break
        top = max(shifts, key=lambda s: abs(math.log(s.shift.ratio)))
        step = LevelAdjustment(top.column, top.value, top.date, top.shift.ratio)
        out.append(step)
        known = adjust_levels(known, [step])
    return tuple(out)


def _shifts(facts: pd.DataFrame, as_of: date, settings: WindowSettings) -> list[SegmentShift]:
    return segment_shifts(
        facts,
        as_of=as_of,
        segment_columns=settings.segment_columns,
        lookback_days=settings.lookback_days,
        min_segment_days=settings.min_segment_days,
        threshold=settings.threshold,
        min_ratio=settings.min_shift_ratio,
        min_share=settings.min_segment_share,
    )


@dataclass(frozen=True)
class WindowChoice:
    """The training window a retrain uses and why.

    ``start`` is the first fact date the training reads (None = the configured window),
    ``weight_before`` / ``pre_change_weight`` the sample-weight spec (examples whose
    forecast origin is before ``weight_before`` weigh ``pre_change_weight``; None = uniform).
    """

    rule: Rule
    cause: str
    as_of: date
    reason: str
    change_date: date | None = None
    start: date | None = None
    window_days: int | None = None
    weight_before: date | None = None
    pre_change_weight: float | None = None
    change_points: tuple[SegmentShift, ...] = ()
    new_segments: dict[str, date] = field(default_factory=dict)

    @property
    def post_change_days(self) -> int | None:
        return None if self.change_date is None else days_between(self.change_date, self.as_of)

    def as_params(self) -> dict[str, str]:
        """The choice as MLflow run parameters/tags (``retrain.window.*``)."""
        points = "; ".join(p.describe() for p in self.change_points)
        new = "; ".join(f"{name} {day}" for name, day in sorted(self.new_segments.items()))
        values = {
            "rule": self.rule,
            "cause": self.cause,
            "as_of": self.as_of.isoformat(),
            "change_date": _iso(self.change_date),
            "start": _iso(self.start),
            "window_days": "" if self.window_days is None else str(self.window_days),
            "weight_before": _iso(self.weight_before),
            "pre_change_weight": (
                "" if self.pre_change_weight is None else f"{self.pre_change_weight:g}"
            ),
            "change_points": points,
            "new_segments": new,
            "reason": self.reason,
        }
        return {PARAM_PREFIX + k: _clip(v) for k, v in values.items()}

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with this window: ``data.train_window_days`` and the model's
        ``weight_before`` / ``pre_change_weight``; unchanged for ``full_window``."""
        if self.rule == FULL_WINDOW:
            return settings
        from freightml.models import make_model

        allowed = make_model(settings.model.name).get_params()
        if not all(p in allowed for p in WEIGHT_PARAMS):
            raise ValueError(
                f"the {self.rule} window needs sample weights, but model "
                f"{settings.model.name!r} takes no {list(WEIGHT_PARAMS)} parameters; "
                "use the gbm model or the full window"
            )
        if self.weight_before is None or self.pre_change_weight is None:
            raise ValueError(f"a {self.rule} window needs weight_before and pre_change_weight")
        params = {
            **settings.model.params,
            "weight_before": self.weight_before.isoformat(),
            "pre_change_weight": self.pre_change_weight,
        }
        model = ModelSettings.model_validate({**settings.model.model_dump(), "params": params})
        data = settings.data
        if self.window_days is not None:
            data = DataSettings.model_validate(
                {**settings.data.model_dump(), "train_window_days": self.window_days}
            )
        return settings.model_copy(update={"model": model, "data": data})


def _iso(day: date | None) -> str:
    return "" if day is None else day.isoformat()


def _clip(text: str) -> str:
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."


def regime_start(changes: Sequence[date]) -> date:
    """The first day of the current regime: the latest change, where changes less than
    a week before it count as the same event seen in several segments (the detector places
    each within a few days) and the event starts at the earliest of them."""
    latest = max(changes)
    return min(c for c in changes if (latest - c).days < SAME_EVENT_DAYS)


def choose_window(
    facts: pd.DataFrame,
    *,
    as_of: date,
    settings: WindowSettings,
    new_segments: Sequence[str] = (),
    cause: str = "scheduled",
    train_window_days: int = DataSettings.model_fields["train_window_days"].default,
) -> WindowChoice:
    """The training window for a retrain on ``facts`` up to ``as_of`` (see the module
    docstring for the rule). ``new_segments`` are regions, stations or cargo types the
    decision found new (their first day in the facts is a change); ``cause`` is what
    started the retrain (recorded; the rule itself looks at the facts, so a scheduled
    retrain after an undetected-by-monitoring shift is shift-aware too).
    ``train_window_days`` is the configured window (``data.train_window_days``)."""
    as_of = pd.Timestamp(as_of).date()
    if facts.empty:
        raise ValueError("no facts to choose a training window from")
    last = pd.Timestamp(facts["date"].max()).date()
    if last < as_of - timedelta(days=settings.min_segment_days):
        raise ValueError(
            f"the facts end on {last}, long before the as-of date {as_of}: the window rule "
            "needs the recent facts"
        )
    facts = facts.loc[pd.to_datetime(facts["date"]) <= pd.Timestamp(as_of)]
    shifts = _shifts(facts, as_of, settings)
    new = first_seen(facts, list(dict.fromkeys(new_segments))) if new_segments else {}
    candidates = [s.date for s in shifts] + list(new.values())
    if not candidates:
        return WindowChoice(
            rule=FULL_WINDOW,
            cause=cause,
            as_of=as_of,
            reason=(
                f"no level shift in the last {settings.lookback_days} days of any segment "
                "and no new segment: the configured window, uniform weights"
            ),
        )
    change = regime_start(candidates)
    evidence = "; ".join(
        [s.describe() for s in shifts] + [f"new {n} from {d}" for n, d in sorted(new.items())]
    )
    post = days_between(change, as_of)
    cap = settings.max_window_days or train_window_days
    if post >= settings.min_post_change_days:
        window = min(post + settings.history_days, cap)
        return WindowChoice(
            rule=POST_CHANGE,
            cause=cause,
            as_of=as_of,
            change_date=change,
            start=as_of - timedelta(days=window - 1),
            window_days=window,
            weight_before=change,
            pre_change_weight=0.0,
            change_points=tuple(shifts),
            new_segments=new,
            reason=(
                f"abrupt change on {change} ({evidence}); {post} days since >= "
                f"{settings.min_post_change_days}: train on examples from the change, with "
                f"{settings.history_days} days of history before it for the features"
            ),
        )
    return WindowChoice(
        rule=DOWN_WEIGHT,
        cause=cause,
        as_of=as_of,
        change_date=change,
        weight_before=change,
        pre_change_weight=settings.pre_change_weight,
        change_points=tuple(shifts),
        new_segments=new,
        reason=(
            f"abrupt change on {change} ({evidence}); only {post} days since (< "
            f"{settings.min_post_change_days}): the configured window, examples before the "
            f"change weigh {settings.pre_change_weight:g}"
        ),
    )
