from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output


def evaluate_model(
    config: str,
    facts: Input[Dataset],
    selection: Input[Artifact],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    plots: Output[HTML],
):
    """Run the rolling-origin backtest of the selected recipe and check the gates.

    The current champion's recipe is backtested on the same window, so register_model
    can compare like with like.

    Args:
        config: FreightML settings as JSON.
        facts: the validated facts.
        selection: the chosen recipe and intervals from select_model.
        evaluation: a directory with evaluation.json (freightml.stages.evaluate.EvaluationResult),
            predictions, per-horizon and per-segment tables and plots.
        metrics: headline metrics for the KFP UI.
        plots: the evaluation plots as one page.
    """
    from freightml.config import settings_from_json
    from freightml.stages.evaluate import evaluate_model as run

    result = run(
        settings_from_json(config), facts.path, evaluation.path, plots.path, selection.path
    )
    for name, value in result.headline().items():
        metrics.log_metric(name, value)
