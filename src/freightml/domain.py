"""The domain's constants, written once: the series key, the synthetic data's regions and
cargo types, the model's names, the aliases, the CloudEvent types of KServe's payload
logger and the Secret keys the cluster uses.

Every other module imports these names instead of spelling the strings again.
"""

from __future__ import annotations

from typing import Final

# A series is one (origin station, destination station, cargo type).
SERIES_KEY: Final[tuple[str, str, str]] = ("origin_station", "destination_station", "cargo_type")

# The domain of the synthetic data (and the default vocabulary validation checks regions
# and cargo types against; see DataSettings.known_regions). Figures from
# shared/data/freight-figures.md (press releases of Russian rail operational data).

# The 16 regional railways (freight-figures.md, "Network").
REGIONS: tuple[str, ...] = (
    "Kaliningrad",
    "Moscow",
    "October",
    "Northern",
    "Gorky",
    "South-Eastern",
    "North Caucasus",
    "Kuibyshev",
    "Volga",
    "Sverdlovsk",
    "South Urals",
    "West Siberian",
    "Krasnoyarsk",
    "East Siberian",
    "Trans-Baikal",
    "Far Eastern",
)

# Share of loading by RZD cargo group, 2022 (freight-figures.md, "Cargo mix"). As published:
# the shares sum to 0.998 because of rounding; "containers" is the group "other incl.
# containers". Consumers that need a distribution should normalise.
CARGO_SHARES: dict[str, float] = {
    "coal": 0.287,
    "oil": 0.175,
    "construction": 0.108,
    "iron_ore": 0.093,
    "containers": 0.092,
    "ferrous_metals": 0.054,
    "fertilisers": 0.049,
    "timber": 0.025,
    "industrial_raw": 0.025,
    "cement": 0.020,
    "grain": 0.019,
    "chemicals": 0.018,
    "nonferrous_ore": 0.015,
    "scrap": 0.010,
    "coke": 0.008,
}
CARGO_TYPES: tuple[str, ...] = tuple(CARGO_SHARES)

# A series counts as active when it has facts within this many days before the newest day
# (the longest forecast horizon): batch scoring forecasts those, the monitoring demo asks
# for them and data-quality monitoring expects them to keep reporting.
ACTIVE_DAYS: Final = 28

# The registered model, the MLflow experiment, the served model and the InferenceService
# all share this name by default.
MODEL_NAME: Final = "freight-volume"

# MLflow registry aliases (stages are deprecated).
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
# the version tags of the gate results the register stage writes (promotion reads them)
TAG_GATES: Final = "freightml.gates"  # "passed" | "failed"
TAG_FAILED_GATES: Final = "freightml.failed_gates"  # comma-separated names

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
