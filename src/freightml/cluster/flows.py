"""The documented install's network flows, proved from its NetworkPolicies.

The documented install (docs/cluster.md) is what the Argo CD Applications install: the two
charts with their Applications' values in namespace ``freightml`` and the three overlays in
``freightml-{dev,staging,prod}``. Beside those workloads the world holds the pods they talk
to or must not hear from (a KFP task pod and the KFP API server, Prometheus and Grafana,
Knative's activator, kube-dns, a facts loader, a pod of another team). np-guard's Network
Config Analyzer (``tools/nca``, its own lock) computes which connections the rendered
NetworkPolicies allow between them; :func:`problems` names every documented flow that is
blocked and every allowed connection that is not documented.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from freightml.cluster import render

SERVING = ("freightml-dev", "freightml-staging", "freightml-prod")
EXTERNAL = "external"  # any address outside the cluster's pods
ANY = "*"  # any pod or address (the API server's address is the cluster's own)


@dataclass(frozen=True)
class Flow:
    source: str
    target: str
    ports: str  # what docs/cluster.md says, e.g. "TCP 5000"; "" for any port
    why: str


def _pod(
    name: str, namespace: str, labels: dict[str, str], ports: dict[str, int]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "example.invalid/pod:1",
                    "ports": [{"name": n, "containerPort": p} for n, p in ports.items()],
                }
            ]
        },
    }


# the pods of the world that FreightML does not install
ACTORS = [
    _pod("kfp-task", "kubeflow", {"pipelines.kubeflow.org/v2_component": "true"}, {}),
    _pod("kfp-api", "kubeflow", {"app": "ml-pipeline"}, {"http": 8888}),
    _pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, {"web": 9090}),
    _pod("grafana", "monitoring", {"app.kubernetes.io/name": "grafana"}, {"http": 3000}),
    _pod("activator", "knative-serving", {"app": "activator"}, {"http": 8012}),
    _pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": 53}),
    _pod("facts-loader", "freightml", {"freightml.io/collector-client": "true"}, {}),
    _pod("other-team", "default", {"app": "other"}, {"http": 8080}),
]

TRACKING = "freightml/freightml-tracking"
COLLECTOR = "freightml/freightml-monitoring-collector"
MONITORS = [f"freightml/freightml-monitoring-monitor-{ns}" for ns in SERVING]
MIGRATE = "freightml/freightml-tracking-migrate"

DOCUMENTED: list[Flow] = [
    *[
        Flow(
            f"{ns}/freight-volume-predictor",
            TRACKING,
            "TCP 5000",
            "loads the model (registry alias)",
        )
        for ns in SERVING
    ],
    *[
        Flow(
            f"{ns}/freight-volume-predictor",
            COLLECTOR,
            "TCP 8085",
            "KServe's payload logger posts events",
        )
        for ns in SERVING
    ],
    *[
        Flow(
            "knative-serving/activator",
            f"{ns}/freight-volume-predictor",
            "",
            "requests through Knative",
        )
        for ns in SERVING
    ],
    *[
        Flow(
            "monitoring/prometheus",
            f"{ns}/freight-volume-predictor",
            "TCP 8080, 9091",
            "scrapes the model server and queue-proxy",
        )
        for ns in SERVING
    ],
    Flow("kubeflow/kfp-task", TRACKING, "TCP 5000", "pipeline tasks log runs and register models"),
    *[
        Flow(m, TRACKING, "TCP 5000", "each environment's monitor reads the registry")
        for m in MONITORS
    ],
    Flow("freightml/facts-loader", COLLECTOR, "TCP 8085", "facts with a token"),
    Flow("monitoring/prometheus", COLLECTOR, "TCP 8085", "scrapes /metrics"),
    Flow(TRACKING, EXTERNAL, "TCP 5432, 443", "its PostgreSQL and S3 artifacts"),
    Flow(MIGRATE, EXTERNAL, "TCP 5432", "migrates the database"),
    Flow(COLLECTOR, EXTERNAL, "TCP 5432", "the store's PostgreSQL"),
    *[Flow(m, EXTERNAL, "TCP 5432, 443", "the store and model artifacts") for m in MONITORS],
    Flow(
        "freightml-prod/freight-volume-predictor",
        EXTERNAL,
        "TCP 443",
        "reads S3 artifacts directly (prod's object-storage-egress)",
    ),
    *[
        Flow(
            f"{ns}/deployer",
            ANY,
            "TCP 443, 6443",
            "the deploy step calls the API server, whose address is the cluster's",
        )
        for ns in SERVING
    ],
]
DNS = Flow("every FreightML pod", "kube-system/kube-dns", "UDP/TCP 53", "name resolution")


def _predictor_pods(docs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The pods KServe runs for an overlay: the InferenceService's predictor labels plus the
    ones KServe adds; and the deployer a deploy Job would run."""
    pods = []
    for doc in docs:
        if doc.get("kind") != "InferenceService":
            continue
        name = doc["metadata"]["name"]
        labels = dict(doc["spec"]["predictor"].get("labels") or {})
        labels |= {"serving.kserve.io/inferenceservice": name, "component": "predictor"}
        pods.append(
            _pod(f"{name}-predictor", namespace, labels, {"http1": 8080, "queue-metrics": 9091})
        )
    pods.append(_pod("deployer", namespace, {"app.kubernetes.io/component": "deployer"}, {}))
    return pods


def _as_pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One pod per workload (Deployment, StatefulSet, Job, CronJob), named after it."""
    pods = []
    for doc in docs:
        kind = doc.get("kind")
        spec = doc.get("spec") or {}
        if kind == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        elif kind not in {"Deployment", "StatefulSet", "Job"}:
            continue
        template = spec.get("template") or {}
        ports = {
            p["name"]: p["containerPort"]
            for c in (template.get("spec") or {}).get("containers") or []
            for p in c.get("ports") or []
            if "name" in p
        }
        labels = (template.get("metadata") or {}).get("labels") or {}
        pods.append(_pod(doc["metadata"]["name"], doc["metadata"]["namespace"], labels, ports))
    return pods


def world(renderings: list[render.Rendering]) -> list[dict[str, Any]]:
    """Namespaces, pods and NetworkPolicies of the documented install."""
    objects: list[dict[str, Any]] = []
    for r in renderings:
        if r.variant.startswith("argocd-"):
            objects += _as_pods(r.docs)
        elif r.name.startswith("overlay-"):
            namespace = next(
                d["metadata"]["namespace"] for d in r.docs if d.get("kind") == "InferenceService"
            )
            objects += _predictor_pods(r.docs, namespace)
        else:
            continue
        objects += [d for d in r.docs if d.get("kind") == "NetworkPolicy"]
    objects += ACTORS
    names = sorted({o["metadata"]["namespace"] for o in objects})
    namespaces = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
        }
        for n in names
    ]
    return namespaces + objects


_LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conns>.+)$")


def connectivity(repo: Path, objects: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(source, target) -> the connections NCA finds allowed (IP ranges become EXTERNAL)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "world.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        cmd = render.tool_command(repo, "tools/nca", "nca", "--connectivity", str(path))
        cmd += ["--resource_list", str(path)]
        cmd += ["--output_format", "txt_no_fw_rules", "--output_endpoints", "pods"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=repo)
    pairs: dict[tuple[str, str], list[str]] = {}
    for line in result.stdout.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        src, dst = (EXTERNAL if s[0].isdigit() else s for s in (match["src"], match["dst"]))
        pairs.setdefault((src, dst), []).append(match["conns"])
    if not pairs:
        raise render.RenderError(
            f"nca found no connection (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return pairs


def _port_set(conns: list[str]) -> set[int] | None:
    """The TCP/UDP destination ports of NCA's connection strings; None for any port."""
    ports: set[int] = set()
    for conn in conns:
        if conn == "All connections":
            return None
        for part in re.findall(r"dst_ports:([0-9,\-]+)", conn):
            for item in part.split(","):
                if "-" in item:
                    lo, hi = item.split("-")
                    ports |= set(range(int(lo), int(hi) + 1))
                elif item:
                    ports.add(int(item))
    return ports


def _documented_ports(flow: Flow) -> set[int] | None:
    return {int(p) for p in re.findall(r"\d+", flow.ports)} if flow.ports else None


def problems(repo: Path, renderings: list[render.Rendering]) -> list[str]:
    """Documented flows the policies block, and allowed connections nobody documented
    (or wider than documented)."""
    objects = world(renderings)
    ours = {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in objects
        if o["kind"] == "Pod" and o not in ACTORS
    }
    allowed = connectivity(repo, objects)
    found = []
    flows = [*DOCUMENTED, *(Flow(p, "kube-system/kube-dns", "53", DNS.why) for p in sorted(ours))]
    for flow in flows:
        if flow.target == ANY:
            continue
        conns = allowed.get((flow.source, flow.target))
        got = _port_set(conns or [])
        wanted = _documented_ports(flow)
        if not conns or (got is not None and (wanted is None or not wanted <= got)):
            found.append(
                f"documented flow blocked: {flow.source} -> {flow.target} "
                f"{flow.ports or 'any port'} ({flow.why}); allowed: {conns or 'nothing'}"
            )
    for (src, dst), conns in sorted(allowed.items()):
        if src not in ours and dst not in ours:
            continue  # between pods FreightML does not install
        matching = [f for f in flows if f.source == src and f.target in {dst, ANY}]
        if not matching:
            found.append(f"undocumented flow allowed: {src} -> {dst} ({'; '.join(conns)})")
            continue
        got = _port_set(conns)
        spans = [_documented_ports(f) for f in matching]
        if None in spans:
            continue
        documented_ports = set().union(*[s for s in spans if s is not None])
        if got is None or not got <= documented_ports:
            found.append(
                f"flow wider than documented: {src} -> {dst} allows {'; '.join(conns)}, "
                f"documented {', '.join(str(p) for p in sorted(documented_ports))}"
            )
    return found


def table() -> str:
    """The documented flows as the Markdown table docs/cluster.md carries (a flow present
    for every serving environment is one row with ``<env>``)."""
    rows = ["| from | to | ports | why |", "|---|---|---|---|"]
    env = re.compile(r"freightml-(dev|staging|prod)\b")
    flows = [*DOCUMENTED, DNS]
    counts: dict[tuple[str, str], int] = {}
    for f in flows:
        key = (env.sub("freightml-<env>", f.source), env.sub("freightml-<env>", f.target))
        counts[key] = counts.get(key, 0) + 1
    seen = set()
    for f in flows:
        key = (env.sub("freightml-<env>", f.source), env.sub("freightml-<env>", f.target))
        source, target = key if counts[key] == len(SERVING) else (f.source, f.target)
        if (source, target) in seen:
            continue
        seen.add((source, target))
        rows.append(f"| `{source}` | `{target}` | {f.ports or 'any'} | {f.why} |")
    return "\n".join(rows)
