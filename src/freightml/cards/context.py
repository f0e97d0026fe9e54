"""The card templates' context, built from a run's typed stage results.

Each section is its own small function; :func:`card_context` puts them together. A key the
templates need and the context lacks is an error at rendering time (StrictUndefined).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from freightml.config import Settings
from freightml.models.recursive import HOLIDAY_AWARE, RECURSIVE_MODELS

if TYPE_CHECKING:
    from freightml.evaluation import Methodology
    from freightml.stages.evaluate import EvaluationResult
    from freightml.stages.ingest import FactsInfo
    from freightml.stages.validate import ValidationSummary

SUMMARY_METRICS = (
    "wape",
    "wape_baseline",
    "wape_ratio",
    "mae",
    "mae_baseline",
    "bias",
    "bias_baseline",
)


@dataclass(frozen=True)
class VersionFacts:
    """The registered version the cards describe."""

    name: str
    version: str
    run_id: str
    aliases: list[str]
    decision: str


def model_section(v: VersionFacts) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "run_id": v.run_id,
        "aliases": v.aliases,
        "decision": v.decision,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


RETRAIN_TAG_PREFIX = "retrain."


def retraining_section(settings: Settings) -> dict[str, str] | None:
    """Why this version exists when `freightml retrain run` started its training: the
    run's ``retrain.*`` tags without the prefix (trigger, reason, key, as_of, ...); None
    for a version trained by hand."""
    tags = {
        key.removeprefix(RETRAIN_TAG_PREFIX): value
        for key, value in settings.tracking.run_tags.items()
        if key.startswith(RETRAIN_TAG_PREFIX)
    }
    return tags or None


def problem_statement(settings: Settings) -> str:
    return (
        "Forecast the daily freight volume (tonnes, and wagons from tonnes) of every "
        "(origin station, destination station, cargo type) series 1 to "
        f"{settings.features.horizon_max} days ahead, so that wagons and repairs can be "
        "planned."
    )


def _portfolio_algorithm(recipe: dict[str, Any]) -> str:
    parts = []
    if recipe.get("ml"):
        parts.append(
            "one global scikit-learn HistGradientBoostingRegressor over all series "
            f"({recipe['ml']}; direct multi-horizon)"
            if recipe["ml"] == "gbm"
            else f"the {recipe['ml']} model"
        )
    if recipe.get("statistical") in RECURSIVE_MODELS:
        reads = (
            " reading the public-holiday flags" if recipe["statistical"] == HOLIDAY_AWARE else ""
        )
        parts.append(
            f"a recursive global LightGBM (mlforecast, `{recipe['statistical']}`){reads} fitted "
            "at each forecast origin on every series' history"
        )
    elif recipe.get("statistical"):
        parts.append(
            f"a per-series statsforecast {recipe['statistical']} fitted at each forecast origin"
        )
    weight = float(recipe.get("ml_weight", 1.0))
    blend = f", blended {weight:.2f} / {1 - weight:.2f}" if len(parts) == 2 else ""
    return " and ".join(parts) + blend + "; chosen among the candidate portfolio below"


def approach_section(
    settings: Settings,
    features: list[str],
    categorical: list[str],
    evaluation: EvaluationResult | None = None,
) -> dict[str, Any]:
    recipe = evaluation.recipe if evaluation is not None else {}
    chosen = evaluation.chosen if evaluation is not None else ""
    return {
        "model_name": f"portfolio: {chosen}" if recipe else settings.model.name,
        "algorithm": (
            _portfolio_algorithm(recipe)
            if recipe
            else "one global scikit-learn HistGradientBoostingRegressor over all series, "
            "trained on volume relative to the series' recent level, direct multi-horizon"
        ),
        "params": recipe or settings.model.params,
        "features": features,
        "categorical": categorical,
        "horizon_max": settings.features.horizon_max,
    }


def champion_comparison(evaluation: EvaluationResult) -> str:
    """One sentence: the champion's WAPE on the same window next to this version's."""
    champion = evaluation.champion
    if champion is None:
        return "there was no champion; this version competes against the gates only."
    return (
        f"champion v{champion.recipe.version} on the same window ({champion.how}): "
        f"WAPE {champion.metrics.get('wape', float('nan')):.4f} vs this version's "
        f"{evaluation.metrics['wape']:.4f}."
    )


def methodology_section(
    settings: Settings, methodology: Methodology, evaluation: EvaluationResult
) -> dict[str, Any]:
    return {
        "path": settings.methodology_path.name,
        "folds": methodology.backtest.folds,
        "step_days": methodology.backtest.step_days,
        "horizon_days": methodology.backtest.horizon_days,
        "metrics": list(methodology.metrics),
        "segments": list(methodology.segments),
        "cutoffs": list(evaluation.cutoffs),
        "summary": {k: evaluation.metrics.get(k) for k in SUMMARY_METRICS},
        "gates": evaluation.gates.to_dict()["checks"],
        "gates_passed": evaluation.gates.passed,
        "failed_gates": evaluation.failed_gates,
        "champion_comparison": champion_comparison(evaluation),
        "by_horizon": evaluation.by_horizon,
        "by_segment": evaluation.by_segment,
        "candidates": evaluation.candidates,
        "selection_notes": evaluation.selection_notes,
        "coverage": evaluation.coverage,
    }


def data_section(
    facts: FactsInfo, validation: ValidationSummary, profile: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The training data; ``profile``: the reference profile's summary
    (:meth:`ReferenceProfile.summary`), None when the version has none."""
    return {
        "profile": profile,
        "source_uri": facts.source_uri,
        "file_digest": facts.source_sha256,
        "digest": facts.digest,
        "rows": facts.rows,
        "series": facts.series,
        "start": facts.start,
        "end": facts.end,
        "regions": facts.regions,
        "cargo_types": facts.cargo_types,
        "window_days": facts.window_days,
        "validation": {
            "errors": validation.errors,
            "warnings": validation.warnings,
            "messages": validation.messages,
        },
    }


def limitations(settings: Settings, facts: FactsInfo) -> list[str]:
    return [
        f"Forecasts 1 to {settings.features.horizon_max} days ahead only.",
        f"A series needs {settings.features.min_history_days} days of history before it is "
        "forecast; new stations fall back to nothing until then.",
        "Trained on regions "
        + ", ".join(facts.regions)
        + "; other regions are outside the training distribution (monitor for drift).",
        "Exogenous drivers (tariffs, export policy, wagon availability) are not modelled.",
    ]


def card_context(
    settings: Settings,
    *,
    version: VersionFacts,
    methodology: Methodology,
    evaluation: EvaluationResult,
    facts: FactsInfo,
    validation: ValidationSummary,
    env: dict[str, str],
    feature_columns: list[str],
    categorical: list[str],
    profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the card templates show, taken from the run's own results (``profile``:
    the reference profile's summary)."""
    return {
        "model": model_section(version),
        "retraining": retraining_section(settings),
        "problem": problem_statement(settings),
        "approach": approach_section(settings, feature_columns, categorical, evaluation),
        "methodology": methodology_section(settings, methodology, evaluation),
        "data": data_section(facts, validation, profile),
        "tools": env,
        "limitations": limitations(settings, facts),
    }
