"""`python -m freightml.serving` (the container's entrypoint) parses its own options,
--config included, without KServe's import-time parser taking them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def serving(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "freightml.serving", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    proc = serving("--config", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "configuration error: settings file" in proc.stderr and "nope.yaml" in proc.stderr


def test_config_reaches_the_server_not_kserves_parser(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(f"home: {tmp_path / 'home'}\n")
    proc = serving(
        "--config",
        str(config),
        "--model-dir",
        str(tmp_path / "no-model"),
        "--history",
        str(tmp_path / "facts.parquet"),
        "--listen-port",
        "0",
    )
    assert proc.returncode == 1
    assert "configure_logging" not in proc.stderr
    assert "ModelNotAvailable" in proc.stderr and "no-model" in proc.stderr
