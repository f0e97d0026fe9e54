"""A Spark step on the cluster: one ``SparkApplication`` of the Kubeflow Spark Operator.

With ``compute.engine: spark`` and ``compute.submit: operator`` the KFP component of a step
does not run Spark in its own pod: it writes a ``SparkApplication``
(``sparkoperator.k8s.io/v1beta2``, the CRD vendored in ``crds/spark-operator/``) that runs
FreightML's own image (:data:`freightml.image.IMAGE`) with :mod:`freightml.stages.spark_job` as
its main file, the step's inputs and outputs as object store URIs, submits it, waits for the
operator to report it ``COMPLETED`` (a ``FAILED`` or ``SUBMISSION_FAILED`` application is
an error carrying the operator's message) and returns. The pods meet the restricted Pod
Security profile (non-root, no privilege escalation, every capability dropped,
RuntimeDefault seccomp, read-only root filesystem with an ``emptyDir`` at ``/tmp``).
docs/cluster.md ("Spark") has the operator's install and the RBAC it needs (manifests/spark).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from freightml.compute_settings import ComputeSettings

log = logging.getLogger("freightml")

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
# the job's main file in the image: the project is installed from /app/src (Dockerfile)
MAIN_FILE = "local:///app/src/freightml/stages/spark_main/launch.py"
DONE, FAILED = "COMPLETED", ("FAILED", "SUBMISSION_FAILED")
UID = 10001  # the image's numeric user (components/Dockerfile)
# The work is Python's (pandas in the tasks, the driver's tables); the JVM only schedules,
# broadcasts and gathers answers. So the JVM heap stays small and the pods' memory for
# Python is Spark's memoryOverhead, sized by compute.driver_memory / executor_memory.
JVM_MEMORY = "1g"


class SparkApplicationFailed(RuntimeError):
    """The operator reports the application failed; the message is the operator's."""


def spark_version() -> str:
    """The Spark version of this environment's pyspark (the image's; the driver and the
    executors must run the same)."""
    try:
        return version("pyspark")
    except PackageNotFoundError as exc:
        raise RuntimeError(
            "compute.submit is operator but pyspark is not installed: the SparkApplication "
            "runs the image's Spark (install the `spark` extra)"
        ) from exc


def _security() -> tuple[dict[str, Any], dict[str, Any]]:
    pod = {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return pod, container


def _credentials(compute: ComputeSettings) -> list[dict[str, Any]]:
    """The object store's keys from ``compute.object_store_secret`` (KFP's key names)."""
    return [
        {
            "name": env,
            "valueFrom": {"secretKeyRef": {"name": compute.object_store_secret, "key": key}},
        }
        for env, key in (("AWS_ACCESS_KEY_ID", "accesskey"), ("AWS_SECRET_ACCESS_KEY", "secretkey"))
    ]


def spark_application(
    step: str,
    arguments: list[str],
    compute: ComputeSettings,
    *,
    image: str,
    namespace: str,
    name: str | None = None,
    object_store_endpoint: str | None = None,
) -> dict[str, Any]:
    """The SparkApplication running ``python job.py <step> <arguments>`` in ``image``."""
    name = name or f"freightml-{step}-{uuid.uuid4().hex[:10]}"
    labels = {
        "app.kubernetes.io/name": "freightml",
        "app.kubernetes.io/component": f"spark-{step}",
        "app.kubernetes.io/part-of": "freightml",
    }
    pod_security, container_security = _security()
    # the tasks read and write the object store with pyarrow, which takes its endpoint here
    endpoint = (
        [{"name": "AWS_ENDPOINT_URL", "value": object_store_endpoint}]
        if object_store_endpoint
        else []
    )
    role = {
        "labels": labels,
        "podSecurityContext": pod_security,
        "securityContext": container_security,
        "env": [*_credentials(compute), {"name": "HOME", "value": "/tmp"}, *endpoint],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    spark_conf = {
        "spark.sql.shuffle.partitions": str(compute.shards),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.kubernetes.executor.deleteOnTermination": "true",
        "spark.local.dir": "/tmp/spark-local",
    }
    hadoop_conf = {"fs.s3a.aws.credentials.provider": (
        "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
    )}  # fmt: skip
    if object_store_endpoint:
        hadoop_conf |= {
            "fs.s3a.endpoint": object_store_endpoint,
            "fs.s3a.path.style.access": "true",
        }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SparkApplication",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "type": "Python",
            "mode": "cluster",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": MAIN_FILE,
            "arguments": [step, *arguments],
            "sparkVersion": spark_version(),
            "sparkConf": spark_conf,
            "restartPolicy": {"type": "Never"},
            "timeToLiveSeconds": 86400,
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "driver": {
                **role,
                "cores": 1,
                "coreLimit": "1",
                "memory": JVM_MEMORY,
                "memoryOverhead": compute.driver_memory,
                "serviceAccount": compute.spark_service_account,
            },
            "executor": {
                **role,
                "instances": compute.executors,
                "cores": compute.executor_cores,
                "coreLimit": str(compute.executor_cores),
                "memory": JVM_MEMORY,
                "memoryOverhead": compute.executor_memory,
            },
        },
    }


def own_namespace(
    path: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace"),
) -> str:
    """The namespace of the pod this runs in (its service account's mount)."""
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise RuntimeError(
            f"compute.spark_namespace is unset and this is not a pod ({path} unreadable): "
            "set compute.spark_namespace"
        ) from exc


def run_application(
    api: Any,
    manifest: dict[str, Any],
    *,
    timeout_seconds: float,
    poll_seconds: float = 5.0,
    progress: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Create ``manifest`` with ``api`` (a kubernetes ``CustomObjectsApi``) and wait for
    its application state: the final status when ``COMPLETED``; SparkApplicationFailed
    (the operator's error message) when it failed; TimeoutError (the application is
    deleted) past ``timeout_seconds``."""
    meta = manifest["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    progress(f"submitted SparkApplication {namespace}/{name}")
    deadline = time.monotonic() + timeout_seconds
    seen = None
    while True:
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        status = current.get("status") or {}
        state = (status.get("applicationState") or {}).get("state") or "NEW"
        if state != seen:
            progress(f"SparkApplication {name}: {state}")
            seen = state
        if state == DONE:
            return status
        if state in FAILED:
            message = (status.get("applicationState") or {}).get("errorMessage") or "no message"
            raise SparkApplicationFailed(f"SparkApplication {namespace}/{name} {state}: {message}")
        if time.monotonic() > deadline:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            raise TimeoutError(
                f"SparkApplication {namespace}/{name} still {state} after {timeout_seconds:.0f} s "
                "(compute.timeout_seconds); deleted"
            )
        time.sleep(poll_seconds)


def submit_step(
    step: str,
    settings_json: str,
    uris: dict[str, str],
    compute: ComputeSettings,
    *,
    api: Any,
    image: str,
    object_store_endpoint: str | None = None,
    poll_seconds: float = 5.0,
) -> dict[str, Any]:
    """Run ``step`` of :mod:`freightml.stages.spark_job` as a SparkApplication with the
    settings and ``uris`` (``facts``, ``out``, for scoring ``model``; ``staging``, where
    the facts' shards go, defaults to ``<out>.shards``) and wait for it: the final status."""
    uris = {"staging": f"{uris['out'].rstrip('/')}.shards", **uris}
    arguments = ["--settings", settings_json]
    for name, uri in uris.items():
        arguments += [f"--{name}", uri]
    manifest = spark_application(
        step,
        arguments,
        compute,
        image=image,
        namespace=compute.spark_namespace or own_namespace(),
        object_store_endpoint=object_store_endpoint,
    )
    status = run_application(
        api, manifest, timeout_seconds=compute.timeout_seconds, poll_seconds=poll_seconds
    )
    log.info("%s on Spark: %s", step, json.dumps(status.get("applicationState", {})))
    return status
