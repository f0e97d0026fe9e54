from kfp.dsl import Artifact, Dataset, Input, Model, Output


def train_model(
    config: str, features: Input[Dataset], selection: Input[Artifact], model: Output[Model]
):
    """Fit the selected recipe on every training example, with the selection's interval
    calibration; save it as an MLflow model.

    Args:
        config: FreightML settings as JSON.
        features: the training examples from build_features.
        selection: the chosen recipe and intervals from select_model.
        model: an MLflow sklearn model directory (with signature and input example).
    """
    from freightml.config import settings_from_json
    from freightml.stages.train import train_model as run

    info = run(settings_from_json(config), features.path, model.path, selection.path)
    model.metadata.update(info.to_metadata())
