from kfp.dsl import Dataset, Input, Output


def score_batch(config: str, facts: Input[Dataset], forecasts: Output[Dataset]):
    """Forecast every active series 1-28 days ahead with the champion; store the forecasts.

    With compute.engine spark and compute.submit operator the forecasts are made by a
    SparkApplication of the Kubeflow Spark Operator: this task resolves the champion, passes
    it on, waits, and stores what the application wrote at the output artifact's URI.

    Args:
        config: FreightML settings as JSON.
        facts: the validated facts (their last date is the forecast origin).
        forecasts: the forecasts, Parquet; they also land in the collector's store with the
            model version, data digest and run id.
    """
    from freightml.config import settings_from_json
    from freightml.stages.score import score_batch as run
    from freightml.stages.score import score_batch_on_operator

    settings = settings_from_json(config)
    compute = settings.compute
    if compute.engine == "spark" and compute.submit == "operator":
        info = score_batch_on_operator(
            settings, facts.uri, forecasts.uri, forecasts.path, dict(facts.metadata)
        )
    else:
        info = run(settings, facts.path, forecasts.path, dict(facts.metadata))
    forecasts.metadata.update(info.to_metadata())
