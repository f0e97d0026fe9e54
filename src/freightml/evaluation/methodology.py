"""The quality methodology as a typed, frozen object loaded from configs/methodology.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from freightml.policy_files import load_yaml_model

DEFAULT_METHODOLOGY_PATH = Path("configs/methodology.yaml")
SegmentColumn = Literal[
    "origin_region", "destination_region", "cargo_type", "origin_station", "destination_station"
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BacktestSpec(_Frozen):
    """Rolling-origin backtest: ``folds`` cutoffs ``step_days`` apart, scored on 1..horizon
    for every series with at least ``min_history_days`` of history at the cutoff."""

    folds: int = Field(ge=1, le=52)
    step_days: int = Field(ge=1)
    horizon_days: int = Field(ge=1, le=28)
    min_history_days: int = Field(91, ge=1)


class GateSpec(_Frozen):
    """Limits a challenger must meet on the backtest to be registered as a candidate."""

    max_wape_ratio_to_baseline: float = Field(gt=0)
    max_segment_wape_ratio_to_baseline: float = Field(gt=0)
    min_segment_share: float = Field(ge=0, le=1)
    min_segment_series: int = Field(ge=1)
    max_abs_bias: float = Field(ge=0)
    # |coverage of the 80% interval - 0.80| on the backtest; None: intervals not gated
    max_coverage_error_80: float | None = Field(None, ge=0, le=0.8)


class PromotionSpec(_Frozen):
    """How much better than the champion a challenger must be (relative WAPE improvement,
    on top of being strictly better)."""

    min_wape_improvement_over_champion: float = Field(ge=0, lt=1)


class Methodology(_Frozen):
    """Everything the evaluation step enforces; see docs/methodology.md."""

    version: int = 1
    primary_metric: Literal["wape"] = "wape"
    baseline: Literal["seasonal_naive"] = "seasonal_naive"
    metrics: tuple[Literal["wape", "mae", "bias"], ...] = ("wape", "mae", "bias")
    backtest: BacktestSpec
    segments: tuple[SegmentColumn, ...] = ("origin_region", "cargo_type")
    gates: GateSpec
    promotion: PromotionSpec


def load_methodology(path: str | Path = DEFAULT_METHODOLOGY_PATH) -> Methodology:
    """Read and validate the methodology YAML; errors name the file and the bad keys."""

    return load_yaml_model(path, Methodology, "methodology")
