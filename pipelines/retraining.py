"""The retraining pipeline: monitor -> decide -> (if the policy says so) the training steps
-> register -> record the outcome, and the optional deploy; an exit step marks the decision
of a run that failed. What a KFP recurring run starts on schedule.

No `from __future__ import annotations` here: kfp reads the pipeline signature's real types.
"""

from collections.abc import Callable

from kfp import dsl
from kfp import kubernetes as k8s

from components import make_components
from freightml.config import Settings
from freightml.domain import STORE_URL_KEY
from pipelines.monitoring import add_monitor_step
from pipelines.training import add_training_steps, secret_env

PIPELINE_NAME = "freightml-retraining"


def build_retraining_pipeline(settings: Settings) -> Callable:
    """Return the retraining pipeline function for ``settings``."""
    c = make_components(settings.pipeline.base_image)

    def with_store(task: dsl.PipelineTask) -> dsl.PipelineTask:
        return k8s.use_secret_as_env(
            task,
            secret_name=settings.pipeline.store_secret,
            secret_key_to_env={STORE_URL_KEY: STORE_URL_KEY},
        )

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=(
            "Monitor the champion, decide by the retraining policy and, when needed, retrain, "
            "gate, register and optionally deploy the new champion."
        ),
    )
    def retraining_pipeline(
        config: str,
        as_of: str = "",
        window_days: int = 0,
        deploy: bool = False,
        canary_percent: int = 100,
    ):
        # the exit step runs however the steps below end: a decision the run left in flight
        # (it failed) becomes failed, which frees its key and the in-flight slot
        close = c.close_retraining(config=config, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        close.set_display_name("Close a decision left in flight")
        close.set_caching_options(False)
        with_store(close)
        with dsl.ExitHandler(close, name="retraining"):
            # as_of is an explicit parameter: the open-source backend does not resolve the
            # scheduled-time placeholder. Empty = the day the run starts (UTC), fixed by the
            # monitor and carried to the decision through the snapshot.
            monitor = add_monitor_step(c, settings, config, as_of, window_days)

            decide = c.decide_retraining(
                config=config,
                as_of=as_of,
                snapshot=monitor.outputs["snapshot"],
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            )
            decide.set_display_name("Decide (retraining policy)")
            decide.set_memory_limit("2G")
            decide.set_caching_options(False)  # a decision is about now, never reused
            secret_env(settings)(decide)
            with_store(decide)
            if settings.pipeline.retries:
                decide.set_retry(num_retries=settings.pipeline.retries, backoff_duration="30s")

            # the condition reads the gate's single output (see components/retrain_gate.py);
            # the training steps get the decision's settings: facts up to its as-of date and
            # its retrain.* tags on the training run and the model version
            gate = c.retrain_gate(retrain=decide.outputs["retrain"])
            gate.set_display_name("Retrain needed?").set_caching_options(False)
            if settings.pipeline.retries:
                gate.set_retry(num_retries=settings.pipeline.retries, backoff_duration="30s")
            with dsl.If(gate.output == True, name="retrain-needed"):  # noqa: E712
                register = add_training_steps(
                    c, settings, decide.outputs["train_config"], deploy, canary_percent
                )
                record = c.record_retraining(
                    config=config,
                    decision_id=decide.outputs["decision_id"],
                    model_version=register.outputs["version"],
                    promoted=register.outputs["promoted"],
                )
                record.set_display_name("Record the outcome").set_caching_options(False)
                with_store(record)
                if settings.pipeline.retries:
                    record.set_retry(num_retries=settings.pipeline.retries, backoff_duration="30s")

    return retraining_pipeline
