"""`freightml deploy` through the real parser, --config included (issue 6 item 4)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from freightml.cli import app
from helpers import words

pytestmark = [pytest.mark.unit]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "freightml.yaml"
    path.write_text(
        "deploy:\n  name: rail-forecast\n  namespace: rail-prod\n"
        "tracking:\n  registered_model: wagons\n"
    )
    return path


def test_deploy_dry_run_with_config_parses_and_prints_the_manifest(config: Path) -> None:
    result = CliRunner().invoke(
        app, ["deploy", "--version", "3", "--dry-run", "--canary", "25", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    isvc = yaml.safe_load(result.stdout)
    assert isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["name"] == "rail-forecast"
    assert isvc["metadata"]["namespace"] == "rail-prod"
    assert isvc["metadata"]["annotations"]["freightml.io/model-uri"] == "models:/wagons/3"
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert isvc["metadata"]["labels"]["freightml.io/model-version"] == "3"


def test_deploy_names_a_bad_version_and_a_bad_canary(config: Path) -> None:
    bad = CliRunner().invoke(app, ["deploy", "--version", "v 1", "--dry-run", "-c", str(config)])
    assert bad.exit_code == 1
    assert "model version 'v 1'" in bad.output
    bad = CliRunner().invoke(app, ["deploy", "--version", "1", "--canary", "150", "--dry-run"])
    assert bad.exit_code == 1
    assert "between 0 and 100, got 150" in bad.output


def test_deploy_without_cluster_config_fails_clearly(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(app, ["deploy", "--version", "1", "--config", str(config)])
    assert result.exit_code == 1
    assert "no Kubernetes configuration" in result.output


@pytest.mark.slow
def test_deploy_with_config_in_a_fresh_process_is_not_taken_by_kserves_parser() -> None:
    """The regression: kserve parses sys.argv when first imported and read --config as its
    --configure_logging. Run in a fresh interpreter whose sys.argv is the user's command
    line and where kserve is not yet imported, through Typer's runner and the console script."""
    argv = [
        "freightml",
        "deploy",
        "--version",
        "1",
        "--dry-run",
        "--config",
        str(REPO / "configs" / "freightml.yaml"),
    ]
    script = textwrap.dedent(f"""
        import sys
        sys.argv = {argv!r}
        from typer.testing import CliRunner
        from freightml.cli import app
        assert "kserve" not in sys.modules, "importing the CLI must not import kserve"
        result = CliRunner().invoke(app, sys.argv[1:])
        sys.stdout.write(result.output)
        sys.exit(result.exit_code)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "configure_logging" not in proc.stdout + proc.stderr
    assert yaml.safe_load(proc.stdout)["metadata"]["name"] == "freight-volume"

    proc = subprocess.run(
        [sys.executable, "-m", "freightml.cli", *argv[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert yaml.safe_load(proc.stdout)["spec"]["predictor"]["containers"][0]["args"][:2] == [
        "--model-uri",
        "models:/freight-volume/1",
    ]


# -- promotion through Git: deploy --gitops ---------------------------------------------
def _copy_manifests(tmp_path: Path) -> Path:
    """A copy of manifests/ (base, components, overlays) to edit; kustomize paths stay valid."""
    import shutil

    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path / "manifests" / "overlays" / "prod"


def _rendered_isvc(overlay: Path) -> dict[str, object]:
    from freightml.cluster.render import render_kustomize

    [isvc] = [d for d in render_kustomize(overlay) if d["kind"] == "InferenceService"]
    return isvc


def test_gitops_writes_the_version_kustomize_renders_what_deploy_would_apply(
    tmp_path: Path,
) -> None:
    import jsonpatch

    from freightml.config import DeploySettings
    from freightml.deploy.inference_service import build_inference_service, to_manifest

    overlay = _copy_manifests(tmp_path)
    result = CliRunner().invoke(
        app, ["deploy", "--version", "9", "--canary", "15", "--gitops", str(overlay)]
    )
    assert result.exit_code == 0, result.output
    assert f"git add {overlay / 'model-version.yaml'}" in result.stdout
    assert 'git commit -m "Serve freight-volume v9 (15% canary) in prod"' in result.stdout

    # What `freightml deploy --version 9 --canary 15` builds for the prod namespace (the
    # collector stays in the platform namespace), with the overlay's own size patch on
    # top, is exactly what kustomize renders.
    prod = DeploySettings(
        namespace="freightml-prod",
        collector_url="http://freightml-collector.freightml.svc.cluster.local/events",
    )
    expected = to_manifest(build_inference_service(prod, "9", canary_percent=15))
    size = yaml.safe_load((overlay / "predictor.yaml").read_text())
    expected = jsonpatch.apply_patch(expected, size)
    assert _rendered_isvc(overlay) == expected


def test_gitops_is_idempotent_and_keeps_other_operations(tmp_path: Path) -> None:
    overlay = _copy_manifests(tmp_path)
    patch = overlay / "model-version.yaml"
    extra = {
        "op": "add",
        "path": "/metadata/annotations/example.com~1owner",
        "value": "forecasting-team",
    }
    patch.write_text(patch.read_text() + yaml.safe_dump([extra], sort_keys=False))

    first = CliRunner().invoke(
        app, ["deploy", "--version", "4", "--canary", "20", "--gitops", str(overlay)]
    )
    assert first.exit_code == 0, first.output
    ops = yaml.safe_load(patch.read_text())
    assert ops[-1] == extra  # kept, after the operations deploy owns
    assert {"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": 20} in ops
    before = patch.read_text()

    again = CliRunner().invoke(
        app, ["deploy", "--version", "4", "--canary", "20", "--gitops", str(overlay)]
    )
    assert again.exit_code == 0, again.output
    assert "already up to date" in again.output
    assert "git commit" not in again.output
    assert patch.read_text() == before

    # promoting the canary to all traffic drops its share and keeps the version
    full = CliRunner().invoke(app, ["deploy", "--version", "4", "--gitops", str(overlay)])
    assert full.exit_code == 0, full.output
    isvc = _rendered_isvc(overlay)
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]  # type: ignore[index]
    assert isvc["metadata"]["labels"]["freightml.io/model-version"] == "4"  # type: ignore[index]
    assert isvc["metadata"]["annotations"]["example.com/owner"] == "forecasting-team"  # type: ignore[index]


def test_gitops_names_what_is_wrong(tmp_path: Path) -> None:
    overlay = _copy_manifests(tmp_path)
    not_overlay = CliRunner().invoke(app, ["deploy", "--version", "2", "--gitops", str(tmp_path)])
    assert not_overlay.exit_code == 1
    assert "is not a kustomize overlay (no kustomization.yaml)" in words(not_overlay.output)

    kustomization = overlay / "kustomization.yaml"
    spec = yaml.safe_load(kustomization.read_text())
    spec["patches"] = [p for p in spec["patches"] if p["path"] != "model-version.yaml"]
    kustomization.write_text(yaml.safe_dump(spec))
    unwired = CliRunner().invoke(app, ["deploy", "--version", "2", "--gitops", str(overlay)])
    assert unwired.exit_code == 1
    assert "does not apply model-version.yaml" in words(unwired.output)

    both = CliRunner().invoke(
        app, ["deploy", "--version", "2", "--dry-run", "--gitops", str(overlay)]
    )
    assert both.exit_code == 1
    assert "pass one of them" in words(both.output)

    bad = CliRunner().invoke(app, ["deploy", "--version", "v 2", "--gitops", str(overlay)])
    assert bad.exit_code == 1
    assert "model version 'v 2'" in words(bad.output)


def test_the_committed_overlays_render_their_versions() -> None:
    """Each overlay's model-version.yaml is what --gitops writes for the version it names."""
    from freightml.deploy.gitops import CANARY_PATH, model_version_ops

    for env in ("dev", "staging", "prod"):
        ops = yaml.safe_load(
            (REPO / "manifests" / "overlays" / env / "model-version.yaml").read_text()
        )
        version = next(o["value"] for o in ops if o["path"].endswith("model-version"))
        canary = next((o["value"] for o in ops if o["path"] == CANARY_PATH), None)
        assert ops == model_version_ops(version, canary), env
