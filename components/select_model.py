from kfp.dsl import Artifact, Dataset, Input, Output


def select_model(config: str, facts: Input[Dataset], selection: Output[Artifact]):
    """Backtest the candidate portfolio on validation folds before the reported ones and
    choose the recipe to train (ML, statistical or a blend) with its interval calibration.

    Args:
        config: FreightML settings as JSON.
        facts: the validated facts.
        selection: a directory with selection.json (freightml.evaluation.selection.Selection)
            and selection.md (every candidate's figures).
    """
    from freightml.config import settings_from_json
    from freightml.stages.select import select_model as run

    info = run(settings_from_json(config), facts.path, selection.path)
    selection.metadata.update(info.to_metadata())
