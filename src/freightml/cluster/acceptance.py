"""Checks of what a real cluster would refuse or get wrong although every object is valid.

Each function adds failures to a :class:`freightml.cluster.check.Report`-like object
(anything with ``fail(check, message)`` and ``counts``); :func:`freightml.cluster.check.check`
runs them all. docs/cluster.md's check table describes each one.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import yaml

from freightml.cluster import policy, render

# ConfigMaps read by a controller rather than by a pod of the same rendering
_READ_BY_A_CONTROLLER = {"grafana_dashboard": "Grafana's dashboard sidecar"}
WIDE_OPEN = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
# the one port a rule open to every address may carry: HTTPS (object storage outside the cluster)
WIDE_OPEN_PORTS = {443}


class Findings(Protocol):
    counts: dict[str, int]

    def fail(self, check: str, message: str) -> None: ...


def _config_map_references(node: Any) -> Iterator[str]:
    """Names of ConfigMaps a manifest refers to (volumes, projected sources, envFrom, env)."""
    if isinstance(node, dict):
        for key, value in node.items():
            refers = key in {"configMap", "configMapRef", "configMapKeyRef"}
            if refers and isinstance(value, dict) and isinstance(value.get("name"), str):
                yield value["name"]
            yield from _config_map_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _config_map_references(item)


def check_config_maps(renderings: list[render.Rendering], report: Findings) -> None:
    """Every rendered ConfigMap is read: a pod of the same rendering mounts or references it,
    or a controller reads it by label (Grafana's dashboard sidecar)."""
    for r in renderings:
        referenced = {name for doc in r.docs for name in _config_map_references(doc)}
        for doc in r.docs:
            if doc.get("kind") != "ConfigMap":
                continue
            labels = doc["metadata"].get("labels") or {}
            if doc["metadata"]["name"] in referenced or set(labels) & set(_READ_BY_A_CONTROLLER):
                continue
            if doc["metadata"]["name"] == "argocd-cm":  # Argo CD's own settings
                continue
            report.fail(
                "config-maps",
                f"{r.label}: {policy.describe(doc)} is referenced by no object of the rendering "
                "(a dead object: remove it or mount it)",
            )


def _wide_open(peer: dict[str, Any]) -> bool:
    block = peer.get("ipBlock")
    if not block:
        return False
    return ipaddress.ip_network(block["cidr"], strict=False) in WIDE_OPEN


def check_egress(renderings: list[render.Rendering], report: Findings) -> None:
    """No NetworkPolicy opens egress to every address except HTTPS (object storage outside
    the cluster): a database or any other port is reached by its own address or pod labels."""
    for r in renderings:
        for doc in r.docs:
            if doc.get("kind") != "NetworkPolicy":
                continue
            for rule in (doc.get("spec") or {}).get("egress") or []:
                if not any(_wide_open(peer) for peer in rule.get("to") or []):
                    continue
                ports = {p.get("port") for p in rule.get("ports") or [{}]}
                if not ports <= WIDE_OPEN_PORTS:
                    shown = ", ".join(sorted(str(p or "every port") for p in ports))
                    report.fail(
                        "egress",
                        f"{r.label}: {policy.describe(doc)} opens egress to every address on "
                        f"{shown}: name the database or store by its CIDR or pod labels",
                    )


def _pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    template = (doc.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def budgeted(labels: dict[str, str], budgets: list[dict[str, Any]]) -> bool:
    return any(
        ((b.get("spec") or {}).get("selector") or {}).get("matchLabels", {}).items()
        <= labels.items()
        for b in budgets
    )


def check_workload_budgets(renderings: list[render.Rendering], report: Findings) -> None:
    """A Deployment or StatefulSet of two or more replicas has a PodDisruptionBudget over its
    pods in the same rendering (a drain would otherwise evict every replica at once)."""
    for r in renderings:
        budgets = [d for d in r.docs if d.get("kind") == "PodDisruptionBudget"]
        for doc in r.docs:
            if doc.get("kind") not in {"Deployment", "StatefulSet"}:
                continue
            replicas = (doc.get("spec") or {}).get("replicas", 1)
            if replicas >= 2 and not budgeted(_pod_labels(doc), budgets):
                report.fail(
                    "disruption-budget",
                    f"{r.label}: {policy.describe(doc)} runs {replicas} replicas and no "
                    "PodDisruptionBudget selects its pods",
                )


TRACKING_APPLICATION = "argocd-freightml-tracking"


def _args(doc: dict[str, Any]) -> list[str]:
    spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [str(a) for c in spec.get("containers") or [] for a in c.get("args") or []]


def tracking_production_problems(docs: list[dict[str, Any]]) -> list[str]:
    """What the tracking server the Argo CD Application installs lacks for production: two
    or more replicas under a PodDisruptionBudget, an external database (no bundled
    StatefulSet, no PVC), S3 artifacts, MLflow's authentication."""
    servers = [
        d
        for d in docs
        if d.get("kind") == "Deployment"
        and _pod_labels(d).get("app.kubernetes.io/component") == "server"
    ]
    if not servers:
        return ["renders no tracking server Deployment"]
    server = servers[0]
    found = []
    if (server["spec"].get("replicas") or 1) < 2:
        found.append(f"{policy.describe(server)} runs {server['spec'].get('replicas', 1)} replica")
    budgets = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    if not budgeted(_pod_labels(server), budgets):
        found.append("no PodDisruptionBudget over the server pods")
    for kind in ("StatefulSet", "PersistentVolumeClaim"):
        found += [
            f"{policy.describe(d)}: a bundled database or a volume, not an external store"
            for d in docs
            if d.get("kind") == kind
        ]
    args = _args(server)
    if not any(a.startswith("--artifacts-destination=s3://") for a in args):
        found.append("artifacts are not on S3")
    if "--app-name=basic-auth" not in args:
        found.append("MLflow authentication is off: any client in the network may move aliases")
    return found


def check_tracking_production(renderings: list[render.Rendering], report: Findings) -> None:
    rendered = [r for r in renderings if r.variant == TRACKING_APPLICATION]
    if not rendered:
        report.fail("tracking-production", f"no rendering {TRACKING_APPLICATION}")
    for r in rendered:
        for problem in tracking_production_problems(r.docs):
            report.fail("tracking-production", f"{r.label}: {problem}")


MONITORING_APPLICATION = "argocd-freightml-monitoring"


def check_environments(renderings: list[render.Rendering], report: Findings) -> None:
    """Every serving namespace an overlay deploys to is monitored apart: the monitoring
    Application renders a monitor CronJob with ``--environment <namespace>`` for each (one
    collector takes every environment's events; unsplit, their traffic mixes in drift)."""
    served = sorted(
        {
            d["metadata"]["namespace"]
            for r in renderings
            if r.name.startswith("overlay-")
            for d in r.docs
            if d.get("kind") == "InferenceService"
        }
    )
    monitored: set[str] = set()
    for r in renderings:
        if r.variant != MONITORING_APPLICATION:
            continue
        for doc in r.docs:
            if doc.get("kind") != "CronJob":
                continue
            pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            for c in pod.get("containers") or []:
                cmd = [*(c.get("command") or []), *(c.get("args") or [])]
                if "monitor" in cmd and "--environment" in cmd:
                    monitored.add(cmd[cmd.index("--environment") + 1])
    for namespace in served:
        if namespace not in monitored:
            report.fail(
                "environments",
                f"{MONITORING_APPLICATION}: no monitor CronJob runs `freightml monitor run "
                f"--environment {namespace}`: its traffic would mix with the other "
                "environments' in drift and quality",
            )


# -- the Secrets each namespace needs, as docs/cluster.md lists them ------------------------
PIPELINE_NAMESPACE = "kubeflow"  # where KFP runs the tasks (docs/cluster.md's install)


def compiled_pipelines(repo: Path) -> list[dict[str, Any]]:
    """The pipelines' KFP IR (``freightml pipeline compile``, in a separate process: the
    cluster tools sit beneath the pipelines), as parsed YAML documents."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "freightml.cli", "pipeline", "compile", "--out", tmp]
        result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise render.RenderError(
                f"freightml pipeline compile failed: {(result.stderr or result.stdout)[-2000:]}"
            )
        return [
            doc
            for path in sorted(Path(tmp).glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if isinstance(doc, dict)
        ]


def _secret_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"secretKeyRef", "secretRef"} and isinstance(value, dict):
                if isinstance(value.get("name"), str):
                    yield value["name"]
            elif key == "secret" and isinstance(value, dict):
                name = value.get("secretName") or value.get("name")
                if isinstance(name, str):
                    yield name
            elif key == "secretAsEnv" and isinstance(value, list):
                yield from (s["secretName"] for s in value if isinstance(s.get("secretName"), str))
            yield from _secret_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_names(item)


def secrets_read(
    renderings: list[render.Rendering], pipelines: list[dict[str, Any]]
) -> set[tuple[str, str]]:
    """(namespace, Secret) for every Secret the documented install reads: the charts as the
    Argo CD Applications install them, the overlays, and the pipelines' tasks in KFP's
    namespace."""
    found: set[tuple[str, str]] = set()
    for r in renderings:
        if not (r.variant.startswith("argocd-") or r.name.startswith("overlay-")):
            continue
        for doc in r.docs:
            namespace = doc.get("metadata", {}).get("namespace") or render.PLATFORM_NAMESPACE
            found |= {(namespace, name) for name in _secret_names(doc.get("spec"))}
    found |= {(PIPELINE_NAMESPACE, name) for doc in pipelines for name in _secret_names(doc)}
    return found


def documented_secrets(text: str) -> set[tuple[str, str]]:
    """(namespace, Secret) pairs of the table under docs/cluster.md's "### Secrets"."""
    section = text.split("### Secrets", 1)[1].split("\n#", 1)[0]
    pairs = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[1].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[1])
        pairs |= {(ns, name) for ns in re.findall(r"`([^`]+)`", cells[0]) for name in names}
    return pairs


def check_secrets_documented(
    repo: Path,
    renderings: list[render.Rendering],
    pipelines: list[dict[str, Any]],
    report: Findings,
) -> None:
    """docs/cluster.md lists exactly the Secrets the documented install reads, by namespace
    (a missing one is a pod that cannot start, or a task that stops at NotConfiguredInPod)."""
    docs = repo / "docs" / "cluster.md"
    if not docs.is_file() or "### Secrets" not in docs.read_text():
        report.fail("secrets", 'docs/cluster.md has no "### Secrets" table')
        return
    listed = documented_secrets(docs.read_text())
    read = secrets_read(renderings, pipelines)
    for namespace, name in sorted(read - listed):
        report.fail(
            "secrets",
            f"Secret {namespace}/{name} is read by the documented install but not listed in "
            'docs/cluster.md ("Secrets")',
        )
    for namespace, name in sorted(listed - read):
        report.fail(
            "secrets",
            f"docs/cluster.md lists Secret {namespace}/{name}, which nothing in the documented "
            "install reads",
        )
