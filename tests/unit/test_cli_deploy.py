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
