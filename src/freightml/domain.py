"""The domain's constants, written once: the series key, the model's names, the aliases,
the CloudEvent types of KServe's payload logger and the Secret keys the cluster uses.

Every other module imports these names instead of spelling the strings again.
"""

from __future__ import annotations

from typing import Final

# A series is one (origin station, destination station, cargo type).
SERIES_KEY: Final[tuple[str, str, str]] = ("origin_station", "destination_station", "cargo_type")

# The registered model, the MLflow experiment, the served model and the InferenceService
# all share this name by default.
MODEL_NAME: Final = "freight-volume"

# MLflow registry aliases (stages are deprecated).
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"

# CloudEvent types KServe's payload logger (pkg/logger) sends, and the predictor too.
REQUEST_EVENT_TYPE: Final = "org.kubeflow.serving.inference.request"
RESPONSE_EVENT_TYPE: Final = "org.kubeflow.serving.inference.response"

# Kubernetes Secrets referenced by name (never values in manifests) and the keys they hold.
MLFLOW_SECRET: Final = "mlflow-credentials"
STORE_SECRET: Final = "collector-store"
TRACKING_URI_KEY: Final = "MLFLOW_TRACKING_URI"
MLFLOW_OPTIONAL_KEYS: Final[tuple[str, ...]] = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
STORE_URL_KEY: Final = "FREIGHTML_STORE_URL"
