"""Features: cut leakage-safe training examples from the facts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from freightml.compute import write_training_examples
from freightml.compute.layout import count_rows, filesystem_of
from freightml.config import Settings
from freightml.features.build import EXAMPLE_COLUMNS
from freightml.features.levels import adjustments_of
from freightml.stages.result import StageResult
from freightml.timing import timed


class FeaturesInfo(StageResult):
    rows: int
    columns: int


def feature_kwargs(settings: Settings) -> dict[str, Any]:
    """The example-cutting options of ``settings`` (the same for training and backtests)."""
    f = settings.features
    return {
        "origin_step_days": f.origin_step_days,
        "horizon_max": f.horizon_max,
        "horizons_per_origin": f.horizons_per_origin,
        "min_history_days": f.min_history_days,
        "holiday_country": f.holiday_country,
    }


def planned_feature_kwargs(settings: Settings, facts: pd.DataFrame) -> dict[str, Any]:
    """``feature_kwargs`` as the panel allows: on a short panel a series needs less history
    at an origin, so the selection's first validation fold still has training examples
    (freightml.evaluation.selection.history_plan; never under 28 days), and an unset
    ``origin_step_days`` becomes ``auto_origin_step`` of the panel."""
    from freightml.evaluation import load_methodology  # noqa: PLC0415
    from freightml.evaluation.selection import history_plan  # noqa: PLC0415

    kw = feature_kwargs(settings)
    dates = pd.to_datetime(facts["date"])
    plan = history_plan(
        dates.min(),
        dates.max(),
        load_methodology(settings.methodology_path),
        min_history_days=kw["min_history_days"],
        inner_folds=settings.selection.inner_folds if settings.selection.enabled else 1,
    )
    step = kw["origin_step_days"] or auto_origin_step(
        (dates.max() - dates.min()).days - plan.min_history_days
    )
    return {**kw, "min_history_days": plan.min_history_days, "origin_step_days": step}


TARGET_ORIGINS = 90
MAX_ORIGIN_STEP = 7


def auto_origin_step(span_days: int) -> int:
    """The default days between training origins for ``span_days`` of origin range: 7
    (one weekday, the cheapest) where that still gives ~90 origins, less on short panels,
    down to every day (where 7 would leave a few origins, all on one weekday)."""
    return int(min(MAX_ORIGIN_STEP, max(1, span_days // TARGET_ORIGINS)))


def build_features(
    settings: Settings,
    facts_path: str | Path,
    out_path: str | Path,
    *,
    staging_dir: str | None = None,
) -> FeaturesInfo:
    """Cut the training examples from the facts (restated by the configured model's level
    adjustments, freightml.features.levels; the history rule of ``planned_feature_kwargs``)
    and write them as Parquet: a file on pandas, a directory of the Spark tasks' files on
    Spark. The paths may be object store URIs on Spark (a SparkApplication's job)."""
    from freightml.stages.train import make_estimator  # noqa: PLC0415

    with timed("build_features"):
        filesystem, path = filesystem_of(facts_path)
        dates = pq.read_table(path, columns=["date"], filesystem=filesystem).to_pandas()
        rows = write_training_examples(
            facts_path,
            out_path,
            settings.compute,
            adjustments=adjustments_of(make_estimator(settings)),
            staging_dir=staging_dir,
            seed=settings.model.params.get("random_state", 0),
            **planned_feature_kwargs(settings, dates),
        )
    return FeaturesInfo(rows=rows, columns=len(EXAMPLE_COLUMNS))


def build_features_on_operator(
    settings: Settings,
    facts_uri: str,
    out_uri: str,
    *,
    api: Any = None,
    poll_seconds: float = 5.0,
) -> FeaturesInfo:
    """The build of :func:`build_features` as a SparkApplication of the Kubeflow Spark
    Operator (``compute.submit: operator``): submitted with ``api`` (a kubernetes
    ``CustomObjectsApi``; the pod's own service account by default), waited for, its
    examples written by the Spark tasks under ``out_uri``. The object store's endpoint is
    this pod's ``AWS_ENDPOINT_URL``, if set."""
    from freightml.compute.application import submit_step  # noqa: PLC0415
    from freightml.image import IMAGE  # noqa: PLC0415

    if api is None:
        from kubernetes import client, config  # noqa: PLC0415

        config.load_incluster_config()
        api = client.CustomObjectsApi()
    with timed("build_features"):
        submit_step(
            "features",
            settings.model_dump_json(),
            {"facts": facts_uri, "out": out_uri},
            settings.compute,
            api=api,
            image=IMAGE,
            object_store_endpoint=os.environ.get("AWS_ENDPOINT_URL"),
            poll_seconds=poll_seconds,
        )
        rows = count_rows(out_uri)
    return FeaturesInfo(rows=rows, columns=len(EXAMPLE_COLUMNS))
