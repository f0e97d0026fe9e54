"""The retraining policy: configs/retraining.yaml parses, cron expressions are checked field
by field, and a bad value is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from freightml.config import Settings
from freightml.retraining.policy import Policy, load_policy, validate_cron

pytestmark = [pytest.mark.unit]
REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_policy_parses_with_the_documented_values() -> None:
    policy = load_policy(REPO / "configs" / "retraining.yaml")
    assert policy.schedule.cron == "0 0 3 * * 1"
    assert policy.schedule.max_champion_age_days == 35
    assert policy.triggers.input_drift.feature_share == 0.5
    assert policy.triggers.quality.consecutive_days == 5
    assert policy.triggers.new_entities.region_share == 0.02
    assert policy.guards.cooldown_days == 7
    assert policy.guards.max_in_flight == 1
    assert policy.guards.dedupe is True
    assert Settings().retraining_path == Path("configs/retraining.yaml")


def test_every_number_of_the_policy_file_is_explained_in_the_docs() -> None:
    docs = (REPO / "docs" / "retraining.md").read_text()
    raw = yaml.safe_load((REPO / "configs" / "retraining.yaml").read_text())

    def keys(tree: dict, prefix: str = "") -> list[str]:
        found = []
        for key, value in tree.items():
            if key == "window":  # the training window rule: its own section of the docs
                continue
            if isinstance(value, dict) and value:
                found += keys(value, f"{prefix}{key}.")
            elif key != "version":
                found.append(key)
        return found

    missing = [k for k in keys(raw) if f"`{k}`" not in docs]
    assert missing == []


@pytest.mark.parametrize(
    "expression",
    ["0 0 3 * * 1", "*/30 * * * * *", "0 15 2 1,15 * ?", "0 0 6 * JAN-MAR MON-FRI", "0 0 0 ? * 0"],
)
def test_valid_six_field_cron_expressions_pass(expression: str) -> None:
    assert validate_cron(expression) == expression


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 3 * * 1", "has 5 fields"),
        ("0 0 24 * * 1", "hour field: 24 is outside 0-23"),
        ("60 0 3 * * 1", "second field: 60 is outside 0-59"),
        ("0 0 3 0 * 1", "day of month field: 0 is outside 1-31"),
        ("0 0 3 * 13 1", "month field: 13 is outside 1-12"),
        ("0 0 3 * * 7", "day of week field: 7 is outside 0-6"),
        ("0 0 3 * * FUN", "day of week field: 'FUN' is not a number"),
        ("0 0 3 * * 5-2", "day of week range 5-2 runs backwards"),
        ("0 0 3 * * */0", "day of week step must be >= 1"),
        ("0 ? 3 * * 1", "'?' is allowed in the day fields only, not in minute"),
        ("0 0 3 * * 1#2", "day of week field '1#2' is invalid"),
    ],
)
def test_bad_cron_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match="cron expression") as error:
        validate_cron(expression)
    assert message in str(error.value)


def _write(tmp_path: Path, tree: dict) -> Path:
    path = tmp_path / "retraining.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_a_bad_cron_in_the_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, {"schedule": {"cron": "0 0 25 * * 1"}})
    with pytest.raises(ValueError) as error:
        load_policy(path)
    text = str(error.value)
    assert str(path) in text and "schedule.cron" in text and "25 is outside 0-23" in text


@pytest.mark.parametrize(
    ("tree", "named"),
    [
        (
            {"triggers": {"input_drift": {"feature_share": 1.5}}},
            "triggers.input_drift.feature_share",
        ),
        ({"triggers": {"quality": {"consecutive_days": 0}}}, "triggers.quality.consecutive_days"),
        ({"guards": {"max_in_flight": 0}}, "guards.max_in_flight"),
        ({"guards": {"cooldown_days": -1}}, "guards.cooldown_days"),
        ({"guards": {"cool_down": 3}}, "guards.cool_down"),  # unknown keys are refused
        ({"triggers": {"new_entities": {"region_share": 0}}}, "triggers.new_entities.region_share"),
        ({"schedule": {"max_champion_age_days": 0}}, "schedule.max_champion_age_days"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, tree: dict, named: str) -> None:
    with pytest.raises(ValueError, match="invalid retraining policy") as error:
        load_policy(_write(tmp_path, tree))
    assert named in str(error.value)


def test_a_missing_file_and_a_non_mapping_are_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="retraining policy file"):
        load_policy(tmp_path / "none.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_policy(path)


def test_defaults_equal_the_shipped_file() -> None:
    assert load_policy(REPO / "configs" / "retraining.yaml") == Policy()
