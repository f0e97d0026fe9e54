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
from freightml.tracking.session import configure_mlflow, environment_info

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "RegistryError",
    "champion_version",
    "configure_mlflow",
    "environment_info",
    "list_versions",
    "promote",
    "rollback",
]
