"""The shapes monitoring exchanges: one :class:`Snapshot` per `freightml monitor run`.

A snapshot is JSON first (stored in the collector's ``monitoring_snapshots`` table, written
as a file, read by the retraining policy); the HTML report and the Prometheus gauges are
views of it. Segments are labelled ``"all"`` or ``"<column>=<value>"``
(:func:`segment_label`), e.g. ``"origin_region=Западно-Сибирская"``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ALL: str = "all"
Status = Literal["green", "amber", "red"]
Statistic = Literal["psi", "wasserstein", "jensen_shannon", "unseen_share"]
FeatureKind = Literal["numeric", "categorical"]
# input: a model input feature; target: the fact (tonnes); prediction: the model's forecast;
# identity: stations, series and regions (new ones are "unseen")
FeatureRole = Literal["input", "target", "prediction", "identity"]
AlertKind = Literal["drift", "quality", "coverage", "staleness", "no_data"]
_STATUS_ORDER: dict[str, int] = {"green": 0, "amber": 1, "red": 2}


def segment_label(column: str | None, value: object = None) -> str:
    """``"all"`` for the whole population, else ``"<column>=<value>"``."""
    return ALL if column is None else f"{column}={value}"


def worst(*statuses: Status) -> Status:
    """The most severe of ``statuses`` (green < amber < red); green when none."""
    return max(statuses, key=_STATUS_ORDER.__getitem__, default="green")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Expectation(_Model):
    """What the backtest expects of the model in one segment and horizon bucket
    (stored in the reference profile; realised quality is compared with it)."""

    segment: str
    horizon_bucket: str
    wape: float
    bias: float
    n: int  # backtest forecasts behind the figure


class DriftResult(_Model):
    """One statistic of one feature in one segment, against the reference profile."""

    feature: str
    kind: FeatureKind
    role: FeatureRole
    segment: str
    statistic: Statistic
    value: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int


class DriftReport(_Model):
    """Drift of one window of current data ("facts" or "requests") against the profile."""

    source: Literal["facts", "requests"]
    window_start: date
    window_end: date
    rows: int
    results: list[DriftResult]
    drifted_segments: list[str]  # judged segments whose drifted-feature share reached the limit
    unsupported_segments: list[str]  # segments with too few current rows to judge


class QualityCell(_Model):
    """Realised quality of one segment and horizon bucket over the mature window."""

    segment: str
    horizon_bucket: str
    n: int  # forecasts with a mature fact
    actual_tonnes: float
    wape: float | None  # None when actual_tonnes is below the configured minimum
    mae: float
    bias: float | None
    expected_wape: float | None  # from the profile, None when the backtest had no figure
    degraded: bool  # wape_low > expected_wape x (1 + tolerance)
    wape_low: float | None = None  # lower confidence bound of wape (series bootstrap)


class QualityDay(_Model):
    """Realised quality of one segment on one target day (all horizons)."""

    date: date
    segment: str
    n: int
    wape: float | None
    mae: float
    bias: float | None
    expected_wape: float | None
    exceeds: bool  # rolling_wape_low > rolling_expected_wape x (1 + tolerance)
    # pooled over the quality.rolling_days days ending on this day (what the rule judges)
    rolling_wape: float | None = None
    rolling_wape_low: float | None = None  # its lower confidence bound (series bootstrap)
    rolling_expected_wape: float | None = None


class SeriesTrace(_Model):
    """Forecast against actual for one series (the report plots the worst ones)."""

    origin_station: str
    destination_station: str
    cargo_type: str
    segment: str
    wape: float | None
    dates: list[date]
    forecast: list[float]
    actual: list[float]


class CoverageCell(_Model):
    """Realised coverage of the forecasts' 80% interval in one segment."""

    segment: str
    n: int  # mature forecasts that carry an interval
    n_series: int  # series among them
    coverage_80: float | None  # None below quality.min_coverage_forecasts
    # |coverage_80 - 0.80| > quality.max_coverage_error and > coverage_z standard errors of
    # a share over n_series
    drifted: bool


class QualityReport(_Model):
    """Forecasts joined with the latest revision of their facts, once their day is mature."""

    window_start: date
    window_end: date
    mature_until: date | None  # the newest target day with facts
    forecasts_scored: int
    forecasts_pending: int  # target day not mature yet
    cells: list[QualityCell]
    daily: list[QualityDay]
    degraded_segments: list[str]
    worst_series: list[SeriesTrace]
    coverage: list[CoverageCell] = Field(default_factory=list)
    coverage_drifted_segments: list[str] = Field(default_factory=list)


class Freshness(_Model):
    """How current the facts are."""

    newest_fact: date | None
    facts_age_days: float | None  # as_of minus the newest fact date
    active_series: int  # series with a fact in the reference or the window
    stale_series: int  # of those, series with no fact for stale_after_days
    stale_series_share: float
    stale: bool  # an alert condition holds (age or share over its limit)


class SegmentStatus(_Model):
    """Green, amber (drift) or red (degraded quality, stale facts) with the reasons."""

    segment: str
    status: Status
    reasons: list[str]


class Alert(_Model):
    kind: AlertKind
    segment: str
    message: str


class Snapshot(_Model):
    """One monitoring run: drift, realised quality, freshness and the verdict per segment."""

    id: str
    created_at: datetime
    as_of: date
    window_days: int
    model_name: str
    model_version: str | None
    status: Status
    segments: list[SegmentStatus]
    alerts: list[Alert]
    drift: list[DriftReport]
    quality: QualityReport | None
    freshness: Freshness
    thresholds: dict[str, object]  # the MonitoringConfig used, as JSON
    # the serving environment (namespace) whose requests and forecasts were judged; None:
    # every environment's together (one machine, or a collector serving one environment)
    environment: str | None = None

    @property
    def has_alert(self) -> bool:
        return bool(self.alerts)
