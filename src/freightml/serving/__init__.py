"""The KServe predictor: business forecast requests in, tonnes and wagons out.

    from freightml.serving import serve
    serve(settings)  # champion + configured facts on http://127.0.0.1:8080

Exports load lazily: importing the package does not import KServe or MLflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "FreightPredictor": "freightml.serving.predictor",
    "Tuning": "freightml.serving.predictor",
    "MODEL_NAME": "freightml.serving.predictor",
    "HistorySource": "freightml.features.window",
    "HistoryWindow": "freightml.features.window",
    "HistoryUnavailable": "freightml.features.window",
    "ModelNotAvailable": "freightml.serving.model_source",
    "LocalModel": "freightml.serving.model_source",
    "RegistryModel": "freightml.serving.model_source",
    "RequestError": "freightml.serving.schema",
    "CloudEventSender": "freightml.serving.events",
    "build_predictor": "freightml.serving.server",
    "serve": "freightml.serving.server",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'freightml.serving' has no attribute {name!r}")
