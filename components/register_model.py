from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model, Output


def register_model(
    config: str,
    facts: Input[Dataset],
    validation: Input[Artifact],
    model: Input[Model],
    evaluation: Input[Artifact],
    model_card: Output[Markdown],
    model_card_html: Output[HTML],
    project_card: Output[Markdown],
) -> NamedTuple("Registration", [("version", str), ("champion", str), ("promoted", bool)]):
    """Log the run to MLflow, register a challenger and promote it if it earns it.

    Args:
        config: FreightML settings as JSON.
        facts: the facts; their metadata (digests, sources) is logged as the dataset input.
        validation: the validation report.
        model: the trained model.
        evaluation: the backtest results and gate report.
        model_card: the model card (Markdown).
        model_card_html: the model card (HTML).
        project_card: the project card (Markdown).

    Returns:
        The new version, the champion version afterwards, and whether it was promoted.
    """
    from collections import namedtuple

    from freightml.config import settings_from_json
    from freightml.stages.register import register_model as run

    result = run(
        settings_from_json(config),
        facts_info=dict(facts.metadata),
        validation_path=validation.path,
        model_dir=model.path,
        evaluation_dir=evaluation.path,
        card_paths=(model_card.path, model_card_html.path, project_card.path),
    )
    out = namedtuple("Registration", ["version", "champion", "promoted"])
    return out(result.version, result.champion or "", result.promoted)
