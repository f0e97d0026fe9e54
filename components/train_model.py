from kfp.dsl import Dataset, Input, Model, Output


def train_model(config: str, features: Input[Dataset], model: Output[Model]):
    """Fit the configured model on every training example; save it as an MLflow model.

    Args:
        config: FreightML settings as JSON.
        features: the training examples from build_features.
        model: an MLflow sklearn model directory (with signature and input example).
    """
    from freightml.config import settings_from_json
    from freightml.stages.train import train_model as run

    info = run(settings_from_json(config), features.path, model.path)
    model.metadata.update(info.to_metadata())
