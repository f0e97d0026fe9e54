"""Create or update the InferenceService on a cluster and wait until it is Ready.

Everything goes through ``kserve.KServeClient``. Its methods wrap API errors in a bare
``RuntimeError``; :class:`DeployError` recovers the HTTP status and reason from them.
"""

from __future__ import annotations

# kserve parses sys.argv when first imported: the guard goes before every other import
import freightml._kserve  # noqa: F401  (first: see freightml/_kserve.py)

# isort: split

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kserve import KServeClient, V1beta1InferenceService, constants
from kubernetes.client.rest import ApiException
from kubernetes.config import ConfigException
from urllib3.exceptions import HTTPError

from freightml.config import DeploySettings
from freightml.deploy.inference_service import build_inference_service, to_manifest
from freightml.domain import MODEL_NAME

log = logging.getLogger("freightml")
T = TypeVar("T")


class DeployError(RuntimeError):
    """A Kubernetes API call failed; ``status`` and ``reason`` are the HTTP ones if known."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason


def _api_exception(exc: BaseException) -> ApiException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ApiException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one API call; turn its failure into a DeployError naming ``what`` and why."""
    try:
        return fn(*args, **kwargs)
    except (ApiException, RuntimeError, HTTPError) as exc:
        if isinstance(exc, DeployError):
            raise
        api = _api_exception(exc)
        if api is None:
            raise DeployError(f"{what} failed: {exc}") from exc
        detail = ""
        try:
            detail = json.loads(api.body or "{}").get("message", "")
        except (ValueError, AttributeError):
            detail = str(api.body or "")
        message = f"{what} failed: HTTP {api.status} {api.reason}"
        raise DeployError(
            f"{message}: {detail}" if detail else message, status=api.status, reason=api.reason
        ) from exc


def default_client() -> KServeClient:
    """A KServeClient from $KUBECONFIG / ~/.kube/config, or the in-cluster account."""
    try:
        return KServeClient()
    except (ConfigException, OSError) as exc:
        raise DeployError(
            f"no Kubernetes configuration ({exc}): set KUBECONFIG or run inside the cluster"
        ) from exc


def _merge_patch(manifest: dict[str, Any]) -> dict[str, Any]:
    # A JSON merge patch keeps keys it does not mention; removing the canary (a full
    # rollout) needs an explicit null, which KServeClient.patch would drop.
    patch = json.loads(json.dumps(manifest))
    predictor = patch["spec"]["predictor"]
    predictor.setdefault("canaryTrafficPercent", None)
    return patch


def apply_inference_service(
    isvc: V1beta1InferenceService,
    client: KServeClient | None = None,
    *,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Create ``isvc``, or merge-patch it over the existing one; return the server's object."""
    name = isvc.metadata.name
    ns = namespace or isvc.metadata.namespace
    if not name or not ns:
        raise ValueError("the InferenceService needs metadata.name and a namespace")
    if isvc.metadata.namespace and isvc.metadata.namespace != ns:
        raise ValueError(
            f"namespace {ns!r} differs from the InferenceService's own {isvc.metadata.namespace!r}"
        )
    client = client or default_client()
    where = f"InferenceService {ns}/{name}"
    try:
        created = _call(f"creating {where}", client.create, isvc, namespace=ns)
        log.info("created %s", where)
        return created or _call(f"reading {where}", client.get, name, namespace=ns)
    except DeployError as exc:
        if exc.status != 409:
            raise
    patched = _call(
        f"patching {where}",
        client.api_instance.patch_namespaced_custom_object,
        constants.KSERVE_GROUP,
        constants.KSERVE_V1BETA1_VERSION,
        ns,
        constants.KSERVE_PLURAL_INFERENCESERVICE,
        name,
        _merge_patch(to_manifest(isvc)),
    )
    log.info("patched %s", where)
    return patched


def rollout(
    deploy: DeploySettings,
    version: str,
    canary_percent: int | None = None,
    *,
    model_name: str = MODEL_NAME,
    client: KServeClient | None = None,
) -> dict[str, Any]:
    """Serve ``version``: ``canary_percent`` of traffic on it, the rest on the previous
    revision (None = all of it, i.e. promote; 0 = roll the canary back). Returns the
    manifest applied."""
    isvc = build_inference_service(
        deploy, version, model_name=model_name, canary_percent=canary_percent
    )
    apply_inference_service(isvc, client, namespace=deploy.namespace)
    share = "all" if canary_percent is None else f"{canary_percent}%"
    log.info(
        "rolled out %s v%s to %s/%s with %s of traffic",
        model_name,
        version,
        deploy.namespace,
        deploy.name,
        share,
    )
    return to_manifest(isvc)


def _ready(isvc: dict[str, Any]) -> tuple[bool, str]:
    """Whether the controller reports Ready for the current spec, and what it says."""
    status = isvc.get("status") or {}
    conditions = status.get("conditions") or []
    summary = (
        ", ".join(
            f"{c.get('type')}={c.get('status')}"
            + (f" ({c.get('reason')}: {c.get('message')})" if c.get("status") != "True" else "")
            for c in conditions
        )
        or "no status conditions yet"
    )
    generation = (isvc.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return False, f"controller has not seen generation {generation} yet (at {observed})"
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready, summary


def wait_ready(
    name: str,
    namespace: str,
    timeout: float = 600,
    *,
    client: KServeClient | None = None,
    poll_seconds: float = 5.0,
) -> dict[str, Any]:
    """Poll until the InferenceService is Ready; return it, or raise TimeoutError with
    the conditions that were not met."""
    client = client or default_client()
    where = f"InferenceService {namespace}/{name}"
    deadline = time.monotonic() + timeout
    while True:
        isvc = _call(f"reading {where}", client.get, name, namespace=namespace)
        ready, summary = _ready(isvc)
        if ready:
            log.info("%s is Ready", where)
            return isvc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{where} not Ready after {timeout:g}s: {summary}")
        time.sleep(min(poll_seconds, remaining))
