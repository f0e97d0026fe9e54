"""``make lint-k8s``: every check over the charts, the overlays and their rendered objects.

1. the generated part of manifests/base equals what the code generates;
2. ``helm lint --strict`` on every chart and values file (nothing at warning or above), a
   strict ``values.schema.json`` that rejects unknown keys and wrong types;
3. every rendered object valid against its schema (Kubernetes 1.31 strict, or the
   vendored CRDs; a kind with neither fails);
4. FreightML's policy (:mod:`freightml.cluster.policy`) on every rendering and on the
   InferenceService ``freightml deploy`` builds;
5. every kind the charts and overlays render is whitelisted in the Argo CD project;
6. checkov over build/manifests with zero failed checks (skips justified in .checkov.yaml);
7. what a real cluster would refuse or get wrong although every object is valid: Knative's
   field masks, components undone by a patch, disruption budgets, dead ConfigMaps, wide
   egress, production tracking, one monitor per environment, the Secrets the docs list, the
   Argo CD Application health the sync waves need, the release pinning every image
   reference by digest, the hosted-CI workflow, the documented install's network flows
   (:mod:`freightml.cluster.acceptance`, :mod:`freightml.cluster.argocd`,
   :mod:`freightml.cluster.release`, :mod:`freightml.cluster.flows`).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from freightml.cluster import (
    acceptance,
    argocd,
    flows,
    knative,
    policy,
    release,
    render,
    schemas,
)
from freightml.cluster.base import stale_files
from freightml.deploy.gitops import base_settings

HELM_ERROR_SEVERITY = 2  # helm lint: 1 info, 2 warning, 3 error
PROJECT = "freightml"


@dataclass
class Report:
    """What ``check`` found, by check; empty lists everywhere means it passed."""

    failures: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def fail(self, check: str, message: str) -> None:
        self.failures.setdefault(check, []).append(message)

    @property
    def ok(self) -> bool:
        return not any(self.failures.values())

    def summary(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.counts.items()]
        for check, messages in self.failures.items():
            lines.append(f"FAILED {check} ({len(messages)}):")
            lines += [f"  {m}" for m in messages]
        lines.append("lint-k8s: OK" if self.ok else "lint-k8s: FAILED")
        return "\n".join(lines)


def check_base(repo: Path, report: Report) -> None:
    for rel in stale_files(repo):
        report.fail("base", f"{rel} differs from what the code generates: run `make manifests`")


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "not-a-boolean"
    if isinstance(value, int | float):
        return "not-a-number"
    if isinstance(value, str):
        return ["not", "a", "string"]
    if isinstance(value, dict):
        return "not-an-object"
    return "not-a-list"


def check_chart(chart: Path, report: Report) -> None:
    """helm lint (strict) per values file; the schema rejects bad values."""
    helm = render._helm()
    if not (chart / "values.schema.json").is_file():
        report.fail("helm-schema", f"{chart.name}: no values.schema.json")
        return
    for values_file in render.chart_variants(chart):
        values = None if values_file is None else render.load_values(values_file)
        label = (
            f"{chart.name}/{render.DEFAULT_VARIANT if values_file is None else values_file.name}"
        )
        result = helm.lint(str(chart), values, strict=True, kube_version="v1.31.0")
        problems = [
            f"{label}: {msg.get('path')}: {msg.get('error')}"
            for msg in result.get("messages") or []
            if int(msg.get("severity", 0)) >= HELM_ERROR_SEVERITY
        ]
        # `errors` repeats those messages; alone it still fails the chart
        problems = problems or [f"{label}: {err}" for err in result.get("errors") or []]
        for problem in problems:
            report.fail("helm-lint", problem)
        report.counts["helm lint runs"] = report.counts.get("helm lint runs", 0) + 1
    defaults = (
        render.load_values(chart / "values.yaml") if (chart / "values.yaml").is_file() else {}
    )
    bad: list[tuple[str, dict[str, Any]]] = [("an unknown key", {"freightmlNoSuchValue": 1})]
    bad += [
        (f"{key} of the wrong type", {key: _wrong_type(value)})
        for key, value in defaults.items()
        if value is not None
    ]
    with helm.Chart.load(str(chart)) as loaded:
        for what, values in bad:
            try:
                loaded.validate_schema(values)
            except helm.HelmValuesError:
                continue
            report.fail("helm-schema", f"{chart.name}: values.schema.json accepts {what}: {values}")


def check_schemas(renderings: list[render.Rendering], repo: Path, report: Report) -> None:
    crds = schemas.require_crds(repo / "crds")
    n = 0
    for r in renderings:
        for doc in r.docs:
            try:
                schemas.validate_object(doc, strict=True, crds=crds)
            except schemas.ManifestError as exc:
                report.fail("schema", f"{r.label}: {exc}")
            n += 1
    report.counts["objects validated"] = n


def _deployed_inference_service() -> dict[str, Any]:
    """The InferenceService `freightml deploy` applies (with a canary share)."""
    from freightml.deploy.inference_service import build_inference_service, to_manifest  # noqa: PLC0415

    return to_manifest(build_inference_service(base_settings(), "1", canary_percent=10))


def check_policy(renderings: list[render.Rendering], report: Report) -> None:
    for r in renderings:
        for finding in policy.check_objects(r.docs):
            report.fail("policy", f"{r.label}: {finding}")
    deployed = _deployed_inference_service()
    # `freightml deploy` applies the InferenceService alone; its namespace's policies
    # come from the overlay, so only the pod-level rules apply here.
    for finding in policy.check_objects([deployed]):
        if finding.rule != "network-policy":
            report.fail("policy", f"freightml deploy: {finding}")


def check_knative(renderings: list[render.Rendering], report: Report) -> None:
    """Every InferenceService (rendered, and as `freightml deploy` builds it) sets only pod
    fields Knative's webhook takes with its default feature flags (cluster/knative.py)."""
    deployed = _deployed_inference_service()
    labelled = [(r.label, d) for r in renderings for d in r.docs]
    n = 0
    for label, doc in [*labelled, ("freightml deploy", deployed)]:
        if doc.get("kind") == "InferenceService":
            n += 1
            for problem in knative.refusals(doc):
                report.fail("knative", f"{label}: {policy.describe(doc)}: {problem}")
    report.counts["InferenceServices against Knative's masks"] = n


def check_components(repo: Path, renderings: list[render.Rendering], report: Report) -> None:
    """An overlay that lists the scale-to-zero component renders its InferenceService with
    ``minReplicas: 0`` (an overlay patch applied after the components can undo it)."""
    for kustomization in sorted((repo / "manifests" / "overlays").glob("*/kustomization.yaml")):
        components = yaml.safe_load(kustomization.read_text()).get("components") or []
        if not any(c.rstrip("/").endswith("scale-to-zero") for c in components):
            continue
        name = f"overlay-{kustomization.parent.name}"
        docs = [d for r in renderings if r.name == name for d in r.docs]
        for doc in docs:
            if doc.get("kind") != "InferenceService":
                continue
            replicas = doc["spec"]["predictor"].get("minReplicas")
            if replicas != 0:
                report.fail(
                    "components",
                    f"{name}: {policy.describe(doc)}: minReplicas is {replicas} though the "
                    "overlay lists the scale-to-zero component (a patch undoes it)",
                )


def check_disruption_budgets(renderings: list[render.Rendering], report: Report) -> None:
    """An overlay that runs its predictor on two or more pods has a PodDisruptionBudget
    selecting them (else a node drain may evict every replica at once)."""
    for r in renderings:
        if not r.name.startswith("overlay-"):
            continue
        budgets = [d for d in r.docs if d.get("kind") == "PodDisruptionBudget"]
        for doc in r.docs:
            if doc.get("kind") != "InferenceService":
                continue
            predictor = doc["spec"]["predictor"]
            if (predictor.get("minReplicas") or 0) < 2:
                continue
            if not acceptance.budgeted(predictor.get("labels") or {}, budgets):
                report.fail(
                    "disruption-budget",
                    f"{r.label}: {policy.describe(doc)} runs {predictor['minReplicas']}+ pods "
                    "and no PodDisruptionBudget selects them",
                )


def check_argocd_health(renderings: list[render.Rendering], report: Report) -> None:
    by_name = {r.name: r.docs for r in renderings if r.variant == "kustomize"}
    for problem in argocd.problems(by_name.get("argocd-apps", []), by_name.get("argocd", [])):
        report.fail("argocd-health", problem)


def check_release(repo: Path, renderings: list[render.Rendering], report: Report) -> None:
    """A release would pin every FreightML image reference by digest; today's references all
    name the image freightml.image.IMAGE names; the hosted-CI workflow passes its linters."""
    from freightml.image import IMAGE  # noqa: PLC0415

    for problem in release.unpinned_after_release(repo):
        report.fail("release", problem)

    def release_of(ref: str) -> str:  # the digest, else the tag
        return ref.split("@", 1)[1] if "@" in ref else ref.rsplit(":", 1)[1]

    for r in renderings:
        for doc in r.docs:
            for ref in release.image_references(doc):
                if release_of(ref) != release_of(IMAGE):
                    report.fail(
                        "release",
                        f"{r.label}: {policy.describe(doc)} runs {ref}, but freightml.image "
                        f"(pipelines, freightml deploy) names {IMAGE}",
                    )
    for problem in release.workflow_problems(repo):
        report.fail("workflow", problem)


def _api_group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def check_project(renderings: list[render.Rendering], report: Report) -> None:
    """Every kind FreightML's Applications sync is whitelisted in the AppProject."""
    project = next(
        (
            d
            for r in renderings
            for d in r.docs
            if d.get("kind") == "AppProject" and d["metadata"]["name"] == PROJECT
        ),
        None,
    )
    if project is None:
        report.fail("argocd-project", f"no AppProject {PROJECT} rendered from manifests/argocd")
        return
    spec = project.get("spec") or {}
    allowed = {
        (e.get("group", ""), e.get("kind"))
        for f in ("clusterResourceWhitelist", "namespaceResourceWhitelist")
        for e in spec.get(f) or []
    }
    synced = [r for r in renderings if not r.name.startswith("argocd")]
    synced += [r for r in renderings if r.name == "argocd-apps"]
    for r in synced:
        for d in r.docs:
            key = (_api_group(d.get("apiVersion", "")), d.get("kind"))
            if key not in allowed:
                report.fail(
                    "argocd-project",
                    f"{r.label}: {policy.describe(d)} ({key[0] or 'core'}/{key[1]}) is not in "
                    f"AppProject {PROJECT}'s resource whitelists",
                )


def run_checkov(repo: Path, out_dir: Path, report: Report) -> None:
    """checkov over the rendered YAML; every failed check is a failure."""
    config = repo / ".checkov.yaml"
    cmd = render.tool_command(repo, "tools/checkov", "checkov", "-d", str(out_dir))
    cmd += ["--framework", "kubernetes", "--output", "json", "--compact"]
    if config.is_file():
        cmd += ["--config-file", str(config)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, check=False)
    try:
        parsed = json.loads(result.stdout)
    except json.JSONDecodeError:
        report.fail(
            "checkov",
            f"checkov did not run (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}",
        )
        return
    runs = parsed if isinstance(parsed, list) else [parsed]
    passed = failed_n = 0
    for run in runs:
        results = run.get("results") or {}
        passed += len(results.get("passed_checks") or [])
        failed_n += len(results.get("failed_checks") or [])
        for failed in results.get("failed_checks") or []:
            path = str(failed.get("file_path", "")).lstrip("/")
            report.fail(
                "checkov",
                f"{path}: {failed.get('resource')}: {failed.get('check_id')} "
                f"{failed.get('check_name')}",
            )
    report.counts["checkov checks passed"] = passed
    if passed + failed_n == 0:
        report.fail("checkov", f"checkov checked nothing in {out_dir}: is the output empty?")


def check(repo: Path, out_dir: Path, *, checkov: bool = True) -> Report:
    """Render everything into ``out_dir`` and run every check; return the report."""
    report = Report()
    check_base(repo, report)
    for chart in render.charts(repo):
        check_chart(chart, report)
    renderings = render.render_all(repo)
    render.write(renderings, out_dir)
    report.counts["renderings"] = len(renderings)
    check_schemas(renderings, repo, report)
    check_policy(renderings, report)
    check_knative(renderings, report)
    check_components(repo, renderings, report)
    check_disruption_budgets(renderings, report)
    acceptance.check_config_maps(renderings, report)
    acceptance.check_egress(renderings, report)
    acceptance.check_workload_budgets(renderings, report)
    check_argocd_health(renderings, report)
    if (repo / "manifests" / "argocd" / "apps").is_dir():
        # the platform's own install (a checkout without it, e.g. a chart's test fixture,
        # has no release, no documented install and no tracking Application to prove)
        acceptance.check_tracking_production(renderings, report)
        acceptance.check_environments(renderings, report)
        pipelines = acceptance.compiled_pipelines(repo)
        acceptance.check_secrets_documented(repo, renderings, pipelines, report)
        compiled = render.Rendering("pipelines", "kfp-ir", "pipelines/", pipelines)
        check_release(repo, [*renderings, compiled], report)
        for problem in flows.problems(repo, renderings):
            report.fail("network-flows", problem)
    check_project(renderings, report)
    if checkov:
        run_checkov(repo, out_dir, report)
    return report
