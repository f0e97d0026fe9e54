"""Register: log the run, register the version as challenger, decide promotion by the
gates and the champion on the same window, and render the cards."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from freightml.cards import CardSet, VersionFacts, card_context, render_cards
from freightml.config import Settings
from freightml.domain import CHALLENGER, TAG_FAILED_GATES, TAG_GATES
from freightml.evaluation import Methodology, beats_champion, load_methodology
from freightml.features.build import CATEGORICAL_FEATURES
from freightml.monitoring.profile import (
    PROFILE_ARTIFACT,
    PROFILE_FILE,
    ReferenceProfile,
    with_expectations,
)
from freightml.stages.evaluate import REBACKTESTED, EvaluationResult
from freightml.stages.features import feature_kwargs
from freightml.stages.ingest import FactsInfo
from freightml.stages.result import StageResult
from freightml.stages.validate import ValidationSummary
from freightml.timing import timed
from freightml.tracking import (
    champion_version,
    configure_mlflow,
    environment_info,
    pipeline_image,
    promote,
    runs,
)

log = logging.getLogger("freightml")
PIPELINE_ACTOR = "freightml-pipeline"
PROMOTED = "promoted to champion"
KEPT = "kept as challenger"
# model version tags
TAG_DECISION = "freightml.decision"
TAG_DATA_DIGEST = "freightml.data_digest"
TAG_GIT_COMMIT = "freightml.git_commit"


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the new version becomes champion, and the reason in words."""

    promote: bool
    reason: str


class Registration(StageResult):
    run_id: str
    version: str
    champion: str | None
    promoted: bool
    decision: str
    cards_dir: Path


def decide_promotion(evaluation: EvaluationResult, methodology: Methodology) -> PromotionDecision:
    """The promotion rule: every gate passes, and the version beats the champion on the
    same backtest window by the methodology's margin (or there is no champion); a version
    trained on facts beyond the champion's (a refresh) only has to be no worse."""

    if not evaluation.gates.passed:
        return PromotionDecision(
            False, f"{KEPT}: gates failed ({', '.join(evaluation.failed_gates)})"
        )
    champion = evaluation.champion
    if champion is None:
        return PromotionDecision(True, f"{PROMOTED}: gates passed, no previous champion")
    wins, why = beats_champion(evaluation.metrics, champion.metrics, methodology)
    # facts beyond the champion's: the challenger's backtest reaches later than the
    # champion's own did (same cutoff rule, so a later last cutoff means later facts)
    last, champion_last = (
        max(evaluation.cutoffs, default=""),
        max(champion.recipe.cutoffs, default=""),
    )
    if not wins and champion.how == REBACKTESTED and champion_last and last > champion_last:
        wins, why = beats_champion(
            evaluation.metrics, champion.metrics, methodology, newer_facts=True
        )
    return PromotionDecision(
        wins,
        f"{PROMOTED if wins else KEPT}: gates passed; {why} "
        f"(champion v{champion.recipe.version}, {champion.how})",
    )


def _run_params(
    settings: Settings, facts: FactsInfo, evaluation: EvaluationResult, methodology: Methodology
) -> dict[str, Any]:
    # the recipe the version carries: the selection's portfolio, else the configured model
    name, params = (
        ("portfolio", evaluation.recipe)
        if evaluation.recipe
        else (settings.model.name, settings.model.params)
    )
    return {
        runs.PARAM_MODEL: name,
        runs.PARAM_MODEL_PARAMS: json.dumps(params, sort_keys=True),
        **{f"model.{k}": v for k, v in params.items()},
        **({"selection.chosen": evaluation.chosen} if evaluation.chosen else {}),
        **{f"features.{k}": v for k, v in feature_kwargs(settings).items()},
        "data_source": facts.source_uri,
        "data_source_sha256": facts.source_sha256,
        runs.PARAM_DATA_DIGEST: facts.digest,
        "data_start": facts.start,
        "data_end": facts.end,
        "data_rows": facts.rows,
        "data_series": facts.series,
        "train_window_days": facts.window_days,
        runs.PARAM_CUTOFFS: ",".join(evaluation.cutoffs),
        "methodology": methodology.model_dump_json(),
    }


def log_training_run(
    settings: Settings,
    *,
    facts: FactsInfo,
    evaluation: EvaluationResult,
    methodology: Methodology,
    env: dict[str, str],
    artifacts: dict[str, Path],
) -> str:
    """One MLflow run with the parameters, metrics, dataset input, environment and
    ``artifacts`` (artifact folder -> file or directory); returns its id."""
    with mlflow.start_run(run_name=f"train {facts.end} {facts.digest[:8]}") as run:
        runs.tag_environment(env)
        if settings.tracking.run_tags:  # e.g. retrain.*: why `freightml retrain run` started it
            mlflow.set_tags(settings.tracking.run_tags)
        mlflow.log_params(_run_params(settings, facts, evaluation, methodology))
        mlflow.log_metrics({k: float(v) for k, v in evaluation.metrics.items()})
        mlflow.log_metric("gates_passed", float(evaluation.gates.passed))
        mlflow.log_input(runs.dataset_input(facts.source_uri, facts.digest), context="training")
        for folder, path in artifacts.items():
            if path.is_dir():
                mlflow.log_artifacts(str(path), folder)
            else:
                mlflow.log_artifact(str(path), folder)
        log_candidates(evaluation)
        return run.info.run_id


def log_candidates(evaluation: EvaluationResult) -> None:
    """One nested run per candidate of the selection, with its inner-fold figures."""
    for candidate in evaluation.candidates:
        with mlflow.start_run(run_name=f"candidate {candidate['label']}", nested=True):
            mlflow.log_params(
                {
                    "label": candidate["label"],
                    "kind": candidate["kind"],
                    "chosen": candidate["chosen"],
                    "why": candidate["why"],
                    runs.PARAM_MODEL_PARAMS: json.dumps(candidate["params"], sort_keys=True),
                }
            )
            mlflow.log_metrics(
                {
                    f"inner_{k}": float(candidate[k])
                    for k in ("wape", "wape_ratio", "bias", "segments_over", "segments")
                }
            )


def version_profile(model_dir: Path, evaluation: EvaluationResult) -> ReferenceProfile:
    """The complete reference profile: the train stage's half (in the model directory)
    with the backtest's expectations."""

    path = model_dir / PROFILE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: the model directory has no reference profile (was it "
            "written by this version's train_model?)"
        )
    return with_expectations(ReferenceProfile.load(path), evaluation.expectations)


def register_version(client: MlflowClient, name: str, run_id: str) -> str:
    """Register the run's ``model`` artifact as a new version of ``name`` (created when
    missing) and give it the challenger alias; returns the version."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Daily freight volume per (origin, destination, cargo)."
        )
    version = str(mlflow.register_model(f"runs:/{run_id}/model", name).version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    return version


def record_decision(
    client: MlflowClient,
    name: str,
    version: str,
    run_id: str,
    *,
    decision: PromotionDecision,
    evaluation: EvaluationResult,
    facts: FactsInfo,
    env: dict[str, str],
    actor: str,
) -> None:
    """Tag the version (gates, failed gates, decision, lineage), tag the run with the
    decision, and promote when the decision says so (an audited registry operation)."""

    tags = {
        TAG_GATES: "passed" if evaluation.gates.passed else "failed",
        TAG_FAILED_GATES: ",".join(evaluation.failed_gates),
        TAG_DATA_DIGEST: facts.digest,
        TAG_GIT_COMMIT: env["git_commit"],
        TAG_DECISION: decision.reason,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_tag(run_id, TAG_DECISION, decision.reason)
    if decision.promote:
        promote(client, name, version, reason=decision.reason, actor=actor)


def version_aliases(client: MlflowClient, name: str, version: str) -> list[str]:
    aliases = client.get_registered_model(name).aliases
    return sorted(a for a, v in aliases.items() if str(v) == version)


def write_cards(
    settings: Settings,
    *,
    version: VersionFacts,
    methodology: Methodology,
    evaluation: EvaluationResult,
    facts: FactsInfo,
    validation: ValidationSummary,
    env: dict[str, str],
    model_dir: Path,
    profile: ReferenceProfile | None = None,
) -> tuple[Path, CardSet]:
    """Render the model and project cards of ``version`` under ``<home>/cards`` (the model
    card's data section summarises ``profile``)."""

    context = card_context(
        settings,
        version=version,
        methodology=methodology,
        evaluation=evaluation,
        facts=facts,
        validation=validation,
        env=env,
        feature_columns=Model.load(str(model_dir)).signature.inputs.input_names(),
        categorical=list(CATEGORICAL_FEATURES),
        profile=None if profile is None else profile.summary(),
    )
    cards_dir = settings.home.resolve() / "cards" / f"{version.name}-v{version.version}"
    return cards_dir, render_cards(context, cards_dir)


def register_model(
    settings: Settings,
    *,
    facts_info: FactsInfo | dict[str, Any],
    validation_path: str | Path,
    model_dir: str | Path,
    evaluation_dir: str | Path,
    card_paths: tuple[str, str, str] | None = None,
    actor: str = PIPELINE_ACTOR,
) -> Registration:
    """Log the run, register a challenger, promote it when it passes the gates and beats
    the champion on the same backtest window, and render the cards.

    ``card_paths``: where to copy the model card (Markdown, HTML) and the project card
    (Markdown), e.g. the pipeline's output artifacts.
    """

    facts = FactsInfo.model_validate(facts_info)
    evaluation = EvaluationResult.load_from(evaluation_dir)
    validation = ValidationSummary.from_report_file(validation_path)
    methodology = load_methodology(settings.methodology_path)
    env = environment_info(image=pipeline_image(settings))
    decision = decide_promotion(evaluation, methodology)
    name = settings.tracking.registered_model

    with timed("register_model.profile"):
        profile = version_profile(Path(model_dir), evaluation)
        profile_dir = Path(tempfile.mkdtemp(prefix="freightml-profile-"))
        profile.save(profile_dir / Path(PROFILE_ARTIFACT).name)

    try:
        with timed("register_model.tracking", kind="tracking"):
            client = configure_mlflow(settings)
            run_id = log_training_run(
                settings,
                facts=facts,
                evaluation=evaluation,
                methodology=methodology,
                env=env,
                artifacts={
                    "validation": Path(validation_path),
                    "methodology": Path(settings.methodology_path),
                    "evaluation": Path(evaluation_dir),
                    # train_model wrote an MLflow model (skops, signature, input example): log it
                    # as it is instead of serialising it again
                    "model": Path(model_dir),
                    # the reference profile monitoring judges drift against (PROFILE_ARTIFACT)
                    "profile": profile_dir,
                },
            )
            version = register_version(client, name, run_id)
            for key, value in settings.tracking.run_tags.items():
                client.set_model_version_tag(name, version, key, value)
            record_decision(
                client,
                name,
                version,
                run_id,
                decision=decision,
                evaluation=evaluation,
                facts=facts,
                env=env,
                actor=actor,
            )
            aliases = version_aliases(client, name, version)
    finally:
        shutil.rmtree(profile_dir, ignore_errors=True)

    with timed("register_model.cards"):
        cards_dir, cards = write_cards(
            settings,
            version=VersionFacts(name, version, run_id, aliases, decision.reason),
            methodology=methodology,
            evaluation=evaluation,
            facts=facts,
            validation=validation,
            env=env,
            model_dir=Path(model_dir),
            profile=profile,
        )
    with timed("register_model.log_cards", kind="tracking"):
        client.log_artifacts(run_id, str(cards_dir), "cards")
    if card_paths is not None:
        for src, dst in zip(
            (cards.model_md, cards.model_html, cards.project_md), card_paths, strict=True
        ):
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    log.info("registered %s v%s (%s)", name, version, decision.reason)
    return Registration(
        run_id=run_id,
        version=version,
        champion=champion_version(client, name),
        promoted=decision.promote,
        decision=decision.reason,
        cards_dir=cards_dir,
    )
