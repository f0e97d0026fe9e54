"""KFP's 6-field cron as `freightml retrain schedule` checks it, and what counts as a
difference between the recurring run wanted and the one the backend has."""

import pytest

from freightml.retraining.schedule import (
    DEFAULT_CRON,
    RecurringRun,
    RecurringRunSpec,
    RunInfo,
    validate_cron,
)

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize(
    "expression",
    [
        DEFAULT_CRON,
        "0 0 9 ? * 2-6",  # kfp.Client's own docstring example
        "0 */15 * * * *",
        "30 0 3 1,15 * ?",
        "0 0 3 * JAN-MAR mon",
        "0 0 0 1-7/2 * SUN",
    ],
)
def test_valid_expressions_pass_normalised(expression: str) -> None:
    assert validate_cron(f"  {expression.replace(' ', '   ')} ") == expression


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 3 * * 1", "has 5 fields; KFP needs 6"),
        ("0 0 3 * * 1 2026", "has 7 fields"),
        ("60 0 3 * * 1", "second field: 60 is outside 0-59"),
        ("0 0 24 * * 1", "hour field: 24 is outside 0-23"),
        ("0 0 3 0 * *", "day of month field: 0 is outside 1-31"),
        ("0 0 3 * 13 *", "month field: 13 is outside 1-12"),
        ("0 0 3 * * 7", "day of week field: 7 is outside 0-6"),
        ("0 0 3 * * FUN", "day of week field: 'FUN' is not a number or a name"),
        ("0 0 5-3 * * *", "hour field: range '5-3' runs backwards"),
        ("0 */0 * * * *", "minute field: a step of 0"),
        ("0 0 ? * * *", "'?' is allowed only in the day fields"),
        ("0 0 3 * * 1;rm", "day of week field: '1;RM' is not valid"),
    ],
)
def test_invalid_expressions_say_which_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace("*", r"\*")):
        validate_cron(expression)


def spec(**changes: object) -> RecurringRunSpec:
    base: dict = {
        "name": "freightml-retraining-schedule",
        "cron": DEFAULT_CRON,
        "pipeline_id": "p",
        "version_id": "v1",
        "parameters": {"config": "{}", "as_of": ""},
    }
    return RecurringRunSpec(**{**base, **changes})


def existing(**changes: object) -> RecurringRun:
    base: dict = {
        "id": "r1",
        "name": "freightml-retraining-schedule",
        "cron": DEFAULT_CRON,
        "pipeline_version_id": "v1",
        "parameters": {"config": "{}", "as_of": ""},
        "max_concurrency": 1,
        "no_catchup": True,
        "enabled": False,
    }
    return RecurringRun(**{**base, **changes})


def test_differences_name_what_changed_and_ignore_the_enabled_state() -> None:
    assert existing().differences(spec()) == []  # paused is no difference: it gets enabled
    assert existing(max_concurrency=3, no_catchup=False).differences(spec()) == [
        "max_concurrency",
        "no_catchup",
    ]
    assert existing(pipeline_version_id="v0").differences(spec()) == ["pipeline version"]
    assert existing().differences(spec(parameters={"config": "{}", "as_of": "2026-03-02"})) == [
        "parameters"
    ]
    assert existing(cron=None).differences(spec()) == ["cron"]  # a periodic one is replaced


@pytest.mark.parametrize(
    ("state", "in_flight"),
    [
        ("PENDING", True),
        ("RUNNING", True),
        ("CANCELING", True),
        ("PAUSED", True),
        ("RUNTIME_STATE_UNSPECIFIED", True),
        ("SUCCEEDED", False),
        ("FAILED", False),
        ("SKIPPED", False),
        ("CANCELED", False),
    ],
)
def test_which_runs_hold_the_slot(state: str, in_flight: bool) -> None:
    assert RunInfo("r", "n", state, "freightml-retraining").in_flight is in_flight
