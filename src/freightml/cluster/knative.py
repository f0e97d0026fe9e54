"""What Knative Serving accepts in a pod spec: its field masks, as facts, checked offline.

KServe's default (Serverless) mode hands an InferenceService's predictor pod spec to a
Knative Service, and Knative's webhook refuses any field outside its masks ("must not set
the field(s)"): the InferenceService then never becomes Ready. The offline schema checks do
not see it (the field is valid Kubernetes), so this module states the masks of the version
docs/cluster.md installs, with Knative's default feature flags, and names every field a
rendered InferenceService sets beyond them.

Source: knative/serving ``pkg/apis/serving/fieldmask.go`` (``PodSpecMask``,
``ContainerMask``, ``SecurityContextMask``, ``CapabilitiesMask``, ``VolumeMountMask``) and
the flag defaults in ``pkg/apis/config/features.go``, tag ``knative-v1.21.0``.
"""

from __future__ import annotations

from typing import Any

KNATIVE_VERSION = "v1.21.0"

# PodSpecMask: always allowed (automountServiceAccountToken only when false)
POD_SPEC = frozenset(
    {
        "serviceAccountName",
        "containers",
        "volumes",
        "imagePullSecrets",
        "enableServiceLinks",
        "automountServiceAccountToken",
    }
)
# PodSpecMask: allowed only with a feature flag of config-features (all disabled by default)
POD_SPEC_FLAGS = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "tolerations": "kubernetes.podspec-tolerations",
    "securityContext": "kubernetes.podspec-securitycontext",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "initContainers": "kubernetes.podspec-init-containers",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}
CONTAINER = frozenset(
    {
        "name",
        "args",
        "command",
        "env",
        "workingDir",
        "envFrom",
        "image",
        "imagePullPolicy",
        "livenessProbe",
        "ports",
        "readinessProbe",
        "resources",
        "securityContext",
        "startupProbe",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "volumeMounts",
    }
)
# SecurityContextMask (privileged only when false); CapabilitiesMask: drop only by default
CONTAINER_SECURITY = frozenset(
    {
        "capabilities",
        "readOnlyRootFilesystem",
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "allowPrivilegeEscalation",
        "seccompProfile",
        "privileged",
    }
)
CAPABILITIES = frozenset({"drop"})
# volume sources: secret, configMap, projected always; emptyDir on by default; these need a flag
VOLUME_FLAGS = {
    "hostPath": "kubernetes.podspec-volumes-hostpath",
    "csi": "kubernetes.podspec-volumes-csi",
    "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
    "image": "kubernetes.podspec-volumes-image",
}
VOLUME_SOURCES = frozenset({"secret", "configMap", "projected", "emptyDir"})
VOLUME_MOUNT = frozenset({"name", "readOnly", "mountPath", "subPath"})

# KServe's own predictor fields around the pod spec (ComponentExtensionSpec and the
# predictor's framework specs): KServe reads them, Knative never sees them
KSERVE_PREDICTOR = frozenset(
    {
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "scaleMetricType",
        "autoScaling",
        "containerConcurrency",
        "timeout",
        "canaryTrafficPercent",
        "logger",
        "batcher",
        "labels",
        "annotations",
        "deploymentStrategy",
        "workerSpec",
        "model",
    }
)


def refusals(doc: dict[str, Any]) -> list[str]:
    """Every field of an InferenceService's predictor pod that Knative's webhook refuses
    with its default feature flags (empty for any other object)."""
    if doc.get("kind") != "InferenceService":
        return []
    predictor = (doc.get("spec") or {}).get("predictor") or {}
    out = []
    for key, value in predictor.items():
        if key in KSERVE_PREDICTOR or key in POD_SPEC:
            if key == "automountServiceAccountToken" and value is not False:
                out.append("automountServiceAccountToken may only be set to false")
            continue
        flag = POD_SPEC_FLAGS.get(key)
        why = f"needs the feature flag {flag}, off by default" if flag else "not in the mask"
        out.append(f"pod spec field {key}: {why}")
    for volume in predictor.get("volumes") or []:
        for k in set(volume) - {"name"}:
            if k not in VOLUME_SOURCES:
                flag = VOLUME_FLAGS.get(k)
                why = f"needs {flag}, off by default" if flag else "is not a volume Knative takes"
                out.append(f"volume {volume.get('name')}: {k} {why}")
    for container in predictor.get("containers") or []:
        name = container.get("name", "?")
        out += [
            f"container {name}: env {e.get('name')} reads a fieldRef (needs "
            "kubernetes.podspec-fieldref, off by default)"
            for e in container.get("env") or []
            if "fieldRef" in (e.get("valueFrom") or {})
        ]
        out += [
            f"container {name}: field {k} is not in Knative's container mask"
            for k in container
            if k not in CONTAINER
        ]
        security = container.get("securityContext") or {}
        out += [
            f"container {name}: securityContext.{k} is not in Knative's mask"
            for k in security
            if k not in CONTAINER_SECURITY
        ]
        if security.get("privileged") not in (None, False):
            out.append(f"container {name}: securityContext.privileged may only be false")
        out += [
            f"container {name}: capabilities.{k} needs a feature flag (only drop is allowed)"
            for k in security.get("capabilities") or {}
            if k not in CAPABILITIES
        ]
        for mount in container.get("volumeMounts") or []:
            out += [
                f"container {name}: volumeMounts[{mount.get('name')}].{k} is not in the mask"
                for k in mount
                if k not in VOLUME_MOUNT
            ]
    return out
