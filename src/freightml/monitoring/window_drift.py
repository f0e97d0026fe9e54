"""Drift of a window of facts or of logged requests: the rows turned into binned parts
(:class:`~freightml.monitoring.drift.Part`) and judged against the reference profile by
:func:`~freightml.monitoring.drift.drift_report`. The monitoring run calls these."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from freightml.features.build import FEATURE_INPUT_COLUMNS, build_examples
from freightml.features.levels import adjust_levels, adjustments_of
from freightml.monitoring.config import MonitoringConfig
from freightml.monitoring.drift import Part, drift_report
from freightml.monitoring.profile import (
    PREDICTION,
    TARGET,
    ReferenceProfile,
    series_ids,
)
from freightml.monitoring.types import (
    DriftReport,
)

REQUEST_COLUMNS = [
    "origin_station",
    "destination_station",
    "cargo_type",
    "origin_region",
    "origin_date",
    "target_date",
    "horizon",
    "tonnes",
]


def _window(window_start: Any, window_end: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = pd.Timestamp(window_start).normalize(), pd.Timestamp(window_end).normalize()
    if end < start:
        raise ValueError(f"window_end {end.date()} is before window_start {start.date()}")
    return start, end


def _segments(frame: pd.DataFrame, profile: ReferenceProfile) -> dict[str, pd.Series]:
    return {c: frame[c].reset_index(drop=True) for c in profile.segment_columns if c in frame}


def drift_of_facts(
    profile: ReferenceProfile,
    facts: pd.DataFrame,
    *,
    window_start: date | str | pd.Timestamp,
    window_end: date | str | pd.Timestamp,
    config: MonitoringConfig,
    model: Any = None,
) -> DriftReport:
    """Drift of the facts of a window against the training profile.

    Inputs: the training features (``build_examples`` with the profile's ``horizon_max``
    and ``min_history_days``) for every day of the window as forecast origin, all horizons,
    from the facts as ``model`` reads them (restated by its level adjustments,
    freightml.features.levels, like its training examples); ``facts`` must hold the history
    before the window (at least a year for ``yoy_ratio``). Target: ``volume_tonnes`` of the
    facts dated in the window. Prediction: ``model``'s forecast (tonnes) of those examples,
    when a fitted model (as ``mlflow.sklearn`` loads it) is given. Identities:
    origin/destination stations and series of the window's facts.
    """

    start, end = _window(window_start, window_end)
    missing = [c for c in FEATURE_INPUT_COLUMNS if c not in facts.columns]
    if missing:
        raise ValueError(f"drift_of_facts: facts lack columns {missing}")
    days = pd.to_datetime(facts["date"])
    in_window = facts.loc[(days >= start) & (days <= end)].reset_index(drop=True)
    if in_window.empty:
        raise ValueError(
            f"drift_of_facts: no facts dated in the window {start.date()}..{end.date()}"
        )
    last = min(end, days.max())
    origins = list(pd.date_range(start, last, freq="D"))
    # the inputs as the model reads them: the facts restated by its level adjustments
    examples = build_examples(
        adjust_levels(facts, adjustments_of(model)),
        origins=origins,
        horizon_max=profile.horizon_max,
        min_history_days=profile.min_history_days,
        holiday_country=profile.holiday_country,
    )
    parts = []
    inputs = [f for f in profile.features if f.role == "input"]
    part = Part(rows=len(examples), segments=_segments(examples, profile))
    for f in inputs:
        if f.kind == "numeric":
            part.numeric[f.name] = examples[f.name].to_numpy(dtype=np.float64)
        else:
            part.categorical[f.name] = examples[f.name].reset_index(drop=True)
    if model is not None and any(f.name == PREDICTION for f in profile.features):
        part.numeric[PREDICTION] = np.asarray(model.predict(examples), dtype=np.float64)
    part.months = pd.to_datetime(examples["target_date"]).dt.month.to_numpy()
    parts.append(part)
    target = Part(
        rows=len(in_window),
        segments=_segments(in_window, profile),
        months=pd.to_datetime(in_window["date"]).dt.month.to_numpy(),
        units=series_ids(in_window),
    )
    target.numeric[TARGET] = in_window["volume_tonnes"].to_numpy(dtype=np.float64)
    _add_identities(target, in_window, profile)
    parts.append(target)
    return drift_report(
        profile,
        parts,
        source="facts",
        window_start=start.date(),
        window_end=end.date(),
        config=config,
    )


def _add_identities(part: Part, frame: pd.DataFrame, profile: ReferenceProfile) -> None:
    stations = frozenset(profile.stations)
    part.identity["origin_station"] = (frame["origin_station"].reset_index(drop=True), stations)
    part.identity["destination_station"] = (
        frame["destination_station"].reset_index(drop=True),
        stations,
    )
    part.identity["series"] = (
        pd.Series(series_ids(frame), dtype=object),
        frozenset(profile.series),
    )


def drift_of_requests(
    profile: ReferenceProfile,
    requests: pd.DataFrame,
    *,
    window_start: date | str | pd.Timestamp,
    window_end: date | str | pd.Timestamp,
    config: MonitoringConfig,
) -> DriftReport:
    """Drift of the online forecasts of a window (one row per forecast row, columns
    ``REQUEST_COLUMNS``; ``origin_region`` may be missing for unknown stations).

    Judged: identities (unseen origin/destination stations and series), ``cargo_type`` and
    ``origin_region`` (JS distance and unseen share; a missing region is not counted),
    ``horizon`` (PSI and Wasserstein) and the forecast ``tonnes`` against the in-sample
    predictions. The rows of requests made in the window are used: a request made on day D
    forecasts from the newest fact day before it, so rows whose ``origin_date`` + 1 day
    falls in the window.
    """
    start, end = _window(window_start, window_end)
    missing = [c for c in REQUEST_COLUMNS if c not in requests.columns]
    if missing:
        raise ValueError(f"drift_of_requests: requests lack columns {missing}")
    when = pd.to_datetime(requests["origin_date"]) + pd.Timedelta(days=1)
    frame = requests.loc[(when >= start) & (when <= end)].reset_index(drop=True)
    part = Part(rows=len(frame), segments=_segments(frame, profile))
    part.numeric["horizon"] = pd.to_numeric(frame["horizon"], errors="raise").to_numpy(
        dtype=np.float64
    )
    if any(f.name == PREDICTION for f in profile.features):
        part.numeric[PREDICTION] = pd.to_numeric(frame["tonnes"], errors="raise").to_numpy(
            dtype=np.float64
        )
    for name in ("cargo_type", "origin_region"):
        part.categorical[name] = frame[name].astype(object).where(frame[name].notna(), None)
    _add_identities(part, frame, profile)
    part.months = pd.to_datetime(frame["target_date"]).dt.month.to_numpy()
    part.units = series_ids(frame)
    return drift_report(
        profile,
        [part],
        source="requests",
        window_start=start.date(),
        window_end=end.date(),
        config=config,
    )


def numeric_part(
    frame: Mapping[str, np.ndarray], segments: Mapping[str, pd.Series] | None = None
) -> Part:
    """A part of numeric columns only (profile feature names), e.g. for the benchmark."""
    rows = len(next(iter(frame.values()))) if frame else 0
    return Part(rows=rows, segments=dict(segments or {}), numeric=dict(frame))
