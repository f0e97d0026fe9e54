"""FreightML: MLOps for forecasting rail freight volume between stations."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["MLExperimentManager", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported lazily: `import freightml` stays cheap (pipeline components import it).
    if name == "MLExperimentManager":
        from freightml.experiment import MLExperimentManager  # noqa: PLC0415

        return MLExperimentManager
    raise AttributeError(f"module 'freightml' has no attribute {name!r}")
