"""Checks of what a real cluster would refuse or get wrong although every object is valid.

Each function adds failures to a :class:`freightml.cluster.check.Report`-like object
(anything with ``fail(check, message)`` and ``counts``); :func:`freightml.cluster.check.check`
runs them all. docs/cluster.md's check table describes each one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any, Protocol

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
            if key in {"configMap", "configMapRef", "configMapKeyRef"} and isinstance(value, dict):
                if isinstance(value.get("name"), str):
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
    return bool(block) and ipaddress.ip_network(block["cidr"], strict=False) in WIDE_OPEN


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
