"""An index of the lifecycle stages; each lives in its own module under freightml.stages."""

from freightml.stages.evaluate import EvaluationResult, evaluate_model
from freightml.stages.features import build_features, feature_kwargs
from freightml.stages.ingest import FactsInfo, freshest_window, ingest_data, load_source
from freightml.stages.register import PIPELINE_ACTOR, Registration, register_model
from freightml.stages.score import active_facts, score_batch
from freightml.stages.timing import TIMINGS_ENV, timed
from freightml.stages.train import make_estimator, train_model
from freightml.stages.validate import ValidationSummary, validate_data

__all__ = [
    "PIPELINE_ACTOR",
    "TIMINGS_ENV",
    "EvaluationResult",
    "FactsInfo",
    "Registration",
    "ValidationSummary",
    "active_facts",
    "build_features",
    "evaluate_model",
    "feature_kwargs",
    "freshest_window",
    "ingest_data",
    "load_source",
    "make_estimator",
    "register_model",
    "score_batch",
    "timed",
    "train_model",
    "validate_data",
]
