"""Typed settings: one frozen object, loaded from YAML and overridable by environment.

Precedence (highest first): keyword arguments, ``FREIGHTML_*`` environment variables
(nested keys joined with ``__``, e.g. ``FREIGHTML_TRACKING__URI``), the YAML file, the
defaults below. Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from freightml.deploy import DeploySettings

DEFAULT_CONFIG_FILE = Path("configs/freightml.yaml")
CONFIG_ENV_VAR = "FREIGHTML_CONFIG"
STORE_URL_ENV = "FREIGHTML_STORE_URL"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSettings(_Section):
    """Where the facts come from and which slice of them is used."""

    source_uri: str | None = Field(
        None, description="CSV/Parquet path or fsspec URI of the facts; None = synthetic data"
    )
    synthetic_size: Literal["small", "demo", "large"] = Field(
        "demo", description="size of the synthetic data set when source_uri is None"
    )
    seed: int = Field(42, description="seed of the synthetic generator")
    column_mapping: dict[str, str] = Field(
        default_factory=dict, description="the source's column names -> FreightML's names"
    )
    start_date: date | None = Field(None, description="first date of facts to use")
    end_date: date | None = Field(None, description="last date of facts to use")
    regions: list[str] | None = Field(
        None, description="keep series whose origin or destination is in these regions"
    )
    train_window_days: int = Field(
        730, ge=91, description="the freshest window of facts used for training, in days"
    )
    max_missing_day_share: float = Field(
        0.2, ge=0, le=1, description="share of missing series-days above which validation fails"
    )
    anomaly_z: float = Field(
        5.0, gt=0, description="robust z-score of log volume above which a day is an anomaly"
    )


class FeatureSettings(_Section):
    """How training examples are cut from the facts."""

    horizon_max: int = Field(28, ge=1, le=28, description="longest forecast horizon, days")
    origin_step_days: int = Field(7, ge=1, description="days between training forecast origins")
    horizons_per_origin: int | None = Field(
        7, ge=1, le=28, description="horizons sampled per series and origin (None = all)"
    )
    min_history_days: int = Field(91, ge=28, description="history a series needs at an origin")


class ModelSettings(_Section):
    """The estimator and its parameters (see freightml.models.make_model)."""

    name: str = Field("gbm", description="model name in freightml.models.MODEL_REGISTRY")
    params: dict[str, Any] = Field(
        default_factory=lambda: {
            "max_iter": 300,
            "learning_rate": 0.08,
            "max_leaf_nodes": 63,
            "min_samples_leaf": 100,
            "l2_regularization": 1.0,
            "max_train_rows": 1_000_000,
            "random_state": 0,
        },
        description="estimator parameters",
    )


class TrackingSettings(_Section):
    """MLflow tracking and registry."""

    uri: str | None = Field(
        None,
        description="MLflow tracking URI; None = $MLFLOW_TRACKING_URI, else SQLite under home",
    )
    experiment: str = Field("freight-volume", description="MLflow experiment of training runs")
    registered_model: str = Field("freight-volume", description="registered model name")


class PipelineSettings(_Section):
    """Kubeflow Pipelines: image, roots, cluster options."""

    base_image: str = Field(
        "ghcr.io/freightml/freightml:0.1.0",
        description="image every component runs in (components/Dockerfile)",
    )
    pipeline_root: str | None = Field(
        None, description="KFP pipeline root; None = <home>/pipeline_root locally"
    )
    compile_dir: Path = Field(Path("build/pipelines"), description="where compiled IR YAML goes")
    mlflow_secret: str = Field(
        "mlflow-credentials",
        description="Kubernetes Secret with MLFLOW_TRACKING_URI (and S3 keys) for the cluster",
    )
    store_secret: str = Field(
        "collector-store",
        description="Kubernetes Secret with FREIGHTML_STORE_URL (the collector's database)",
    )
    retries: int = Field(2, ge=0, description="retries of a failed task on the cluster")
    enable_caching: bool = Field(False, description="KFP step caching")


class CollectorSettings(_Section):
    """The collector: CloudEvents of requests/responses, forecasts and facts."""

    store_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the store; None = $FREIGHTML_STORE_URL, else SQLite under home",
    )
    host: str = Field("127.0.0.1", description="address `freightml collector serve` binds")
    port: int = Field(8085, ge=1, le=65535, description="port of the collector")


class ServingSettings(_Section):
    """The predictor run by `freightml serve` (kserve.ModelServer)."""

    model_uri: str | None = Field(
        None, description="MLflow model URI; None = models:/<registered model>@champion"
    )
    history_uri: str | None = Field(
        None, description="facts file or URI for features; None = the collector's store"
    )
    host: str = Field("127.0.0.1", description="address the model server binds")
    http_port: int = Field(8080, ge=1, le=65535, description="HTTP port of the model server")
    send_events: bool = Field(
        True, description="post request/response CloudEvents to the collector (no KServe logger locally)"
    )
    reload_seconds: float = Field(30.0, gt=0, description="how often the champion alias is checked")
    history_seconds: float = Field(60.0, gt=0, description="how often new facts are read")


class Settings(BaseSettings):
    """All of FreightML's configuration."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="FREIGHTML_", env_nested_delimiter="__"
    )

    home: Path = Field(Path(".freightml"), description="local state: data, MLflow, reports")
    methodology_path: Path = Field(
        Path("configs/methodology.yaml"), description="the quality methodology (metrics, gates)"
    )
    data: DataSettings = DataSettings()
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    tracking: TrackingSettings = TrackingSettings()
    pipeline: PipelineSettings = PipelineSettings()
    deploy: DeploySettings = DeploySettings()
    collector: CollectorSettings = CollectorSettings()
    serving: ServingSettings = ServingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)

    # -- derived locations -------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        if self.tracking.uri:
            return self.tracking.uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> str:
        return (self.home / "mlartifacts").resolve().as_uri()

    @property
    def local_pipeline_root(self) -> str:
        return self.pipeline.pipeline_root or str((self.home / "pipeline_root").resolve())

    @property
    def collector_store_url(self) -> str:
        """collector.store_url, else $FREIGHTML_STORE_URL (a Secret on the cluster), else SQLite."""
        return (
            self.collector.store_url
            or os.environ.get(STORE_URL_ENV)
            or f"sqlite:///{(self.home / 'collector.db').resolve()}"
        )

    @property
    def collector_events_url(self) -> str:
        return f"http://{self.collector.host}:{self.collector.port}/events"

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.tracking.registered_model}@champion"

    def to_json(self) -> str:
        """The whole configuration as one JSON string (a component parameter)."""
        return self.model_dump_json()


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from YAML (``path``, ``$FREIGHTML_CONFIG`` or configs/freightml.yaml).

    Environment variables override the file; ``overrides`` override both. A missing
    explicit file is an error; a missing default file just means defaults.
    """
    explicit = path or os.environ.get(CONFIG_ENV_VAR)
    file = Path(explicit) if explicit else DEFAULT_CONFIG_FILE
    values: dict[str, Any] = {}
    if file.exists():
        loaded = yaml.safe_load(file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{file}: expected a mapping of settings, got {type(loaded).__name__}")
        values = loaded
    elif explicit:
        raise FileNotFoundError(f"settings file {file} does not exist")
    env_only = Settings()  # environment over defaults
    env_set = env_only.model_dump(exclude_defaults=True)
    merged = _deep_merge(_deep_merge(values, env_set), overrides)
    return Settings(**merged)


def settings_from_json(text: str) -> Settings:
    """Rebuild settings inside a pipeline component from its JSON parameter."""
    return Settings.model_validate(json.loads(text))
