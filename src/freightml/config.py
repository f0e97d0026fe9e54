"""Typed settings: one frozen object, loaded from YAML and overridable by environment.

Precedence (highest first): keyword arguments, ``FREIGHTML_*`` environment variables
(nested keys joined with ``__``, e.g. ``FREIGHTML_TRACKING__URI``), the YAML file, the
defaults below. pydantic-settings merges the layers (``settings_customise_sources``):
a variable that is set wins over the file even when its value equals the default.
Nothing is read at import time: call :func:`load_settings`.

The defaults live here and only here; configs/freightml.yaml is a template that sets only
what differs from them (nothing, as shipped). This is also the only module that reads
``FREIGHTML_*`` and ``MLFLOW_*`` environment variables.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from freightml.compute_settings import ComputeSettings
from freightml.domain import (
    CARGO_TYPES,
    CHAMPION,
    MLFLOW_SECRET,
    MODEL_NAME,
    REGIONS,
    STORE_SECRET,
    STORE_URL_KEY,
    TRACKING_URI_KEY,
)
from freightml.image import IMAGE
from freightml.kubernetes_values import DNS_LABEL, QUANTITY, quantity

DEFAULT_CONFIG_FILE = Path("configs/freightml.yaml")
CONFIG_ENV_VAR = "FREIGHTML_CONFIG"
STORE_URL_ENV = STORE_URL_KEY
# The YAML file the Settings being built read (set by load_settings for one call).
_settings_file: ContextVar[Path | None] = ContextVar("freightml_settings_file", default=None)


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
    # Validation rules (freightml.data.validation.ValidationRules.from_settings; docs/data.md).
    # 5.0 catches ~85% of x10 spikes with no false alarms on clean demo data
    anomaly_z: float = Field(
        5.0, gt=0, description="robust z-score of log volume above which a day is an anomaly"
    )
    # 0.1: a flat series' day must move ~65% (z 5 x 0.1 in log) to be flagged; measured in
    # bench/RESULTS.md ("Validation on real data")
    anomaly_min_scale: float = Field(
        0.1,
        gt=0,
        description="floor of a series' robust spread of log1p volume, i.e. of its relative "
        "day-to-day variation: near-constant series are not flagged for small changes",
    )
    anomaly_min_points: int = Field(
        14, ge=3, description="positive days a series needs before its days are z-scored"
    )
    impossible_ratio: float = Field(
        100.0,
        gt=1,
        description="a day above this multiple of its series' robust maximum (the largest "
        "non-anomalous day) is an error, not a warning",
    )
    known_regions: list[str] | None = Field(
        default_factory=lambda: list(REGIONS),
        description="regions outside this list are warned about; None = no fixed list "
        "(only the reference data's regions, when a reference is given)",
    )
    known_cargo_types: list[str] | None = Field(
        default_factory=lambda: list(CARGO_TYPES),
        description="cargo types outside this list are warned about; None = no fixed list",
    )
    wagon_checks: bool = Field(
        True,
        description="check tonnes per wagon (rail data); they are skipped anyway when no "
        "row has wagons",
    )


class FeatureSettings(_Section):
    """How training examples are cut from the facts."""

    horizon_max: int = Field(28, ge=1, le=28, description="longest forecast horizon, days")
    origin_step_days: int | None = Field(
        None,
        ge=1,
        description="days between training forecast origins; None = from the panel: 7 on "
        "long panels, fewer on short ones so training sees ~90 origins on every weekday",
    )
    horizons_per_origin: int | None = Field(
        7, ge=1, le=28, description="horizons sampled per series and origin (None = all)"
    )
    min_history_days: int = Field(91, ge=28, description="history a series needs at an origin")
    holiday_country: str = Field(
        "RU",
        min_length=2,
        description="ISO country code of the holiday calendar in the calendar features "
        "(the holidays package); serving must use the country the model was trained with",
    )


# The model recipe: every parameter, so every run records all of it.
MODEL_PARAMS: dict[str, Any] = {
    "max_iter": 300,
    "learning_rate": 0.08,
    "max_leaf_nodes": 63,
    "min_samples_leaf": 100,
    "l2_regularization": 1.0,
    "max_train_rows": 500_000,  # rows sampled for one fit: bounded memory and time
    "random_state": 0,
}


class ModelSettings(_Section):
    """The estimator and its parameters (see freightml.models.make_model)."""

    name: str = Field("gbm", description="model name in freightml.models.MODEL_REGISTRY")
    params: dict[str, Any] = Field(
        default_factory=lambda: dict(MODEL_PARAMS),
        description="estimator parameters; for gbm, the keys given replace those of the "
        "default recipe and the rest keep their default",
    )

    @model_validator(mode="before")
    @classmethod
    def _params_over_the_recipe(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and isinstance(data.get("params"), dict)
            and data.get("name", "gbm") == "gbm"
        ):
            data = {**data, "params": {**MODEL_PARAMS, **data["params"]}}
        return data


# ML candidates of the portfolio: parameter overrides on top of the model's recipe (gbm)
ML_RECIPES: dict[str, dict[str, Any]] = {
    # the trees learn the whole ratio to the 28-day level, squared error
    "gbm": {},
    # the trees correct the seasonal-naive forecast, absolute error (WAPE's numerator)
    "gbm_seasonal_naive_l1": {"target_base": "seasonal_naive", "loss": "absolute_error"},
}


# candidates fitted at the forecast origin (freightml.models.statistical), in portfolio order
ORIGIN_CANDIDATES = ("mstl", "autoets", "seasonal_window_average", "lightgbm", "lightgbm_holidays")


class SelectionSettings(_Section):
    """The candidate portfolio and the nested selection (freightml.evaluation.selection)."""

    enabled: bool = Field(
        True,
        description="backtest the portfolio on inner folds and register the best candidate; "
        "false: the configured model alone (its intervals are still calibrated)",
    )
    ml_recipes: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in ML_RECIPES.items()},
        description="ML candidates: name -> parameter overrides on top of model.params "
        "(used when model.name is gbm); a 'model' key names another registered model, "
        "whose parameters are then the entry's alone",
    )
    statistical: list[str] = Field(
        default_factory=lambda: list(ORIGIN_CANDIDATES),
        description="candidates fitted at the forecast origin (freightml.models.statistical): "
        "statsforecast's per-series mstl, autoets, seasonal_window_average; mlforecast's "
        "recursive lightgbm, and lightgbm_holidays reading the holiday calendar",
    )
    ensembles: bool = Field(True, description="also try the best statistical and ML blended")
    calendar_ablation: bool = Field(
        True,
        description="also try the best ML candidate without the holiday and yearly calendar "
        "features, and keep them only where they help",
    )
    inner_folds: int = Field(
        2, ge=1, le=6, description="validation folds before the first reported cutoff (or fewer)"
    )
    max_series: int = Field(300, ge=10, description="series scored on the inner folds (sample)")
    # above scikit-learn's 200,000-row binning subsample: below it, HistGradientBoosting
    # bins weighted data with a weighted percentile per bin edge (~8 s more per fit here)
    max_train_rows: int = Field(
        250_000, ge=1000, description="training rows per ML fit on an inner fold"
    )
    tolerance: float = Field(
        0.005,
        ge=0,
        lt=1,
        description="candidates whose validation WAPE is within this share of the best are "
        "tied, and the simplest of them wins (ML, then statistical, then a blend; in "
        "portfolio order)",
    )
    stat_history_days: int = Field(
        182,
        ge=28,
        description="days of each series' history a model fitted at the origin reads",
    )
    n_jobs: int = Field(
        1, description="statsforecast processes and LightGBM threads (-1: every core)"
    )
    interval_segment: str = Field(
        "cargo_type",
        description="column whose values get their own interval calibration (with the "
        "horizon bucket); cells with too few residuals use the bucket's pooled quantiles",
    )


class TrackingSettings(_Section):
    """MLflow tracking and registry."""

    uri: str | None = Field(
        None,
        description="MLflow tracking URI; None = $MLFLOW_TRACKING_URI, else SQLite under home",
    )
    experiment: str = Field(MODEL_NAME, description="MLflow experiment of training runs")
    registered_model: str = Field(MODEL_NAME, description="registered model name")
    run_tags: dict[str, str] = Field(
        default_factory=dict,
        description="extra tags of the training run and its model version (`freightml "
        "retrain run` sets retrain.* here: why the version exists)",
    )


class PipelineSettings(_Section):
    """Kubeflow Pipelines: image, roots, cluster options."""

    base_image: str = Field(
        IMAGE,
        description="image every component runs in (components/Dockerfile)",
    )
    pipeline_root: str | None = Field(
        None, description="KFP pipeline root; None = <home>/pipeline_root locally"
    )
    compile_dir: Path = Field(Path("build/pipelines"), description="where compiled IR YAML goes")
    mlflow_secret: str = Field(
        MLFLOW_SECRET,
        description="Kubernetes Secret with MLFLOW_TRACKING_URI (and S3 keys) for the cluster",
    )
    store_secret: str = Field(
        STORE_SECRET,
        description="Kubernetes Secret with FREIGHTML_STORE_URL (the collector's database)",
    )
    retries: int = Field(2, ge=0, description="retries of a failed task on the cluster")
    enable_caching: bool = Field(False, description="KFP step caching")


class CollectorSettings(_Section):
    """The collector: CloudEvents of requests/responses, forecasts and facts."""

    store_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the store; None = $FREIGHTML_STORE_URL, else SQLite under home"
        ),
    )
    host: str = Field("127.0.0.1", description="address `freightml collector serve` binds")
    port: int = Field(8085, ge=1, le=65535, description="port of the collector")
    auth: bool = Field(
        True,
        description="require bearer tokens for writes and payload reads (freightml.collector."
        "guard); false only behind another authenticating proxy",
    )
    open_scopes: list[Literal["events"]] = Field(
        default_factory=list,
        description="scopes granted without a token: ['events'] on a cluster whose KServe "
        "payload logger cannot send one, where the chart's NetworkPolicy admits only the "
        "predictor pods",
    )
    tokens_dir: str | None = Field(
        None,
        description="directory of token files named for their scope (events, facts, admin; "
        "a mounted Secret); None = <home>/collector.token, created on first start",
    )
    max_event_bytes: int = Field(
        4 * 1024**2, ge=1024, description="body limit of POST / and /events (413 above it)"
    )
    max_facts_bytes: int = Field(
        16 * 1024**2, ge=1024, description="body limit of POST /facts (413 above it)"
    )


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
        True,
        description="post request/response CloudEvents to the collector (no KServe logger locally)",
    )
    reload_seconds: float = Field(30.0, gt=0, description="how often the champion alias is checked")
    history_seconds: float = Field(60.0, gt=0, description="how often new facts are read")
    # docs/serving.md: "Errors", "CloudEvents", "Readiness and health" and "Limits"
    max_request_bytes: int = Field(8 << 20, ge=1024, description="request body limit (413)")
    spool_dir: Path | None = Field(None, description="the CloudEvents spool; None = <home>/spool")
    spool_max_bytes: int = Field(256 << 20, ge=1, description="the spool's size limit")
    history_stale_seconds: float = Field(
        21600.0, ge=0, description="not ready after no good history read this long; 0 = never"
    )
    origin_quorum: float = Field(
        0.5, gt=0, le=1, description="share of the series a day needs to be the origin"
    )
    min_history_days: int = Field(28, ge=1, description="history a series needs to be forecast")
    wagon_quantile: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="the forecast quantile wagons are counted at when a request does not "
        "say (its parameters.wagon_quantile): higher risks idle wagons, lower risks "
        "shortages; None = the point forecast",
    )


class DeploySettings(BaseModel):
    """How the model is served on the cluster (one KServe InferenceService)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        MODEL_NAME,
        max_length=45,
        pattern=DNS_LABEL,
        description="InferenceService name (a DNS label; KServe adds suffixes, so <= 45 chars)",
    )
    namespace: str = Field(
        "freightml", max_length=63, pattern=DNS_LABEL, description="namespace it runs in"
    )
    image: str = Field(
        IMAGE,
        min_length=1,
        pattern=r"^\S+$",
        description="predictor image (components/Dockerfile; runs `python -m freightml.serving`)",
    )
    history_uri: str | None = Field(
        None,
        description="facts file/URI the predictor builds features from; "
        "None = the predictor's own settings (data.source_uri)",
    )
    service_account: str = Field(
        "freightml-predictor",
        min_length=1,
        description="ServiceAccount of the predictor pods (its credentials come from a Secret)",
    )
    mlflow_secret: str = Field(
        MLFLOW_SECRET,
        min_length=1,
        description="Secret with MLFLOW_TRACKING_URI (and S3 keys), read into the predictor's env",
    )
    collector_url: str | None = Field(
        None,
        description="where KServe's payload logger posts CloudEvents; "
        "None = http://freightml-collector.<namespace>.svc.cluster.local/events",
    )
    cpu_request: str = Field("500m", pattern=QUANTITY, description="predictor CPU request")
    cpu_limit: str = Field("2", pattern=QUANTITY, description="predictor CPU limit")
    memory_request: str = Field("1Gi", pattern=QUANTITY, description="predictor memory request")
    memory_limit: str = Field("4Gi", pattern=QUANTITY, description="predictor memory limit")
    min_replicas: int = Field(1, ge=0, description="fewest predictor replicas (0 = scale to zero)")
    max_replicas: int = Field(3, ge=1, description="most predictor replicas")
    ready_timeout_seconds: int = Field(
        600, gt=0, description="how long a deploy waits for the InferenceService to be Ready"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DeploySettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        for what, request, limit in (
            ("cpu", self.cpu_request, self.cpu_limit),
            ("memory", self.memory_request, self.memory_limit),
        ):
            if quantity(request) > quantity(limit):
                raise ValueError(f"{what}_request {request} exceeds {what}_limit {limit}")
        return self

    @property
    def logger_url(self) -> str:
        """The collector endpoint the payload logger sends requests and responses to."""
        return self.collector_url or (
            f"http://freightml-collector.{self.namespace}.svc.cluster.local/events"
        )


class Settings(BaseSettings):
    """All of FreightML's configuration."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="FREIGHTML_", env_nested_delimiter="__"
    )

    home: Path = Field(Path(".freightml"), description="local state: data, MLflow, reports")
    methodology_path: Path = Field(
        Path("configs/methodology.yaml"), description="the quality methodology (metrics, gates)"
    )
    monitoring_path: Path = Field(
        Path("configs/monitoring.yaml"),
        description="monitoring thresholds (drift, realised quality, freshness)",
    )
    retraining_path: Path = Field(
        Path("configs/retraining.yaml"),
        description="the retraining policy (schedule, triggers, guards, training window)",
    )
    data: DataSettings = DataSettings()
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    selection: SelectionSettings = SelectionSettings()
    tracking: TrackingSettings = TrackingSettings()
    pipeline: PipelineSettings = PipelineSettings()
    deploy: DeploySettings = DeploySettings()
    collector: CollectorSettings = CollectorSettings()
    serving: ServingSettings = ServingSettings()
    compute: ComputeSettings = ComputeSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file = _settings_file.get()
        if file is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, file))

    # -- derived locations -------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        if self.tracking.uri:
            return self.tracking.uri
        if os.environ.get(TRACKING_URI_KEY):
            return os.environ[TRACKING_URI_KEY]
        _no_local_default_in_a_pod("an MLflow tracking server", TRACKING_URI_KEY)
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
        if self.collector.store_url or os.environ.get(STORE_URL_ENV):
            return self.collector.store_url or os.environ[STORE_URL_ENV]
        _no_local_default_in_a_pod("the collector's store", STORE_URL_ENV)
        return f"sqlite:///{(self.home / 'collector.db').resolve()}"

    @property
    def collector_base_url(self) -> str:
        """The local collector (``freightml collector serve``) as the demos call it."""
        return f"http://{self.collector.host}:{self.collector.port}"

    @property
    def collector_events_url(self) -> str:
        return f"{self.collector_base_url}/events"

    @property
    def collector_token(self) -> str | None:
        """The token a client of the collector sends: $FREIGHTML_COLLECTOR_TOKEN, else the
        embedded default's ``<home>/collector.token`` (None when neither exists)."""
        token = os.environ.get(COLLECTOR_TOKEN_ENV, "").strip()
        if token:
            return token
        path = self.home / COLLECTOR_TOKEN_FILE
        return (path.read_text().strip() or None) if path.is_file() else None

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.tracking.registered_model}@{CHAMPION}"

    def to_json(self) -> str:
        """The whole configuration as one JSON string (a component parameter)."""
        return self.model_dump_json()


# -- the process's environment beyond settings -------------------------------------------
# Not settings (they are not in the YAML nor in the JSON a component receives): facts about
# where this process runs, read here so that config.py stays the one reader of FREIGHTML_*.
TIMINGS_ENV = "FREIGHTML_TIMINGS"
COLLECTOR_TOKEN_ENV = "FREIGHTML_COLLECTOR_TOKEN"  # a client's token (the predictor's sender)
COLLECTOR_TOKEN_FILE = "collector.token"  # the embedded default's token, under home
GIT_COMMIT_ENV = "FREIGHTML_GIT_COMMIT"
LOCK_SHA256_ENV = "FREIGHTML_LOCK_SHA256"
IN_POD_ENV = "KUBERNETES_SERVICE_HOST"


def timings_path() -> Path | None:
    """$FREIGHTML_TIMINGS: the JSON-lines file the training benchmark collects stage timings
    in (kfp.local's task subprocesses inherit it), or None when unset."""
    target = os.environ.get(TIMINGS_ENV)
    return Path(target) if target else None


def baked_git_commit() -> str | None:
    """$FREIGHTML_GIT_COMMIT: the commit an image was built from (no .git inside it)."""
    return os.environ.get(GIT_COMMIT_ENV) or None


def baked_lock_sha256() -> str | None:
    """$FREIGHTML_LOCK_SHA256: the uv.lock hash an image was built from."""
    return os.environ.get(LOCK_SHA256_ENV) or None


def in_kubernetes_pod() -> bool:
    """True inside a Kubernetes pod (the kubelet sets KUBERNETES_SERVICE_HOST)."""
    return bool(os.environ.get(IN_POD_ENV))


class NotConfiguredInPod(ValueError):
    """A pod would fall back to a SQLite file of its own, lost with the pod."""


def _no_local_default_in_a_pod(what: str, env: str) -> None:
    if in_kubernetes_pod():
        raise NotConfiguredInPod(
            f"running in a Kubernetes pod with no {what} configured: set ${env} from its "
            "Secret (docs/cluster.md, Secrets); a SQLite file would be lost with the pod"
        )


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from YAML (``path``, ``$FREIGHTML_CONFIG`` or configs/freightml.yaml).

    Environment variables override the file; ``overrides`` (nested dicts are merged key by
    key) override both. A missing explicit file is an error; a missing default file just
    means defaults.
    """
    explicit = path or os.environ.get(CONFIG_ENV_VAR)
    file = Path(explicit) if explicit else DEFAULT_CONFIG_FILE
    if not file.exists():
        if explicit:
            raise FileNotFoundError(f"settings file {file} does not exist")
        return Settings(**overrides)
    loaded = yaml.safe_load(file.read_text())
    if not isinstance(loaded, dict | None):
        raise ValueError(f"{file}: expected a mapping of settings, got {type(loaded).__name__}")
    token = _settings_file.set(file)
    try:
        return Settings(**overrides)
    finally:
        _settings_file.reset(token)


def settings_from_json(text: str) -> Settings:
    """Rebuild settings inside a pipeline component from its JSON parameter."""
    return Settings.model_validate(json.loads(text))
