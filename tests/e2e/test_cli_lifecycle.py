"""The user's path through the CLI: demo on small data, registry, promotion, rollback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]


def freightml(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "freightml.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"freightml {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FREIGHTML_"))}
    env.update(
        FREIGHTML_HOME=str(tmp_path / "home"),
        FREIGHTML_PIPELINE__COMPILE_DIR=str(tmp_path / "build"),
        COLUMNS="200",
    )
    return env


def test_demo_then_promote_and_rollback(env: dict[str, str], tmp_path: Path) -> None:
    demo = freightml("demo", "--size", "small", env=env)
    text = demo.stdout + demo.stderr
    assert "champion: freight-volume v1" in text
    assert "model card:" in text and "mlflow ui --backend-store-uri sqlite:///" in text
    assert (tmp_path / "build" / "training.yaml").exists()
    assert (tmp_path / "home" / "cards" / "freight-volume-v1" / "model_card.html").exists()

    listed = freightml("models", "list", env=env).stdout
    assert "champion" in listed and "challenger" in listed

    # a second version (same data: it stays challenger), then a manual promotion and rollback
    data = tmp_path / "home" / "data" / "small-seed42.parquet"
    freightml("pipeline", "run", "training", "--source", str(data), env=env)
    promoted = freightml("models", "promote", "2", "--reason", "planner asked for v2",
                         "--actor", "alice", env=env)
    assert "v1 -> v2 by alice" in promoted.stdout + promoted.stderr
    rolled = freightml("models", "rollback", "--reason", "v2 looks off", "--actor", "bob", env=env)
    assert "v2 -> v1 by bob" in rolled.stdout + rolled.stderr
    history = freightml("models", "history", env=env).stdout
    assert "planner asked for v2" in history and "rollback" in history

    bad = freightml("models", "promote", "7", "--reason", "x", env=env, check=False)
    assert bad.returncode == 1 and "no version '7'" in bad.stderr


def test_validate_cli_names_the_fault(env: dict[str, str], tmp_path: Path) -> None:
    import pandas as pd

    from freightml.data.synthetic import generate

    facts = generate("small", seed=1)
    facts = pd.concat([facts, facts.iloc[:4]])  # planted duplicates
    path = tmp_path / "dupes.csv"
    facts.to_csv(path, index=False)
    proc = freightml("data", "validate", str(path), "--report-dir", str(tmp_path / "r"), env=env, check=False)
    assert proc.returncode == 1
    assert "duplicate" in proc.stderr.lower()
    assert (tmp_path / "r" / "report.html").exists()
