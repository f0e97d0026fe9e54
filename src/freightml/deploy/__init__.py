"""Serving on a cluster: the model as a KServe InferenceService, and its rollout.

:mod:`freightml.deploy.inference_service` builds the object with the kserve SDK models,
:mod:`freightml.deploy.apply` creates or patches it through ``KServeClient``.
:func:`deploy_model` is the lifecycle stage the pipeline's deploy component calls.

This module imports neither kserve nor kubernetes at import time, so the settings
model below can live in ``freightml.config`` without slowing every import down.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from kserve import KServeClient

    from freightml.config import Settings

__all__ = ["DeploySettings", "deploy_model"]

# Kubernetes resource.Quantity, as its OpenAPI schema spells it.
QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_SUFFIXES = {
    "": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity ("500m", "4Gi", "1e3") as a number, to compare two of them."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and value.endswith(suffix):
            return Decimal(value[: -len(suffix)]) * _SUFFIXES[suffix]
    return Decimal(value)  # plain or exponent notation


class DeploySettings(BaseModel):
    """How the model is served on the cluster (one KServe InferenceService)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        "freight-volume", max_length=45, pattern=DNS_LABEL,
        description="InferenceService name (a DNS label; KServe adds suffixes, so <= 45 chars)",
    )
    namespace: str = Field(
        "freightml", max_length=63, pattern=DNS_LABEL, description="namespace it runs in"
    )
    image: str = Field(
        "ghcr.io/freightml/freightml:0.1.0", min_length=1, pattern=r"^\S+$",
        description="predictor image (components/Dockerfile; runs `python -m freightml.serving`)",
    )
    history_uri: str | None = Field(
        None,
        description="facts file/URI the predictor builds features from; "
        "None = the predictor's own settings (data.source_uri)",
    )
    service_account: str = Field(
        "freightml-predictor", min_length=1,
        description="ServiceAccount of the predictor pods (its credentials come from a Secret)",
    )
    mlflow_secret: str = Field(
        "mlflow-credentials", min_length=1,
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




def deploy_model(
    settings: Settings,
    version: str,
    *,
    canary_percent: int | None = None,
    client: KServeClient | None = None,
    dry_run: bool = False,
    wait: bool = False,
) -> dict[str, Any]:
    """Serve registered model ``version`` and return the InferenceService manifest applied.

    ``canary_percent`` sends that share of traffic to the new revision and the rest to
    the previous one (0 rolls the canary back; None sends everything to the new one).
    ``dry_run`` only builds the manifest; ``wait`` blocks until the service is Ready.
    """
    from freightml.deploy.apply import default_client, rollout, wait_ready
    from freightml.deploy.inference_service import build_inference_service, to_manifest

    deploy = settings.deploy
    model_name = settings.tracking.registered_model
    if dry_run:
        isvc = build_inference_service(
            deploy, version, model_name=model_name, canary_percent=canary_percent
        )
        return to_manifest(isvc)
    client = client or default_client()
    manifest = rollout(deploy, version, canary_percent, model_name=model_name, client=client)
    if wait:
        wait_ready(deploy.name, deploy.namespace, deploy.ready_timeout_seconds, client=client)
    return manifest

