from kfp.dsl import Dataset, Input, Output


def build_features(config: str, facts: Input[Dataset], features: Output[Dataset]):
    """Cut leakage-safe training examples (series x origin x horizon) from the facts.

    Args:
        config: FreightML settings as JSON.
        facts: the validated facts.
        features: the training examples, Parquet.
    """
    from freightml.config import settings_from_json
    from freightml.stages.features import build_features as run

    info = run(settings_from_json(config), facts.path, features.path)
    features.metadata.update(info.to_metadata())
