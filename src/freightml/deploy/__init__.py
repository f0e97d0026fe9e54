"""Serving on a cluster: the model as a KServe InferenceService, and its rollout.

:mod:`freightml.deploy.inference_service` builds the object with the kserve SDK models,
:mod:`freightml.deploy.apply` creates or patches it through ``KServeClient``.
:func:`deploy_model` is the lifecycle stage the pipeline's deploy component calls.

Its settings (:class:`DeploySettings`, the ``deploy:`` section) live in
:mod:`freightml.config` with the rest; this package imports neither kserve nor kubernetes
at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from freightml.config import DeploySettings, Settings
from freightml.kubernetes_values import quantity

if TYPE_CHECKING:
    from kserve import KServeClient

__all__ = ["DeploySettings", "deploy_model", "quantity"]


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
    from freightml.deploy.apply import default_client, rollout, wait_ready  # noqa: PLC0415
    from freightml.deploy.inference_service import build_inference_service, to_manifest  # noqa: PLC0415

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
