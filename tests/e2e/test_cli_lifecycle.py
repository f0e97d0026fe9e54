"""The user's path through the CLI as a process (the console entry): demo on small data
(its steps through the parser), batch scoring into the store, the registry, promotion
and rollback."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from freightml.config import load_settings
from freightml.domain import MODEL_NAME, SERIES_KEY
from helpers import TRAINED_HOME_RECIPES, freightml_process, run_stages

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FREIGHTML_"))}
    env["COLUMNS"] = "250"
    return env


@pytest.fixture
def config(tmp_path: Path) -> str:
    """Where everything goes, given to every command with --config (no environment)."""
    path = tmp_path / "freightml.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "pipeline": {"compile_dir": str(tmp_path / "build")},
                # as the session champion (helpers.TRAINED_HOME_RECIPES): on small seed 42
                # the default portfolio's absolute-error recipe fails the bias gate
                "selection": {"ml_recipes": TRAINED_HOME_RECIPES},
            }
        )
    )
    return str(path)


def test_demo_then_score_promote_and_rollback(
    env: dict[str, str], config: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    demo = freightml_process("demo", "--size", "small", "--seed", "42", "--config", config, env=env)
    text = demo.stdout + demo.stderr
    data = home / "data" / "small-seed42.parquet"
    # each step went through the command line parser
    assert f"$ freightml data generate --out {data} --size small --seed 42" in demo.stderr
    assert f"$ freightml pipeline compile --config {config}" in demo.stderr
    assert f"$ freightml pipeline run training --source {data} --config {config}" in demo.stderr
    assert f"champion: {MODEL_NAME} v1" in text
    assert "model card:" in text and "mlflow ui --backend-store-uri sqlite:///" in text
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == [
        "batch_scoring.yaml",
        "monitoring.yaml",
        "retraining.yaml",
        "training.yaml",
    ]
    assert (home / "cards" / f"{MODEL_NAME}-v1" / "model_card.html").exists()

    listed = freightml_process("models", "list", "-c", config, env=env).stdout
    v1 = next(line for line in listed.splitlines() if line.split()[1:2] == ["1"])
    assert "champion" in v1 and "challenger" in v1

    # batch scoring with the champion: 28 days ahead for every series active in the last 28
    facts = pd.read_parquet(data)
    recent = facts.loc[
        (facts["date"] > facts["date"].max() - timedelta(days=28)) & (facts["volume_tonnes"] > 0)
    ]
    active = len(recent.drop_duplicates(list(SERIES_KEY)))
    freightml_process(
        "pipeline", "run", "batch_scoring", "--source", str(data), "-c", config, env=env
    )
    engine = sa.create_engine(f"sqlite:///{home / 'collector.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT source, model_version, count(*), min(horizon), max(horizon), "
                "min(target_date), max(target_date) FROM forecasts GROUP BY source, model_version"
            )
        ).all()
    engine.dispose()
    last = facts["date"].max().date()
    assert [tuple(r) for r in rows] == [
        (
            "batch",
            "1",
            active * 28,
            1,
            28,
            str(last + timedelta(days=1)),
            str(last + timedelta(days=28)),
        )
    ]

    # a second version, registered by the training stages in this process on the same home
    # (the pipeline's run of them is the demo's, above): the seasonal-naive baseline, which
    # fails the gates and stays challenger; then a manual promotion and rollback through the
    # console
    naive = {"name": "seasonal_naive", "params": {}}
    s = load_settings(
        config, data={"source_uri": str(data)}, model=naive, selection={"enabled": False}
    )
    second = run_stages(s, tmp_path / "second")
    assert (second.version, second.promoted, second.champion) == ("2", False, "1")
    refused = freightml_process(
        "models", "promote", "2", "--reason", "x", "-c", config, env=env, check=False
    )
    assert refused.returncode == 1 and "it failed its gates" in refused.stderr
    promoted = freightml_process(
        "models",
        "promote",
        "2",
        "--reason",
        "planner asked for v2",
        "--actor",
        "alice",
        "--force",
        "-c",
        config,
        env=env,
    )
    assert "champion: v1 -> v2 by alice: planner asked for v2" in promoted.stderr
    rolled = freightml_process(
        "models", "rollback", "--reason", "v2 looks off", "--actor", "bob", "-c", config, env=env
    )
    assert "champion: v2 -> v1 by bob: v2 looks off" in rolled.stderr
    again = freightml_process(
        "models", "rollback", "--reason", "v2 after all", "--to", "2", "-c", config, env=env
    )
    assert "champion: v1 -> v2 by" in again.stderr
    history = freightml_process("models", "history", "-c", config, env=env).stdout
    rows = [line for line in history.splitlines() if "promote" in line or "rollback" in line]
    assert len(rows) == 4, history  # the pipeline's own promotion of v1, then the three above
    assert "freightml-pipeline" in rows[0]
    assert [cell.strip() for cell in rows[0].split("│")[2:4]] == ["promote", "1"]
    assert "planner asked for v2" in rows[1] and "alice" in rows[1]
    assert "v2 looks off" in rows[2] and "bob" in rows[2]
    assert "v2 after all" in rows[3]

    bad = freightml_process(
        "models", "promote", "7", "--reason", "x", "-c", config, env=env, check=False
    )
    assert bad.returncode == 1 and "no version '7'" in bad.stderr


def test_validate_cli_names_the_fault(env: dict[str, str], tmp_path: Path) -> None:
    from freightml.data.synthetic import generate

    facts = generate("small", seed=1)
    facts = pd.concat([facts, facts.iloc[:4]])  # planted duplicates
    path = tmp_path / "dupes.csv"
    facts.to_csv(path, index=False)
    proc = freightml_process(
        "data", "validate", str(path), "--report-dir", str(tmp_path / "r"), env=env, check=False
    )
    assert proc.returncode == 1
    assert "[duplicate_rows]" in proc.stderr
    assert (tmp_path / "r" / "report.html").exists()
    facts.drop_duplicates().to_csv(path, index=False)
    proc = freightml_process(
        "data", "validate", str(path), "--report-dir", str(tmp_path / "r"), env=env
    )
    assert f"valid: {len(facts) - 4:,} rows" in proc.stderr
