from kfp import dsl


def close_retraining(config: str, run_id: str, status: dsl.PipelineTaskFinalStatus) -> str:
    """Exit step of the retraining pipeline: mark failed a decision the run left in flight.

    A run that failed leaves its decision ``started``; so does one that succeeded without
    running its training steps. Marking it ``failed`` frees its key and in-flight slot.

    Args:
        config: FreightML settings as JSON.
        run_id: the pipeline run's id (the decide step stored it with its decision).
        status: how the run's steps ended (set by Kubeflow Pipelines).

    Returns:
        What was closed, in words.
    """
    from freightml.config import settings_from_json
    from freightml.stages.decide import close_retraining as run

    return run(
        settings_from_json(config),
        run_id=run_id,
        state=status.state,
        error=status.error_message or "",
    )
