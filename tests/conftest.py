"""Shared fixtures: every test gets its own FreightML home and SQLite MLflow store, and no
FREIGHTML_* or MLFLOW_* variable of the developer's shell leaks in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from freightml.config import Settings, load_settings
from helpers import CHROMIUM_ENV, PG_ENV, REQUIRE_ALL_ENV

REPO = Path(__file__).resolve().parents[1]
# What the test harness itself sets; every other FREIGHTML_*/MLFLOW_* variable is removed.
_KEEP = {PG_ENV, REQUIRE_ALL_ENV, CHROMIUM_ENV}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach a real tracking server or read the developer's overrides: the
    environment is scrubbed and MLflow points at a temporary SQLite store (the same one the
    ``settings`` fixture uses)."""
    for var in list(os.environ):
        if var.startswith(("FREIGHTML_", "MLFLOW_")) and var not in _KEEP:
            monkeypatch.delenv(var)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(home / 'mlflow.db').resolve()}")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a temporary home (SQLite MLflow, artifacts, pipeline root)."""
    return load_settings(
        REPO / "configs" / "freightml.yaml",
        home=str(tmp_path / "home"),
        methodology_path=str(REPO / "configs" / "methodology.yaml"),
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need the test PostgreSQL carry the ``postgres`` marker wherever they are
    parametrised over it, so ``-m postgres`` selects exactly them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.id.split("-"):
            item.add_marker(pytest.mark.postgres)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With FREIGHTML_TEST_REQUIRE_ALL=1 (CI) a skipped test fails the run: CI must prove
    that everything ran, not that everything it could find ran."""
    if os.environ.get(REQUIRE_ALL_ENV) != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    skipped = len(terminalreporter.stats.get("skipped", []))
    if skipped and os.environ.get(REQUIRE_ALL_ENV) == "1":
        terminalreporter.write_line(
            f"{REQUIRE_ALL_ENV}=1: {skipped} test(s) skipped; CI runs every test, so this "
            "run fails (the skip summary above names them)",
            red=True,
        )
