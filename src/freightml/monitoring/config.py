"""The monitoring thresholds as a typed, frozen object loaded from configs/monitoring.yaml."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from freightml.policy_files import load_yaml_model

DEFAULT_MONITORING_PATH = Path("configs/monitoring.yaml")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProfileSpec(_Frozen):
    """How the reference profile bins the training window."""

    numeric_bins: int = Field(10, ge=2, le=100)
    max_categories: int = Field(5000, ge=1)


class DriftSpec(_Frozen):
    """Thresholds of the drift statistics (a value above its threshold is drift)."""

    psi: float = Field(0.1, gt=0)
    wasserstein: float = Field(0.15, gt=0)
    jensen_shannon: float = Field(0.1, gt=0, le=1)
    unseen_share: float = Field(0.05, ge=0, le=1)
    min_rows: int = Field(200, ge=1)
    min_series: int = Field(30, ge=1)
    drifted_feature_share: float = Field(0.5, gt=0, le=1)


class QualitySpec(_Frozen):
    """When realised quality counts as degraded."""

    tolerance: float = Field(0.25, ge=0)
    degraded_days: int = Field(7, ge=1)
    min_actual_tonnes: float = Field(1.0, ge=0)
    rolling_days: int = Field(7, ge=1, le=28)
    confidence: float = Field(0.9, ge=0.5, lt=1)
    bootstrap_samples: int = Field(200, ge=20, le=10_000)
    # realised coverage of the forecasts' 80% interval: a segment whose share of actuals
    # inside it leaves 0.80 +- this (with enough forecasts) is alerted
    max_coverage_error: float = Field(0.10, ge=0, le=0.8)
    min_coverage_forecasts: int = Field(200, ge=1)
    coverage_z: float = Field(2.0, ge=0)  # ... and more than this many standard errors


class FreshnessSpec(_Frozen):
    """When facts count as stale."""

    stale_after_days: int = Field(7, ge=1)
    max_facts_age_days: int = Field(3, ge=0)
    max_stale_series_share: float = Field(0.2, ge=0, le=1)


class MonitoringConfig(_Frozen):
    """Everything `freightml monitor run` judges by; see docs/monitoring.md."""

    version: int = 1
    window_days: int = Field(7, ge=1, le=366)
    horizon_buckets: tuple[tuple[int, int], ...] = ((1, 7), (8, 14), (15, 28))
    profile: ProfileSpec = ProfileSpec()
    drift: DriftSpec = DriftSpec()
    quality: QualitySpec = QualitySpec()
    freshness: FreshnessSpec = FreshnessSpec()

    @field_validator("horizon_buckets")
    @classmethod
    def _buckets_in_order(cls, value: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        previous = 0
        for low, high in value:
            if low != previous + 1 or high < low:
                raise ValueError(
                    f"buckets must be contiguous from 1 and each [low, high] with low <= high; "
                    f"got {[list(b) for b in value]}"
                )
            previous = high
        return value

    def bucket_labels(self) -> list[str]:
        """``"1-7"``, ``"8-14"``, ... in order."""
        return [f"{low}-{high}" for low, high in self.horizon_buckets]

    def bucket_of(self, horizon: int) -> str | None:
        """The label of the bucket holding ``horizon`` (None beyond the last one)."""
        for low, high in self.horizon_buckets:
            if low <= horizon <= high:
                return f"{low}-{high}"
        return None


def load_monitoring_config(path: str | Path = DEFAULT_MONITORING_PATH) -> MonitoringConfig:
    """Read and validate the monitoring YAML; errors name the file and the bad keys."""

    return load_yaml_model(path, MonitoringConfig, "monitoring config")
