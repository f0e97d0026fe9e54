"""MLflow tracking, the model registry, promotion and rollback."""

from freightml.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    RegistryError,
    champion_version,
    list_versions,
    promote,
    rollback,
)
from freightml.tracking.runs import ChampionRecipe, champion_recipe, dataset_input, tag_environment
from freightml.tracking.session import configure_mlflow, environment_info, pipeline_image

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ChampionRecipe",
    "RegistryError",
    "champion_recipe",
    "champion_version",
    "configure_mlflow",
    "dataset_input",
    "environment_info",
    "list_versions",
    "pipeline_image",
    "promote",
    "rollback",
    "tag_environment",
]
