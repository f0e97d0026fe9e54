from kfp.dsl import Dataset, Input, Output


def score_batch(config: str, facts: Input[Dataset], forecasts: Output[Dataset]):
    """Forecast every active series 1-28 days ahead with the champion; store the forecasts.

    Args:
        config: FreightML settings as JSON.
        facts: the validated facts (their last date is the forecast origin).
        forecasts: the forecasts, Parquet; they also land in the collector's store with the
            model version, data digest and run id.
    """
    from freightml.config import settings_from_json
    from freightml.stages.score import score_batch as run

    info = run(settings_from_json(config), facts.path, forecasts.path, dict(facts.metadata))
    forecasts.metadata.update(info.to_metadata())
