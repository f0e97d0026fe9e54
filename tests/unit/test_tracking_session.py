"""What a run records about its environment: the real git commit and the real image."""

import re
import subprocess
from pathlib import Path

import pytest

from freightml.config import Settings
from freightml.tracking import environment_info, pipeline_image

pytestmark = [pytest.mark.unit]
REPO = Path(__file__).resolve().parents[2]


def test_image_is_the_pipeline_image_in_a_pod_and_local_otherwise(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert pipeline_image(settings) == "local"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert pipeline_image(settings) == settings.pipeline.base_image


def test_image_recorded_only_when_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert "image" not in environment_info()
    assert environment_info(image="ghcr.io/x/y:1")["image"] == "ghcr.io/x/y:1"


def test_commit_and_lock_are_the_checkout_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    info = environment_info()
    assert re.fullmatch("[0-9a-f]{40}", info["git_commit"]) and info["git_commit"] == head
    assert info["git_dirty"] in {"true", "false"}
    assert re.fullmatch("[0-9a-f]{64}", info["lock_sha256"])
