from kfp.dsl import Dataset, Input, Output


def build_features(config: str, facts: Input[Dataset], features: Output[Dataset]):
    """Cut leakage-safe training examples (series x origin x horizon) from the facts.

    With compute.engine spark and compute.submit operator the build runs as a
    SparkApplication of the Kubeflow Spark Operator: this task submits it, waits for it
    and passes on the examples its Spark tasks wrote at the output artifact's URI.

    Args:
        config: FreightML settings as JSON.
        facts: the validated facts.
        features: the training examples, Parquet (a file, or a directory of files on Spark).
    """
    import os

    from freightml.config import settings_from_json
    from freightml.stages.features import build_features as run
    from freightml.stages.features import build_features_on_operator

    settings = settings_from_json(config)
    compute = settings.compute
    if compute.engine == "spark" and compute.submit == "operator":
        # the Spark tasks write under features.uri; the launcher uploads this (empty)
        # directory over nothing, and the next task downloads what the tasks wrote
        os.makedirs(features.path, exist_ok=True)
        info = build_features_on_operator(settings, facts.uri, features.uri)
    else:
        info = run(settings, facts.path, features.path)
    features.metadata.update(info.to_metadata())
