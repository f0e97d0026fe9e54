"""Level adjustments: facts restated at a segment's new level after an abrupt change.

After a level shift in a segment (one cargo type's volumes x1.6 from some day), a model's
long look-back features (28- to 364-day means and lags) mix the old and the new level for
weeks. The classic intervention adjustment multiplies the segment's facts *before* the
change by the step (level after / level before), so every look-back reads one consistent
level. freightml.retraining.window estimates the step; this module holds the adjustment and
applies it.

An adjustment belongs to a model version: the GBM's ``level_adjustments`` parameter lists
them in their text form (:meth:`LevelAdjustment.describe`, for example
``cargo_type=coal before 2025-09-17 x1.612``), and every reader of facts for that model
applies them to the history it builds features from: the training examples
(freightml.stages.features), the backtest (the model's history in the folds on or after
the change; actuals and the seasonal-naive baseline stay raw), the predictor's history
window and batch scoring (freightml.features.window), and monitoring's drift of inputs
and predictions. A model without the parameter (any model before it existed, the
baselines) reads raw facts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

PARAM = "level_adjustments"  # the model parameter that lists a version's adjustments
_TEXT = re.compile(
    r"^(?P<column>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.+) before "
    r"(?P<before>\d{4}-\d{2}-\d{2}) x(?P<factor>[0-9.eE+-]+)$"
)


@dataclass(frozen=True)
class LevelAdjustment:
    """Facts with ``column == value`` dated before ``before`` are multiplied by ``factor``
    (the level after the change / before it)."""

    column: str
    value: str
    before: date
    factor: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(
                f"level adjustment {self.describe()}: the factor must be finite and > 0"
            )

    def describe(self) -> str:
        """The text form, one line, the factor to 4 significant digits (what a model
        version records): ``cargo_type=coal before 2025-01-10 x1.612``."""
        return f"{self.column}={self.value} before {self.before} x{self.factor:.4g}"

    @classmethod
    def parse(cls, text: str) -> LevelAdjustment:
        """The adjustment of :meth:`describe`'s text form; ValueError names what is wrong."""
        match = _TEXT.match(str(text).strip())
        if match is None:
            raise ValueError(
                f"level adjustment {text!r} is not of the form "
                "'<fact column>=<value> before <YYYY-MM-DD> x<factor>'"
            )
        try:
            before = date.fromisoformat(match["before"])
            factor = float(match["factor"])
        except ValueError as exc:
            raise ValueError(f"level adjustment {text!r}: {exc}") from exc
        return cls(match["column"], match["value"], before, factor)


def parse_adjustments(texts: Iterable[str] | None) -> tuple[LevelAdjustment, ...]:
    """Adjustments from their text forms (None or empty: none)."""
    if texts is None:
        return ()
    if isinstance(texts, str):
        raise ValueError(f"level adjustments must be a list of strings, got the string {texts!r}")
    return tuple(LevelAdjustment.parse(t) for t in texts)


def adjustments_of(model: Any) -> tuple[LevelAdjustment, ...]:
    """The adjustments a fitted or unfitted estimator's history must read with (its
    ``level_adjustments`` parameter; none for an estimator without one)."""
    return parse_adjustments(getattr(model, PARAM, None))


def adjust_levels(facts: pd.DataFrame, adjustments: Sequence[LevelAdjustment]) -> pd.DataFrame:
    """A copy of ``facts`` with every adjustment applied to ``volume_tonnes`` (in order;
    facts matched by several are multiplied by each factor); ``facts`` itself without."""
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
        hit = (facts[a.column].astype(str).to_numpy() == a.value) & (
            dates < pd.Timestamp(a.before).to_datetime64()
        )
        volume[hit] *= a.factor
    return facts.assign(volume_tonnes=volume)
