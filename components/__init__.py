"""Kubeflow Pipelines components: one file per lifecycle stage.

Each file holds one lightweight Python component: a typed signature and a body that
imports inside, turns artifacts into paths, calls the library function of the same
name in its stage module (``freightml.stages.<stage>``) and records metadata. All logic
lives in the library.
The image is configuration (``pipeline.base_image``), so components are made by
:func:`make_components` when a pipeline is built, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kfp import dsl

from components.build_features import build_features
from components.close_retraining import close_retraining
from components.decide_retraining import decide_retraining
from components.deploy_model import deploy_model
from components.evaluate_model import evaluate_model
from components.ingest_data import ingest_data
from components.monitor_model import monitor_model
from components.record_retraining import record_retraining
from components.register_model import register_model
from components.retrain_gate import retrain_gate
from components.score_batch import score_batch
from components.select_model import select_model
from components.train_model import train_model
from components.validate_data import validate_data

STAGES: tuple[Callable, ...] = (
    ingest_data,
    validate_data,
    build_features,
    select_model,
    train_model,
    evaluate_model,
    register_model,
    deploy_model,
    score_batch,
    monitor_model,
    decide_retraining,
    retrain_gate,
    record_retraining,
    close_retraining,
)


@dataclass(frozen=True)
class Components:
    ingest_data: Callable
    validate_data: Callable
    build_features: Callable
    select_model: Callable
    train_model: Callable
    evaluate_model: Callable
    register_model: Callable
    deploy_model: Callable
    score_batch: Callable
    monitor_model: Callable
    decide_retraining: Callable
    retrain_gate: Callable
    record_retraining: Callable
    close_retraining: Callable


def make_components(base_image: str) -> Components:
    """Wrap every stage function as a KFP component running in ``base_image``.

    kfp itself is part of the image (it is a dependency of freightml), so the
    per-task ``pip install kfp`` is skipped.
    """
    made = {
        fn.__name__: dsl.component(fn, base_image=base_image, install_kfp_package=False)
        for fn in STAGES
    }
    return Components(**made)
