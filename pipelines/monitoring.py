"""The monitoring pipeline: one snapshot of the champion (drift, realised quality,
freshness) stored in the collector's store, with its JSON and HTML report.

No `from __future__ import annotations` here: kfp reads the pipeline signature's real types.
"""

from collections.abc import Callable

from kfp import dsl
from kfp import kubernetes as k8s

from components import Components, make_components
from freightml.config import Settings
from freightml.domain import STORE_URL_KEY
from pipelines.training import secret_env

PIPELINE_NAME = "freightml-monitoring"


def add_monitor_step(
    c: Components, settings: Settings, config: str, as_of: str, window_days: int
) -> dsl.PipelineTask:
    """Add the monitoring task (with both Secrets, no caching) to the pipeline being
    defined; shared by the monitoring and the retraining pipeline."""
    task = c.monitor_model(config=config, as_of=as_of, window_days=window_days)
    task.set_display_name("Monitor the champion")
    task.set_memory_limit("8G")
    task.set_caching_options(False)  # new facts and requests every run
    secret_env(settings)(task)
    k8s.use_secret_as_env(
        task,
        secret_name=settings.pipeline.store_secret,
        secret_key_to_env={STORE_URL_KEY: STORE_URL_KEY},
    )
    if settings.pipeline.retries:
        task.set_retry(num_retries=settings.pipeline.retries, backoff_duration="30s")
    return task


def build_monitoring_pipeline(settings: Settings) -> Callable:
    """Return the monitoring pipeline function for ``settings``."""
    c = make_components(settings.pipeline.base_image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Drift, realised quality and freshness of the champion, per segment.",
    )
    def monitoring_pipeline(config: str, as_of: str = "", window_days: int = 0):
        add_monitor_step(c, settings, config, as_of, window_days)

    return monitoring_pipeline
