"""The batch-scoring pipeline: ingest -> validate -> score with the champion -> store.

No `from __future__ import annotations` here: kfp reads the pipeline signature's real types.
"""

from collections.abc import Callable

from kfp import dsl
from kfp import kubernetes as k8s

from components import make_components
from freightml.config import Settings
from freightml.domain import STORE_URL_KEY
from pipelines.training import SECRET_KEYS

PIPELINE_NAME = "freightml-batch-scoring"


def build_batch_scoring_pipeline(settings: Settings) -> Callable:
    """Return the batch-scoring pipeline function for ``settings``."""
    c = make_components(settings.pipeline.base_image)
    mlflow_secret = settings.pipeline.mlflow_secret
    retries = settings.pipeline.retries

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Forecast every active series 1-28 days ahead with the champion and store it.",
    )
    def batch_scoring_pipeline(config: str):
        ingest = c.ingest_data(config=config).set_display_name("Ingest facts")
        validate = c.validate_data(config=config, facts=ingest.outputs["facts"])
        validate.set_display_name("Validate data")
        score = c.score_batch(config=config, facts=ingest.outputs["facts"])
        score.set_display_name("Score with the champion").after(validate)
        score.set_memory_limit("8G")
        for task in (ingest, score):
            k8s.use_secret_as_env(
                task,
                secret_name=mlflow_secret,
                secret_key_to_env={k: k for k in SECRET_KEYS},
                optional=True,
            )
        k8s.use_secret_as_env(
            score,
            secret_name=settings.pipeline.store_secret,
            secret_key_to_env={STORE_URL_KEY: STORE_URL_KEY},
        )
        for task in (ingest, validate, score):
            task.set_caching_options(False)  # fresh facts every run
            if retries and task is not validate:
                task.set_retry(num_retries=retries, backoff_duration="30s")

    return batch_scoring_pipeline
