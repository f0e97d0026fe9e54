"""Shared fixtures: every test gets its own FreightML home and SQLite MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from freightml.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real tracking server or read the developer's overrides."""
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "FREIGHTML_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a temporary home (SQLite MLflow, artifacts, pipeline root)."""
    return load_settings(
        REPO / "configs" / "freightml.yaml",
        home=str(tmp_path / "home"),
        methodology_path=str(REPO / "configs" / "methodology.yaml"),
    )
