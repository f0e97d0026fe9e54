"""What a real cluster would refuse or get wrong although every object is valid: each
`make lint-k8s` check of issue "a cluster that accepts it" passes on the repository and
catches a planted case of what the manifests did before."""

from __future__ import annotations

import copy
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from freightml.cluster import acceptance, argocd, check, flows, release, render

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32


def _rendering(name: str, docs: list[dict[str, Any]], variant: str = "kustomize") -> Any:
    return render.Rendering(name, variant, name, docs)


# -- release: one immutable image, pinned by digest ------------------------------------------
def _release_copy(tmp_path: Path) -> Path:
    copy_ = tmp_path / "repo"
    for part in ("manifests", "helm/freightml-monitoring"):
        shutil.copytree(REPO / part, copy_ / part)
    (copy_ / release.IMAGE_MODULE).parent.mkdir(parents=True)
    shutil.copy(REPO / release.IMAGE_MODULE, copy_ / release.IMAGE_MODULE)
    return copy_


def test_a_release_pins_the_digest_in_every_place_the_image_is_named(tmp_path: Path) -> None:
    repo = _release_copy(tmp_path)
    made = release.Release(release.REPOSITORY, "0.1.0-0123456789ab", DIGEST)
    changed = release.pin(repo, made)
    assert {p.relative_to(repo).as_posix() for p in changed} == {
        "manifests/overlays/dev/kustomization.yaml",
        "manifests/overlays/staging/kustomization.yaml",
        "manifests/overlays/prod/kustomization.yaml",
        release.CHART_VALUES,
        release.IMAGE_MODULE,
    }
    assert release.pin(repo, made) == []  # the same release again changes nothing
    for env in ("dev", "staging", "prod"):
        docs = render.render_kustomize(repo / "manifests" / "overlays" / env)
        refs = [r for d in docs for r in release.image_references(d)]
        assert refs and all(r.endswith("@" + DIGEST) for r in refs), refs
    docs = render.render_chart(repo / "helm" / "freightml-monitoring")
    refs = {r for d in docs for r in release.image_references(d)}
    assert refs == {made.reference}
    assert f'IMAGE = "{made.reference}"' in (repo / release.IMAGE_MODULE).read_text()
    with pytest.raises(release.ReleaseError, match="not an image digest"):
        release.pin(repo, release.Release(release.REPOSITORY, "x", "sha256:short"))


def test_the_repository_pins_everything_a_release_would() -> None:
    assert release.unpinned_after_release(REPO) == []


def test_an_image_the_release_cannot_reach_is_named(tmp_path: Path) -> None:
    """Before: the chart had no digest value and pipelines named the image in config.py."""
    repo = _release_copy(tmp_path)
    values = repo / release.CHART_VALUES
    values.write_text(values.read_text().replace('  digest: ""\n', ""))
    problems = release.unpinned_after_release(repo)
    assert any("cannot pin" in p and "digest" in p for p in problems), problems


def _git_repo(tmp_path: Path) -> Path:
    repo = _release_copy(tmp_path)
    (repo / "components").mkdir()
    (repo / "components" / "Dockerfile").write_text("FROM scratch\n")
    for cmd in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    return repo


def test_the_release_tags_by_commit_builds_pushes_and_pins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stand-in for podman (this machine has no container engine): the tag names
    the commit, the pushed digest is read from --digestfile and pinned."""
    repo = _git_repo(tmp_path)
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "podman"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'if [ "$1" = push ]; then printf %s ' + DIGEST + ' > "$3"; fi\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    made, changed = release.release(repo)
    assert made.tag == f"0.1.0-{sha}" and made.digest == DIGEST
    calls = log.read_text().splitlines()
    assert calls[0].startswith(f"build -f components/Dockerfile -t {release.REPOSITORY}:{made.tag}")
    assert calls[1].startswith("push --digestfile")
    assert changed  # pinned
    # a dirty tree has no immutable tag
    with pytest.raises(release.ReleaseError, match="uncommitted changes"):
        release.immutable_tag(repo)


def test_no_container_engine_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(release.ReleaseError, match="no container build tool"):
        release.find_engine()


def test_the_release_workflow_passes_the_schema_and_zizmor() -> None:
    assert release.workflow_problems(REPO) == []


def test_a_workflow_with_an_unpinned_action_or_injection_fails(tmp_path: Path) -> None:
    wf = tmp_path / ".github" / "workflows"
    wf.mkdir(parents=True)
    text = (REPO / ".github" / "workflows" / "release.yml").read_text()
    unpinned = text.replace(
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2",
        "actions/checkout@v4",
    )
    assert unpinned != text
    (wf / "release.yml").write_text(unpinned)
    problems = release.workflow_problems(tmp_path)
    assert any("unpinned-uses" in p for p in problems), problems
    (wf / "release.yml").write_text("name: x\non: push\njobs:\n  a:\n    steps: []\n")
    problems = release.workflow_problems(tmp_path)
    assert any("not a valid GitHub workflow" in p for p in problems), problems


# -- Argo CD: Application health for the sync waves ------------------------------------------
def _argocd() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return (
        render.render_kustomize(REPO / "manifests" / "argocd" / "apps"),
        render.render_kustomize(REPO / "manifests" / "argocd"),
    )


def test_the_waves_wait_for_healthy_applications() -> None:
    apps, bootstrap = _argocd()
    assert argocd.problems(apps, bootstrap) == []
    script = (REPO / "manifests" / "argocd" / "application-health.lua").read_text()
    assert argocd.evaluate(script, {})[0] == "Progressing"


def test_waves_without_the_health_check_or_with_a_wrong_one_fail() -> None:
    apps, bootstrap = _argocd()
    without = [d for d in bootstrap if d["kind"] != "ConfigMap"]
    assert "would sync every wave at once" in argocd.problems(apps, without)[0]
    wrong = copy.deepcopy(bootstrap)
    cm = next(d for d in wrong if d["kind"] == "ConfigMap")
    cm["data"][argocd.HEALTH_KEY] = 'return {status = "Healthy", message = ""}'
    problems = argocd.problems(apps, wrong)
    assert any("just created" in p and "expected Progressing" in p for p in problems), problems


# -- dead objects, wide egress, budgets, production tracking ----------------------------------
def test_a_config_map_nothing_reads_is_dead() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings-x", "namespace": "n"},
    }
    report = check.Report()
    acceptance.check_config_maps([_rendering("overlay-dev", [cm])], report)
    assert "referenced by no object" in report.summary()
    pod = {
        "kind": "Deployment",
        "spec": {
            "template": {"spec": {"volumes": [{"name": "s", "configMap": {"name": "settings-x"}}]}}
        },
    }
    report = check.Report()
    acceptance.check_config_maps([_rendering("overlay-dev", [cm, pod])], report)
    assert report.ok


def _egress_policy(ports: list[int]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {
            "podSelector": {},
            "egress": [
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": p} for p in ports]}
            ],
        },
    }


def test_egress_to_every_address_is_https_only() -> None:
    report = check.Report()
    acceptance.check_egress([_rendering("c", [_egress_policy([443, 5432, 9000])])], report)
    assert "opens egress to every address on 443, 5432, 9000" in report.summary()
    report = check.Report()
    acceptance.check_egress([_rendering("c", [_egress_policy([443])])], report)
    assert report.ok


def test_production_tracking_is_checked_on_what_argo_cd_installs() -> None:
    defaults = render.render_chart(REPO / "helm" / "freightml-tracking")
    problems = acceptance.tracking_production_problems(defaults)
    for words in (
        "1 replica",
        "no PodDisruptionBudget",
        "StatefulSet",
        "not on S3",
        "authentication is off",
    ):
        assert any(words in p for p in problems), (words, problems)
    report = check.Report()
    acceptance.check_workload_budgets(
        [
            _rendering(
                "t",
                render.render_chart(
                    REPO / "helm" / "freightml-tracking",
                    {
                        "replicaCount": 2,
                        "backendStore": {"type": "external", "external": {"existingSecret": "s"}},
                        "artifacts": {
                            "type": "s3",
                            "s3": {"bucket": "freightml-b", "existingSecret": "s"},
                        },
                    },
                ),
                "x",
            )
        ],
        report,
    )
    assert "runs 2 replicas and no PodDisruptionBudget" in report.summary()


# -- the documented install's network flows ---------------------------------------------------
@pytest.fixture(scope="module")
def renderings() -> list[render.Rendering]:
    return render.render_all(REPO)


def test_the_documented_install_allows_the_documented_flows_and_nothing_else(
    renderings: list[render.Rendering],
) -> None:
    assert flows.problems(REPO, renderings) == []


def test_a_namespace_wide_client_or_a_missing_one_is_caught(
    renderings: list[render.Rendering],
) -> None:
    """Before: MLflow admitted whole namespaces (any KFP or monitoring pod)."""
    planted = copy.deepcopy(renderings)
    tracking = next(r for r in planted if r.variant == "argocd-freightml-tracking")
    server = next(
        d
        for d in tracking.docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-server")
    )
    server["spec"]["ingress"][0]["from"].append(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}
    )
    problems = flows.problems(REPO, planted)
    assert (
        "undocumented flow allowed: kubeflow/kfp-api -> freightml/freightml-tracking"
        in " ".join(problems)
    )
    server["spec"]["ingress"][0]["from"] = [
        p
        for p in server["spec"]["ingress"][0]["from"]
        if "kfp" not in str(p) and "kubeflow" not in str(p)
    ]
    problems = flows.problems(REPO, planted)
    assert any(p.startswith("documented flow blocked: kubeflow/kfp-task") for p in problems), (
        problems
    )


def test_the_docs_carry_the_flows_table() -> None:
    assert flows.table() in (REPO / "docs" / "cluster.md").read_text()


def test_the_checks_name_their_rows_in_the_docs() -> None:
    text = (REPO / "docs" / "cluster.md").read_text()
    for name in (
        "config-maps",
        "egress",
        "argocd-health",
        "release",
        "workflow",
        "network-flows",
        "tracking-production",
    ):
        assert f"| {name} |" in text, name


def test_every_serving_environment_is_monitored_apart(
    renderings: list[render.Rendering],
) -> None:
    """Before: one monitor CronJob judged dev's, staging's and prod's traffic together."""
    report = check.Report()
    acceptance.check_environments(renderings, report)
    assert report.ok, report.summary()
    planted = copy.deepcopy(renderings)
    monitoring = next(r for r in planted if r.variant == acceptance.MONITORING_APPLICATION)
    monitoring.docs = [
        d
        for d in monitoring.docs
        if not (d["kind"] == "CronJob" and d["metadata"]["name"].endswith("freightml-prod"))
    ]
    report = check.Report()
    acceptance.check_environments(planted, report)
    assert "--environment freightml-prod" in report.summary()


# -- the Secrets each namespace needs ---------------------------------------------------------
@pytest.fixture(scope="module")
def pipelines() -> list[dict[str, Any]]:
    return acceptance.compiled_pipelines(REPO)


def test_the_docs_list_exactly_the_secrets_the_install_reads(
    renderings: list[render.Rendering], pipelines: list[dict[str, Any]]
) -> None:
    read = acceptance.secrets_read(renderings, pipelines)
    assert ("kubeflow", "collector-store") in read and (
        "freightml-prod",
        "mlflow-credentials",
    ) in read
    report = check.Report()
    acceptance.check_secrets_documented(REPO, renderings, pipelines, report)
    assert report.ok, report.summary()


def test_a_secret_missing_from_the_docs_or_listed_for_nothing_fails(
    tmp_path: Path, renderings: list[render.Rendering], pipelines: list[dict[str, Any]]
) -> None:
    """Before: the KFP namespace's collector-store Secret was not in the docs."""
    text = (REPO / "docs" / "cluster.md").read_text()
    lines = text.splitlines(keepends=True)
    without = "".join(x for x in lines if not x.startswith("| `kubeflow` | `collector-store`"))
    assert without != text
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "cluster.md").write_text(without)
    report = check.Report()
    acceptance.check_secrets_documented(tmp_path, renderings, pipelines, report)
    assert "Secret kubeflow/collector-store is read by the documented install" in report.summary()
    extra = text.replace(
        "| `kubeflow` | `collector-store`",
        "| `kubeflow` | `forgotten` | x | y |\n| `kubeflow` | `collector-store`",
    )
    (tmp_path / "docs" / "cluster.md").write_text(extra)
    report = check.Report()
    acceptance.check_secrets_documented(tmp_path, renderings, pipelines, report)
    assert "lists Secret kubeflow/forgotten, which nothing" in report.summary()


def test_the_compiled_pipelines_run_the_one_image(pipelines: list[dict[str, Any]]) -> None:
    """The pipelines' base_image is part of what a release pins: a task on another image fails."""
    from freightml.image import IMAGE

    refs = {r for doc in pipelines for r in release.image_references(doc)}
    assert refs == {IMAGE}
    planted = copy.deepcopy(pipelines)
    executors = next(d for d in planted if "deploymentSpec" in d)["deploymentSpec"]["executors"]
    next(iter(executors.values()))["container"]["image"] = release.REPOSITORY + ":0.0.9"
    report = check.Report()
    check.check_release(REPO, [_rendering("pipelines", planted, "kfp-ir")], report)
    assert "runs ghcr.io/freightml/freightml:0.0.9" in report.summary()
