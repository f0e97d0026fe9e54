"""Train: fit the configured model and save it as an MLflow model directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator

from freightml.compute import read_examples
from freightml.config import Settings
from freightml.models import SKOPS_TRUSTED_TYPES, make_model
from freightml.models.requirements import model_requirements
from freightml.models.statistical import stat_column
from freightml.monitoring.config import load_monitoring_config
from freightml.monitoring.profile import PROFILE_FILE, ReferenceProfile, build_profile
from freightml.stages.result import StageResult
from freightml.timing import timed


class TrainInfo(StageResult):
    model: str
    train_rows: int


def make_estimator(
    settings: Settings, name: str | None = None, params: dict[str, Any] | None = None
) -> BaseEstimator:
    """A fresh model: ``name`` and ``params``, else the configured model and parameters."""

    return make_model(
        name or settings.model.name, params if params is not None else settings.model.params
    )


def reference_profile(
    settings: Settings, examples: pd.DataFrame, model: BaseEstimator
) -> ReferenceProfile:
    """The training window's profile: the examples' features and target and the model's
    in-sample predictions (tonnes) on a sample of them, binned by the monitoring config.

    A model with a part fitted at each forecast origin (a portfolio's statistical or
    recursive part) gets no prediction profile, so prediction drift is not judged for it:
    the examples carry no such forecasts (a fit per past origin would cost one per origin),
    so its predictions here would be another model's (its ML part or seasonal naive), and
    the served forecasts would drift against them in every segment (measured on `make
    monitor-demo` with the recursive LightGBM as champion). Its inputs, target, realised
    quality and interval coverage are still monitored."""
    from freightml.evaluation import load_methodology  # noqa: PLC0415

    methodology = load_methodology(settings.methodology_path)
    served_here = not getattr(model, "statistical_models", [])
    return build_profile(
        examples,
        model.predict if served_here else None,
        config=load_monitoring_config(settings.monitoring_path),
        segment_columns=methodology.segments,
        gates=methodology.gates,
        horizon_max=settings.features.horizon_max,
        min_history_days=settings.features.min_history_days,
        holiday_country=settings.features.holiday_country,
    )


def train_model(
    settings: Settings,
    features_path: str | Path,
    model_dir: str | Path,
    selection_dir: str | Path | None = None,
) -> TrainInfo:
    """Fit the selected recipe (the select stage's result in ``selection_dir``; without one,
    the configured model) on all examples, with the selection's interval calibration; save
    it as an MLflow sklearn model with the training half of the reference profile
    (``PROFILE_FILE``) in its directory."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    name = settings.model.name
    with timed("train_model"):
        examples = read_examples(features_path)
        if selection_dir is not None:
            from freightml.stages.select import load_selection  # noqa: PLC0415

            selection = load_selection(selection_dir)
            name = "portfolio"
            model = make_estimator(settings, name, selection.recipe)
            model.fit(examples)
            model.set_intervals(selection.intervals)
        else:
            model = make_estimator(settings)
            model.fit(examples)
        # the model input: its features, the scale they are multiplied by and the
        # statistical forecasts it blends (added by whoever builds the rows)
        stats = [stat_column(n) for n in getattr(model, "statistical_models", [])]
        columns = list(dict.fromkeys([*model.feature_columns_, "scale"]))
        sample = examples.loc[examples["y"].notna(), columns].head(5)
        sample = sample.assign(**{c: sample["scale"].astype("float64") for c in stats})
        signature = infer_signature(sample, model.predict(sample))
    with timed("train_model.profile"):
        # the reference is the regime the model learned: examples weighted out are not in it
        weights = getattr(model, "example_weights", None)
        learned = examples if weights is None else examples.loc[weights(examples) > 0]
        profile = reference_profile(settings, learned, model)
    with timed("train_model.save", kind="tracking"):
        target = Path(model_dir)
        if target.exists():
            shutil.rmtree(target)
        mlflow.sklearn.save_model(
            model,
            str(target),
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            signature=signature,
            input_example=sample,
            pip_requirements=model_requirements(),
        )
        # the training half of the reference profile; register_model adds the backtest's
        # expectations and logs the whole profile as profile/profile.json in the run
        profile.save(target / PROFILE_FILE)
    return TrainInfo(model=name, train_rows=int(examples["y"].notna().sum()))
