"""FreightML's own policy over rendered Kubernetes objects.

Every pod spec (Pods, the workload controllers, CronJobs and the InferenceService's
predictor) must meet the restricted Pod Security profile, set requests and limits on
every container, and, when it runs for long, carry readiness and liveness probes; images
are pinned by tag or digest, never ``latest``; no secret value is written inline; a
NetworkPolicy selects every workload; RBAC rules and Argo CD projects name what they
allow, without wildcards. :func:`check_objects` returns one :class:`Finding` per broken
rule, naming the object and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "InferenceService"}
# Environment variable names that hold credentials: their value must come from a Secret.
_CREDENTIAL_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I
)
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


@dataclass(frozen=True)
class Finding:
    """One broken rule: which object, which rule, what is wrong."""

    obj: str  # "Kind namespace/name"
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.obj}: [{self.rule}] {self.message}"


def describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    name = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if p) or "<unnamed>"
    return f"{obj.get('kind', '<no kind>')} {name}"


@dataclass(frozen=True)
class PodSpec:
    """A pod template found in an object, with the labels its pods carry."""

    owner: dict[str, Any]
    spec: dict[str, Any]
    labels: dict[str, str]
    long_running: bool


def pod_specs(obj: dict[str, Any]) -> Iterator[PodSpec]:
    """The pod spec(s) an object runs, if it is a workload."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield PodSpec(obj, spec, (obj.get("metadata") or {}).get("labels") or {}, False)
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        yield PodSpec(obj, template.get("spec") or {}, labels, kind in LONG_RUNNING)
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        yield PodSpec(obj, template.get("spec") or {}, labels, False)
    elif kind == "SparkApplication":
        for role in ("driver", "executor"):
            part = spec.get(role) or {}
            yield PodSpec(obj, spark_pod(spec, part, role), part.get("labels") or {}, False)
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            part = spec.get(component)
            if part:
                labels = {
                    **((obj.get("metadata") or {}).get("labels") or {}),
                    **(part.get("labels") or {}),
                }
                yield PodSpec(obj, part, labels, True)


def spark_pod(spec: dict[str, Any], part: dict[str, Any], role: str) -> dict[str, Any]:
    """The pod a SparkApplication's ``driver`` or ``executor`` section makes (as the Spark
    Operator builds it): its security contexts, volumes, and the container's resources
    (``cores``/``coreRequest`` and ``memory`` requested, ``coreLimit`` and ``memory`` plus
    overhead as limits; only ``coreLimit`` has to be set)."""
    requests = {"cpu": str(part.get("coreRequest") or part.get("cores") or "")}
    if part.get("memory"):
        requests["memory"] = part["memory"]
    limits = {
        k: v
        for k, v in {
            "cpu": part.get("coreLimit"),
            "memory": part.get("memoryLimit") or part.get("memory"),
        }.items()
        if v
    }
    container = {
        "name": f"spark-kubernetes-{role}",
        "image": part.get("image") or spec.get("image"),
        "securityContext": part.get("securityContext"),
        "resources": {"requests": {k: v for k, v in requests.items() if v}, "limits": limits},
        "env": part.get("env") or [],
    }
    return {
        "securityContext": part.get("podSecurityContext"),
        "hostNetwork": part.get("hostNetwork"),
        "volumes": spec.get("volumes") or [],
        "containers": [container],
    }


def _containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (key, c)
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def _pod_security(pod: PodSpec) -> Iterator[tuple[str, str]]:
    spec = pod.spec
    psc = spec.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            yield "pod-security-host-namespaces", f"{host} is true"
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            yield "pod-security-host-path", f"volume {volume.get('name')!r} is a hostPath"
    for key, c in _containers(spec):
        where = f"{key[:-1]} {c.get('name')!r}"
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            yield "pod-security-run-as-non-root", f"{where} does not set runAsNonRoot: true"
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            yield "pod-security-run-as-non-root", f"{where} runs as user 0"
        if sc.get("privileged"):
            yield "pod-security-privileged", f"{where} is privileged"
        if sc.get("allowPrivilegeEscalation") is not False:
            yield (
                "pod-security-privilege-escalation",
                f"{where} does not set allowPrivilegeEscalation: false",
            )
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            yield "pod-security-capabilities", f"{where} does not drop ALL capabilities"
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            yield "pod-security-capabilities", f"{where} adds capabilities {sorted(added)}"
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in _SECCOMP_OK:
            yield "pod-security-seccomp", f"{where} has no RuntimeDefault seccomp profile"
        if sc.get("readOnlyRootFilesystem") is not True:
            yield (
                "read-only-root-filesystem",
                f"{where} does not set readOnlyRootFilesystem: true",
            )


def _resources(pod: PodSpec) -> Iterator[tuple[str, str]]:
    for key, c in _containers(pod.spec):
        if key == "ephemeralContainers":
            continue
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (res.get(part) or {})]
            if missing:
                yield (
                    "resources",
                    f"{key[:-1]} {c.get('name')!r} has no {part} for {', '.join(missing)}",
                )


def _probes(pod: PodSpec) -> Iterator[tuple[str, str]]:
    if not pod.long_running:
        return
    for c in pod.spec.get("containers") or []:
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                yield "probes", f"container {c.get('name')!r} has no {probe}"


def image_problem(image: str | None) -> str | None:
    """Why ``image`` is not pinned, or None if it names a tag (not latest) or a digest."""
    if not image:
        return "has no image"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag (it means latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the tag latest"
    return None


def _images(pod: PodSpec) -> Iterator[tuple[str, str]]:
    for key, c in _containers(pod.spec):
        problem = image_problem(c.get("image"))
        if problem:
            yield "image-tag", f"{key[:-1]} {c.get('name')!r} {problem}"


_PATH_SUFFIXES = ("_DIR", "_FILE", "_PATH")


def _inline_env(pod: PodSpec) -> Iterator[tuple[str, str]]:
    for key, c in _containers(pod.spec):
        for env in c.get("env") or []:
            value = env.get("value")
            if not isinstance(value, str) or not value:
                continue
            name = env.get("name", "")
            # a path to a mounted Secret (e.g. FREIGHTML_COLLECTOR__TOKENS_DIR) holds no secret
            is_path = name.endswith(_PATH_SUFFIXES) and value.startswith("/")
            if (_CREDENTIAL_NAME.search(name) and not is_path) or _URL_WITH_PASSWORD.match(value):
                yield (
                    "no-inline-secret",
                    f"{key[:-1]} {c.get('name')!r} sets {name} inline: take it from a "
                    "Secret (valueFrom.secretKeyRef)",
                )


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = (policy.get("spec") or {}).get("podSelector")
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _wildcards(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    kind = obj.get("kind")
    if kind in ("Role", "ClusterRole"):
        for i, rule in enumerate(obj.get("rules") or []):
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                if "*" in (rule.get(field) or []):
                    yield "rbac-no-wildcards", f"rules[{i}].{field} contains '*'"
    elif kind == "AppProject":
        spec = obj.get("spec") or {}
        if "*" in (spec.get("sourceRepos") or []):
            yield "argocd-project-scope", "sourceRepos contains '*'"
        for dest in spec.get("destinations") or []:
            if "*" in (dest.get("namespace"), dest.get("server"), dest.get("name")):
                yield "argocd-project-scope", f"destination {dest} contains '*'"
        for field in ("clusterResourceWhitelist", "namespaceResourceWhitelist"):
            for entry in spec.get(field) or []:
                if "*" in (entry.get("group"), entry.get("kind")):
                    yield "argocd-project-scope", f"{field} entry {entry} contains '*'"


def _secret(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if obj.get("kind") == "Secret" and (obj.get("data") or obj.get("stringData")):
        yield (
            "no-inline-secret",
            "a Secret with data/stringData is rendered: reference an existing Secret "
            "(created out of band) instead",
        )


def check_objects(objs: Iterable[dict[str, Any]]) -> list[Finding]:
    """Every policy finding over one set of objects rendered together (one namespace)."""
    objs = [o for o in objs if isinstance(o, dict)]
    policies = [o for o in objs if o.get("kind") == "NetworkPolicy"]
    findings: list[Finding] = []

    def add(obj: dict[str, Any], problems: Iterable[tuple[str, str]]) -> None:
        findings.extend(Finding(describe(obj), rule, msg) for rule, msg in problems)

    for obj in objs:
        add(obj, _wildcards(obj))
        add(obj, _secret(obj))
        for pod in pod_specs(obj):
            for check in (_pod_security, _resources, _probes, _images, _inline_env):
                add(obj, check(pod))
            if not any(
                _selects(p, pod.labels)
                and (p.get("metadata") or {}).get("namespace")
                in (None, (obj.get("metadata") or {}).get("namespace"))
                for p in policies
            ):
                add(
                    obj,
                    [
                        (
                            "network-policy",
                            f"no NetworkPolicy selects its pods (labels {pod.labels})",
                        )
                    ],
                )
    return findings
