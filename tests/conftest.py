"""Shared fixtures: every test gets its own FreightML home and SQLite MLflow store, and no
FREIGHTML_* or MLFLOW_* variable of the developer's shell leaks in."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from freightml.config import Settings, load_settings
from helpers import CHROMIUM_ENV, PG_ENV, REQUIRE_ALL_ENV, TRAINED_HOME_RECIPES, copy_home

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
    # mlflow.set_tracking_uri/set_registry_uri in an earlier test of this process leave
    # module globals behind (a pytest-xdist worker runs many modules): start from none, so
    # a client built with one URI also reads that URI's registry
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a temporary home (SQLite MLflow, artifacts, pipeline root)."""
    return load_settings(
        REPO / "configs" / "freightml.yaml",
        home=str(tmp_path / "home"),
        methodology_path=str(REPO / "configs" / "methodology.yaml"),
    )


@dataclass(frozen=True)
class TrainedHome:
    """The session's one kfp.local training run: a home with champion version 1 trained by
    the default recipe on ``small`` seed-42 facts, as `freightml demo --size small` leaves
    it (the facts in ``<home>/data/small-seed42.parquet``); ``later`` is the generator's
    week after them, for tests that play what comes next. Read it, never write it: tests
    that change the registry or the store take a copy (``champion_settings``, or
    ``helpers.copy_home``)."""

    home: Path
    source: Path  # the facts file the run read
    facts: pd.DataFrame  # its content: the history up to ``origin``
    later: pd.DataFrame  # the 7 days after ``origin`` (the same generator run, extended)
    origin: pd.Timestamp  # the last day of the training facts
    settings: Settings  # the run's own settings (home and tracking URI of the original)
    run: Any  # pipelines.run.LocalRun: the run's pipeline root and task folders


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    """Train once per test session what many tests need: a registered, promoted champion
    with its cards, profile and backtest on record. Under pytest-xdist the workers share
    one run: the first to take the lock trains, the others wait and read it."""
    import fcntl
    from dataclasses import replace

    from freightml.data.sources import save_facts
    from freightml.data.synthetic import SIZES, generate
    from pipelines.run import LocalRun, run_local

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "trained-home"
    facts = generate("small", seed=42)
    origin = facts["date"].max()
    longer = generate(replace(SIZES["small"], end=origin.date() + timedelta(days=7)), seed=42)
    later = longer.loc[longer["date"] > origin].reset_index(drop=True)
    home = root / "home"
    source = home / "data" / "small-seed42.parquet"
    s = load_settings(
        REPO / "configs" / "freightml.yaml",
        home=str(home),
        methodology_path=str(REPO / "configs" / "methodology.yaml"),
    )
    tracking = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    s = s.model_copy(
        update={
            "data": s.data.model_copy(update={"source_uri": str(source)}),
            "tracking": s.tracking.model_copy(update={"uri": tracking}),
            "selection": s.selection.model_copy(update={"ml_recipes": TRAINED_HOME_RECIPES}),
        }
    )
    done = root / "run.json"
    with (shared / "trained-home.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            source.parent.mkdir(parents=True, exist_ok=True)
            save_facts(facts, source)
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("MLFLOW_TRACKING_URI", tracking)
                trained = run_local(s, "training")
            done.write_text(
                json.dumps({"seconds": trained.seconds, "root": str(trained.pipeline_root)})
            )
    recorded = json.loads(done.read_text())
    run_root = Path(recorded["root"])
    run = LocalRun(
        name="training",
        seconds=recorded["seconds"],
        outputs={},
        pipeline_root=run_root,
        task_dirs={p.name: p for p in run_root.iterdir() if p.is_dir()},
    )
    return TrainedHome(
        home=home, source=source, facts=facts, later=later, origin=origin, settings=s, run=run
    )


@pytest.fixture
def champion_settings(trained_home: TrainedHome, settings: Settings) -> Settings:
    """The ``settings`` fixture's home as a copy of the session's trained home (champion
    v1, its run, artifacts and cards, the facts file, every recorded path pointing at the
    copy), reading the copy's facts file."""
    home = copy_home(trained_home.home, Path(settings.home))
    source = home / trained_home.source.relative_to(trained_home.home)
    return settings.model_copy(
        update={"data": settings.data.model_copy(update={"source_uri": str(source)})}
    )


@dataclass(frozen=True)
class CompiledPipelines:
    """Every pipeline compiled once per session, with the settings compiled into them."""

    settings: Settings
    paths: dict[str, Path]  # by file name: training.yaml, retraining.yaml, ...


@pytest.fixture(scope="session")
def compiled_pipelines(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipelines:
    """The compiled IR the compile tests read (none of them changes it)."""
    from pipelines.run import compile_pipelines

    root = tmp_path_factory.mktemp("compiled")
    s = load_settings(
        REPO / "configs" / "freightml.yaml",
        home=str(root / "home"),
        methodology_path=str(REPO / "configs" / "methodology.yaml"),
    )
    return CompiledPipelines(s, {p.name: p for p in compile_pipelines(s, root / "build")})


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
