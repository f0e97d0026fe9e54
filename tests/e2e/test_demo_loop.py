"""The closed loop as a user runs it: `freightml demo --loop` (size small) trains a champion,
serves it with a real predictor and collector, replays the days after its training window
with a level shift and a new region from day 3, monitors and decides every day, retrains
once, promotes the challenger through the gates, the running predictor switches to it, and
the realised WAPE of the shifted series from the switch on is lower than on the shifted days
before it.
The assertions are on the sequence of events the run recorded (timeline, decisions table,
registry), not on its printout."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from freightml.demo.loop import LoopScenario
from freightml.retraining.decisions import DecisionStore
from freightml.store import Store
from helpers import free_port, freightml_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("demo-loop")
    config = tmp / "freightml.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp / "home"),
                "pipeline": {"compile_dir": str(tmp / "build")},
                "collector": {"port": free_port()},
                "serving": {"http_port": free_port()},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FREIGHTML_"))}
    env["COLUMNS"] = "250"
    proc = freightml_process("demo", "--loop", "--config", str(config), env=env, timeout_s=1500)
    home = tmp / "home" / "loop"
    return {
        "home": home,
        "text": proc.stdout + proc.stderr,
        "timeline": pd.read_csv(home / "timeline.csv"),
    }


def test_the_trigger_fires_once_and_the_service_switches_to_the_new_champion(loop: dict) -> None:
    timeline, scenario = loop["timeline"], LoopScenario()
    assert len(timeline) == scenario.days
    fired = timeline.loc[timeline["decision"] == "retrain"]
    assert len(fired) == 1, timeline[["day", "decision", "triggers", "action"]]
    decided = int(fired["day"].iloc[0])
    assert decided >= scenario.shift_day  # nothing before the shift asked for a retrain
    assert "promoted" in fired["action"].iloc[0]
    served = timeline.set_index("day")["version_served"].astype(str)
    assert set(served.loc[:decided]) == {"1"}
    assert set(served.loc[decided + 1 :]) == {"2"}  # the next day's requests: v2, no restart
    # the days after the decision say why nothing more happened (cool-down, key), if anything
    assert (timeline.loc[timeline["day"] > decided, "decision"] == "no action").all()


def test_the_shift_shows_in_the_realised_wape_the_loop_reacts_to(loop: dict) -> None:
    timeline = loop["timeline"]
    before = timeline.loc[timeline["phase"] == "before shift", "realised_wape"].mean()
    shifted = timeline.loc[timeline["phase"] == "shifted", "realised_wape"].mean()
    # what the forecasts paid for the shift: x1.37 in the recorded run, against the 1.2 limit
    assert shifted > before * 1.2, (before, shifted)
    first = timeline.loc[timeline["phase"] == "shifted"].iloc[0]
    assert "new_regions" in first["triggers"] and "min_new_facts" in first["action"]


def test_the_realised_wape_recovers_after_the_switch(loop: dict) -> None:
    timeline = loop["timeline"]
    switch = int(timeline.loc[timeline["version_served"].astype(str) == "2", "day"].min())
    shifted = timeline.loc[timeline["phase"] == "shifted"]
    before, after = shifted.loc[shifted["day"] < switch], shifted.loc[shifted["day"] >= switch]
    assert len(before) >= 3 and len(after) >= 3, timeline[["day", "phase", "version_served"]]
    # On the series the shift hit (coal and the new region): 0.469 on days 3-7, 0.425 on
    # days 8-13 in the recorded run (ratio 0.908: 4.2 points inside the 0.95 limit; the
    # runs of other seeds are in bench/RESULTS.md, "Closed loop"). Not on all series: there
    # the other lanes' day-to-day noise is as large as what the shifted ones win back in 6
    # days (0.330 -> 0.336), so such an assertion would test the noise (docs/retraining.md,
    # "Recovery").
    assert after["shifted_wape"].mean() < 0.95 * before["shifted_wape"].mean(), shifted


def test_the_decision_is_recorded_and_carried_by_the_new_version(loop: dict) -> None:
    home: Path = loop["home"]
    store = Store(f"sqlite:///{home / 'collector.db'}")
    try:
        rows = DecisionStore(store).list(limit=100, model_name="freight-volume")
    finally:
        store.close()
    started = [r for r in rows if r["status"] != "skipped"]
    assert len(started) == 1 and started[0]["status"] == "finished", rows
    assert str(started[0]["model_version"]) == "2"
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    v2 = client.get_model_version("freight-volume", "2")
    assert v2.tags["retrain.decision_id"] == started[0]["id"]
    assert "champion" in v2.aliases
    assert v2.tags.get("retrain.window.rule"), v2.tags  # the window choice is on record


def test_the_timeline_is_written_as_csv_and_plot(loop: dict) -> None:
    assert (loop["home"] / "timeline.png").stat().st_size > 10_000
    assert "loop done in" in loop["text"] and "timeline:" in loop["text"]
