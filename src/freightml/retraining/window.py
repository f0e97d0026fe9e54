"""The shift-aware training window: which facts a retrain reads, how much the examples
from before an abrupt change weigh, and how the facts before a level shift are restated
(docs/retraining.md, "The training window rule").

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
  - with less, after a level shift of a segment that can be restated (``level_adjust``):
    ``restated``: the configured window, uniform weights, and the shifted segment's facts
    before the change restated at the new level (below);
  - with less, after a level shift that is not restated: ``down_weight``: the configured
    window, the examples before ``c`` weigh ``pre_change_weight``;
  - when the only change is new series (a new region's lanes; the series there before the
    lookback show no level shift): ``full_window``, the change recorded (the new lanes have
    no earlier examples to drown, and down-weighting the others measured worse). A new
    region that takes traffic from established lanes (shippers routing part of a cargo
    through it) steps those lanes down: a level shift of their segment, handled as above.

The restatement (``restated``, and ``post_change`` after a level shift):
:func:`level_adjustments` estimates the classic intervention adjustment (the shifted
segment's facts before the change multiplied by the step after/before, so the long
look-back features read one consistent level). It becomes the model's ``level_adjustments``
parameter, and every reader of facts for that model applies it (freightml.features.levels):
training examples, backtests, the predictor's history, batch scoring, monitoring. Restating
the training facts alone measured worse than not restating (bench/RESULTS.md), which is why
the model version carries it.

The choice is applied to :class:`~freightml.config.Settings` by :meth:`WindowChoice.apply`
(the GBM's ``weight_before`` / ``pre_change_weight`` parameters, which its fit and every
backtest refit honour, its ``level_adjustments``, and ``data.train_window_days``) and
recorded by :meth:`WindowChoice.as_params` as ``retrain.window.*`` run parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from freightml.config import DataSettings, ModelSettings, Settings
from freightml.features.build import SERIES_KEY
from freightml.features.levels import PARAM as LEVEL_PARAM
from freightml.features.levels import LevelAdjustment, adjust_levels
from freightml.retraining.changepoint import (
    ALL,
    SegmentShift,
    days_between,
    first_seen,
    segment_shifts,
)

Rule = Literal["full_window", "post_change", "restated", "down_weight"]
FULL_WINDOW: Final = "full_window"
POST_CHANGE: Final = "post_change"
RESTATED: Final = "restated"
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
    level_adjust: bool = Field(
        True,
        description="after a level shift, restate the shifted segment's facts before the "
        "change at the new level (the model's level_adjustments, which training, serving, "
        "batch scoring and monitoring all apply)",
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


def level_adjustments(
    facts: pd.DataFrame, *, as_of: date, settings: WindowSettings, max_adjustments: int = 4
) -> tuple[LevelAdjustment, ...]:
    """The intervention adjustments that remove the level shifts of ``facts`` up to
    ``as_of``: the segment shift with the largest step is adjusted (its facts before the
    change multiplied by the step), then the search runs again on the adjusted facts, at
    most ``max_adjustments`` times; the network total (``all``) is never
    adjusted itself (it moves with the segment that shifted). Only series with facts before
    the lookback are searched (:func:`established_facts`)."""
    known = established_facts(facts, as_of=as_of, settings=settings)
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
        # rounded as the model parameter records it, so training and serving use one factor
        step = LevelAdjustment(top.column, top.value, top.date, float(f"{top.shift.ratio:.4g}"))
        out.append(step)
        known = adjust_levels(known, [step])
    return tuple(out)


def established_facts(
    facts: pd.DataFrame, *, as_of: date, settings: WindowSettings
) -> pd.DataFrame:
    """The facts up to ``as_of`` of the series that had facts before the lookback: a
    segment whose total steps up only because new series joined it has not changed level."""
    dates = pd.to_datetime(facts["date"])
    first = dates.groupby([facts[c] for c in SERIES_KEY], observed=True).transform("min")
    lookback_start = pd.Timestamp(as_of) - pd.Timedelta(days=settings.lookback_days - 1)
    return facts.loc[(dates <= pd.Timestamp(as_of)) & (first < lookback_start)]


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
    adjustments: tuple[LevelAdjustment, ...] = ()

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
            "level_adjustments": "; ".join(a.describe() for a in self.adjustments),
            "reason": self.reason,
        }
        return {PARAM_PREFIX + k: _clip(v) for k, v in values.items()}

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with this window: ``data.train_window_days``, the model's
        ``weight_before`` / ``pre_change_weight`` (``post_change``, ``down_weight``) and
        ``level_adjustments``; unchanged for ``full_window``."""
        if self.rule == FULL_WINDOW:
            return settings
        from freightml.models import make_model  # noqa: PLC0415

        weighted = self.rule in (POST_CHANGE, DOWN_WEIGHT)
        if self.rule == RESTATED and not self.adjustments:
            raise ValueError("a restated window needs level adjustments")
        allowed = make_model(settings.model.name).get_params()
        needed = [
            *(WEIGHT_PARAMS if weighted else ()),
            *([LEVEL_PARAM] if self.adjustments else []),
        ]
        if not all(p in allowed for p in needed):
            raise ValueError(
                f"the {self.rule} window needs the model parameters {needed}, but model "
                f"{settings.model.name!r} lacks {[p for p in needed if p not in allowed]}; "
                "use the gbm model or the full window"
            )
        params = dict(settings.model.params)
        if weighted:
            if self.weight_before is None or self.pre_change_weight is None:
                raise ValueError(f"a {self.rule} window needs weight_before and pre_change_weight")
            params["weight_before"] = self.weight_before.isoformat()
            params["pre_change_weight"] = self.pre_change_weight
        if self.adjustments:
            params[LEVEL_PARAM] = [a.describe() for a in self.adjustments]
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
    adjustments = (
        level_adjustments(facts, as_of=as_of, settings=settings)
        if settings.level_adjust and any(s.column != ALL for s in shifts)
        else ()
    )
    adjusted = (
        " The facts before the change are restated: "
        + "; ".join(a.describe() for a in adjustments)
        + "."
        if adjustments
        else ""
    )
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
            adjustments=adjustments,
            reason=(
                f"abrupt change on {change} ({evidence}); {post} days since >= "
                f"{settings.min_post_change_days}: train on examples from the change, with "
                f"{settings.history_days} days of history before it for the features."
                f"{adjusted}"
            ),
        )

    def made(rule: Rule, reason: str, weight: float | None = None) -> WindowChoice:
        return WindowChoice(
            rule=rule,
            cause=cause,
            as_of=as_of,
            reason=reason,
            change_date=change,
            weight_before=None if weight is None else change,
            pre_change_weight=weight,
            change_points=tuple(shifts),
            new_segments=new,
            adjustments=adjustments,
        )

    if adjustments:
        return made(
            RESTATED,
            f"abrupt change on {change} ({evidence}); only {post} days since (< "
            f"{settings.min_post_change_days}): the configured window, uniform weights."
            f"{adjusted}",
        )
    if not shifts or not _shifts(
        established_facts(facts, as_of=as_of, settings=settings), as_of, settings
    ):
        # only new series (a new region's lanes): they have no earlier examples that could
        # drown them, and down-weighting the other lanes' measured worse (bench/RESULTS.md)
        return made(
            FULL_WINDOW,
            f"abrupt change on {change} ({evidence}): new series, while the series there "
            "before kept their level; nothing to restate or outweigh: the configured window, "
            "uniform weights",
        )
    return made(
        DOWN_WEIGHT,
        f"abrupt change on {change} ({evidence}); only {post} days since (< "
        f"{settings.min_post_change_days}), no level adjustment: the configured window, "
        f"examples before the change weigh {settings.pre_change_weight:g}",
        weight=settings.pre_change_weight,
    )
