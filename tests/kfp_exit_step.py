"""A test pipeline for the retraining pipeline's exit step: a step that claims a decision
for the run (as the decide step does) and then fails, inside a dsl.ExitHandler whose exit
task is the component given. No `from __future__ import annotations` here: kfp reads the
signatures' real types."""

from collections.abc import Callable

from kfp import dsl


def claim_then_fail(store_url: str, decision_id: str, run_id: str) -> None:
    """Store ``run_id`` with the started decision, as the decide step does, then fail."""
    from freightml.retraining.decisions import DecisionStore
    from freightml.store import Store

    store = Store(store_url)
    try:
        DecisionStore(store).mark(decision_id, "started", run_id=run_id)
    finally:
        store.close()
    raise RuntimeError("the training step failed")


def exit_step_pipeline(close: Callable, base_image: str) -> Callable:
    """The pipeline: ``claim_then_fail`` inside an exit handler running ``close``."""
    exit_component = dsl.component(close, base_image=base_image, install_kfp_package=False)
    step = dsl.component(claim_then_fail, base_image=base_image, install_kfp_package=False)

    @dsl.pipeline(name="exit-step")
    def pipeline(config: str, store_url: str, decision_id: str):
        exit_task = exit_component(config=config, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        with dsl.ExitHandler(exit_task):
            step(
                store_url=store_url,
                decision_id=decision_id,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            )

    return pipeline
