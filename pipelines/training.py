"""The training pipeline: ingest -> validate -> features / select -> train / evaluate -> register.

No `from __future__ import annotations` here: kfp reads the pipeline signature's real types.
"""

from collections.abc import Callable

from kfp import dsl
from kfp import kubernetes as k8s

from components import Components, make_components
from freightml.config import Settings
from freightml.domain import MLFLOW_OPTIONAL_KEYS, TRACKING_URI_KEY

PIPELINE_NAME = "freightml-training"

# Keys of the MLflow Secret exposed to the tasks that talk to MLflow or object storage.
# Optional: a cluster whose MLflow needs no S3 keys can leave them out of the Secret.
SECRET_KEYS = (TRACKING_URI_KEY, *MLFLOW_OPTIONAL_KEYS)


def secret_env(settings: Settings) -> Callable[[dsl.PipelineTask], dsl.PipelineTask]:
    """Expose the MLflow Secret's keys (optional ones may be missing) to a task."""

    def with_secret(task: dsl.PipelineTask) -> dsl.PipelineTask:
        return k8s.use_secret_as_env(
            task,
            secret_name=settings.pipeline.mlflow_secret,
            secret_key_to_env={k: k for k in SECRET_KEYS},
            optional=True,
        )

    return with_secret


def add_training_steps(
    c: Components, settings: Settings, config: str, deploy: bool, canary_percent: int
) -> dsl.PipelineTask:
    """Add ingest -> validate -> features / select -> train / evaluate -> register, and the optional
    deploy of a promoted champion, to the pipeline being defined; returns the register task.

    Shared by the training and the retraining pipeline (the latter calls it inside its
    "retrain needed" condition)."""
    with_secret = secret_env(settings)
    retries = settings.pipeline.retries
    caching = settings.pipeline.enable_caching

    ingest = c.ingest_data(config=config).set_display_name("Ingest facts")
    with_secret(ingest)

    validate = c.validate_data(config=config, facts=ingest.outputs["facts"])
    validate.set_display_name("Validate data")

    features = c.build_features(config=config, facts=ingest.outputs["facts"])
    features.set_display_name("Build features").after(validate)
    features.set_memory_limit("8G")

    select = c.select_model(config=config, facts=ingest.outputs["facts"])
    select.set_display_name("Select (candidate portfolio)").after(validate)
    select.set_cpu_limit("2").set_memory_limit("8G")

    train = c.train_model(
        config=config,
        features=features.outputs["features"],
        selection=select.outputs["selection"],
    )
    train.set_display_name("Train model").set_cpu_limit("2").set_memory_limit("8G")

    evaluate = c.evaluate_model(
        config=config, facts=ingest.outputs["facts"], selection=select.outputs["selection"]
    )
    evaluate.set_display_name("Evaluate (backtest + gates)")
    evaluate.set_cpu_limit("2").set_memory_limit("8G")
    with_secret(evaluate)

    register = c.register_model(
        config=config,
        facts=ingest.outputs["facts"],
        validation=validate.outputs["report"],
        model=train.outputs["model"],
        evaluation=evaluate.outputs["evaluation"],
    )
    register.set_display_name("Register model")
    with_secret(register)

    for task in (ingest, validate, features, select, train, evaluate, register):
        task.set_caching_options(caching)
        if retries and task is not validate:  # a data error does not heal on retry
            task.set_retry(num_retries=retries, backoff_duration="30s")

    # optional: roll a newly promoted champion out as a KServe InferenceService
    with (
        dsl.If(deploy == True, name="deploy-requested"),  # noqa: E712
        dsl.If(register.outputs["promoted"] == True, name="promoted"),  # noqa: E712
    ):
        serve = c.deploy_model(
            config=config,
            model_version=register.outputs["version"],
            canary_percent=canary_percent,
        )
        serve.set_display_name("Deploy (KServe)").set_caching_options(False)
    return register


def build_training_pipeline(settings: Settings) -> Callable:
    """Return the training pipeline function for ``settings`` (image, secret, retries)."""
    c = make_components(settings.pipeline.base_image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train, evaluate by the methodology and register a freight volume model.",
    )
    def training_pipeline(config: str, deploy: bool = False, canary_percent: int = 100) -> str:
        register = add_training_steps(c, settings, config, deploy, canary_percent)
        return register.outputs["version"]

    return training_pipeline
