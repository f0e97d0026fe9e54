"""The predictor as a KServe InferenceService, built from the kserve SDK models.

One custom predictor container runs ``python -m freightml.serving`` (a
``kserve.ModelServer`` with the project's ``kserve.Model``) on a pinned registered model
version. MLflow settings
come from a Kubernetes Secret by reference, KServe's payload logger sends every request
and response to the collector, and the probes use the endpoints ``kserve.ModelServer``
exposes: ``GET /`` (live) and ``GET /v1/models/<name>`` (ready, 503 until loaded).
"""

from __future__ import annotations

# kserve parses sys.argv when first imported: the guard goes before every other import
import freightml._kserve  # noqa: F401  (first: see freightml/_kserve.py)

# isort: split

import re
from functools import cache
from typing import Any

import yaml
from kserve import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1LoggerSpec,
    V1beta1PredictorSpec,
    constants,
)
from kserve.api_client import ApiClient
from kubernetes import client as k8s

from freightml import __version__
from freightml.config import DeploySettings
from freightml.domain import MLFLOW_OPTIONAL_KEYS, MODEL_NAME, TRACKING_URI_KEY

CONTAINER_NAME = "kserve-container"  # the name KServe expects for a custom predictor
HTTP_PORT = 8080
DEFAULT_MODEL_NAME = MODEL_NAME  # the registered model
SERVE_COMMAND = ["python", "-m", "freightml.serving"]
# The name the predictor answers to; the readiness probe asks for it.
SERVED_MODEL_NAME = MODEL_NAME
VERSION_LABEL = "freightml.io/model-version"
MODEL_LABEL = "freightml.io/model-name"
MODEL_URI_ANNOTATION = "freightml.io/model-uri"
# The restricted Pod Security profile: the image's numeric non-root user (components/
# Dockerfile), a read-only root filesystem with the image's only writable paths as
# emptyDirs (/tmp, where MLflow downloads the model, and FREIGHTML_HOME, also HOME), no
# privilege escalation, no capabilities.
RUN_AS_USER = 10001
WRITABLE = {  # volume name -> (mount path, size limit)
    "tmp": ("/tmp", "1Gi"),
    "home": ("/var/lib/freightml", "256Mi"),
}

# Keys of the MLflow Secret the predictor reads; only the tracking URI is mandatory.
REQUIRED_SECRET_KEYS = (TRACKING_URI_KEY,)
OPTIONAL_SECRET_KEYS = MLFLOW_OPTIONAL_KEYS
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def model_uri_for(model_name: str, version: str) -> str:
    """The MLflow URI of one registered version.

    Pinned by number, not by alias: every revision then serves exactly the version its
    label names, and a challenger can run as a canary beside the champion.
    """
    return f"models:/{model_name}/{version}"


def check_version(version: str) -> str:
    """``version`` as a label value, or a ValueError saying why it cannot be one."""
    version = str(version).strip()
    if not version or len(version) > 63 or not _LABEL_VALUE.fullmatch(version):
        raise ValueError(
            f"model version {version!r} must be 1-63 letters, digits, '-', '_' or '.' "
            "(it becomes the label freightml.io/model-version), e.g. '7'"
        )
    return version


def check_canary(canary_percent: int | None) -> int | None:
    """``canary_percent`` if it is None or a whole percentage, else a ValueError."""
    if canary_percent is None:
        return None
    if isinstance(canary_percent, bool) or not isinstance(canary_percent, int):
        raise ValueError(f"canary_percent must be an integer 0-100 or None, got {canary_percent!r}")
    if not 0 <= canary_percent <= 100:
        raise ValueError(f"canary_percent must be between 0 and 100, got {canary_percent}")
    return canary_percent


def labels_for(deploy: DeploySettings, model_name: str, version: str) -> dict[str, str]:
    """The labels of the InferenceService and its pods."""
    return {
        "app.kubernetes.io/name": "freightml",
        "app.kubernetes.io/instance": deploy.name,
        "app.kubernetes.io/component": "predictor",
        "app.kubernetes.io/part-of": "freightml",
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/managed-by": "freightml",
        MODEL_LABEL: model_name,
        VERSION_LABEL: version,
    }


def _secret_env(secret: str) -> list[k8s.V1EnvVar]:
    keys = [(k, False) for k in REQUIRED_SECRET_KEYS] + [(k, True) for k in OPTIONAL_SECRET_KEYS]
    return [
        k8s.V1EnvVar(
            name=key,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key, optional=optional)
            ),
        )
        for key, optional in keys
    ]


def _container(deploy: DeploySettings, version: str, model_uri: str) -> k8s.V1Container:
    def probe(path: str, **timing: int) -> k8s.V1Probe:
        return k8s.V1Probe(
            http_get=k8s.V1HTTPGetAction(path=path, port=HTTP_PORT), timeout_seconds=2, **timing
        )

    args = [
        "--model-uri",
        model_uri,
        "--model-version",
        version,
        "--listen-host",
        "0.0.0.0",
        "--listen-port",
        str(HTTP_PORT),
    ]
    if deploy.history_uri:
        args += ["--history", deploy.history_uri]
    # no --collector-url: KServe's payload logger sends the events, the predictor must not
    return k8s.V1Container(
        name=CONTAINER_NAME,
        image=deploy.image,
        command=list(SERVE_COMMAND),
        args=args,
        ports=[k8s.V1ContainerPort(container_port=HTTP_PORT, protocol="TCP")],
        env=[
            *_secret_env(deploy.mlflow_secret),
            k8s.V1EnvVar(name="FREIGHTML_MODEL_VERSION", value=version),
        ],
        resources=k8s.V1ResourceRequirements(
            requests={"cpu": deploy.cpu_request, "memory": deploy.memory_request},
            limits={"cpu": deploy.cpu_limit, "memory": deploy.memory_limit},
        ),
        # ready once the model and its warm history are loaded; live as soon as it answers
        readiness_probe=probe(
            f"/v1/models/{SERVED_MODEL_NAME}",
            initial_delay_seconds=5,
            period_seconds=5,
            failure_threshold=3,
        ),
        liveness_probe=probe("/", initial_delay_seconds=30, period_seconds=10, failure_threshold=6),
        security_context=k8s.V1SecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_USER,
            read_only_root_filesystem=True,
            allow_privilege_escalation=False,
            privileged=False,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[
            k8s.V1VolumeMount(name=name, mount_path=path) for name, (path, _) in WRITABLE.items()
        ],
    )


def build_inference_service(
    deploy: DeploySettings,
    version: str,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    canary_percent: int | None = None,
    model_uri: str | None = None,
) -> V1beta1InferenceService:
    """The InferenceService serving registered model ``version`` of ``model_name``.

    ``canary_percent`` (0-100) routes that share of traffic to this revision and the rest
    to the previous one; None routes everything to it. ``model_uri`` overrides the
    ``models:/<name>/<version>`` MLflow URI (e.g. an ``s3://`` storage URI).
    """
    version = check_version(version)
    canary_percent = check_canary(canary_percent)
    if not model_name:
        raise ValueError("model_name is empty: pass the registered model's name")
    uri = model_uri or model_uri_for(model_name, version)
    labels = labels_for(deploy, model_name, version)
    predictor = V1beta1PredictorSpec(
        containers=[_container(deploy, version, uri)],
        service_account_name=deploy.service_account,
        # the predictor reads no Kubernetes API: no token in its pods
        automount_service_account_token=False,
        # no pod-level securityContext: Knative (KServe's Serverless mode) refuses it unless
        # kubernetes.podspec-securitycontext is on; the container carries every restricted
        # field (freightml.cluster.knative checks the pod spec against Knative's masks)
        volumes=[
            k8s.V1Volume(name=name, empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=size))
            for name, (_, size) in WRITABLE.items()
        ],
        min_replicas=deploy.min_replicas,
        max_replicas=deploy.max_replicas,
        canary_traffic_percent=canary_percent,
        logger=V1beta1LoggerSpec(mode="all", url=deploy.logger_url),
        labels=labels,
    )
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1,
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=k8s.V1ObjectMeta(
            name=deploy.name,
            namespace=deploy.namespace,
            labels=labels,
            annotations={MODEL_URI_ANNOTATION: uri},
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def build_service_account(deploy: DeploySettings) -> k8s.V1ServiceAccount:
    """The predictor's ServiceAccount, which carries the MLflow/S3 Secret by name."""
    return k8s.V1ServiceAccount(
        api_version="v1",
        kind="ServiceAccount",
        metadata=k8s.V1ObjectMeta(
            name=deploy.service_account,
            namespace=deploy.namespace,
            labels={
                "app.kubernetes.io/name": "freightml",
                "app.kubernetes.io/component": "predictor",
                "app.kubernetes.io/part-of": "freightml",
            },
        ),
        secrets=[k8s.V1ObjectReference(name=deploy.mlflow_secret)],
        automount_service_account_token=False,
    )


@cache
def _api_client() -> ApiClient:
    return ApiClient()


def to_manifest(obj: Any) -> dict[str, Any]:
    """An SDK object as a Kubernetes manifest: camelCase keys, unset fields dropped.

    Not ``obj.to_dict()``, which gives snake_case keys and nulls.
    """
    return _api_client().sanitize_for_serialization(obj)


def to_yaml(obj: Any) -> str:
    """An SDK object (or a list of them) as YAML, one document each."""
    objs = obj if isinstance(obj, list) else [obj]
    return yaml.safe_dump_all([to_manifest(o) for o in objs], sort_keys=False)
