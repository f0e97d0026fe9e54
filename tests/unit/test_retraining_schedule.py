"""What counts as a difference between the recurring run wanted and the one the backend
has, and which run states hold the in-flight slot (the cron itself is the policy's
validate_cron, tested with the policy)."""

import pytest

from freightml.retraining.schedule import DEFAULT_CRON, RecurringRun, RecurringRunSpec, RunInfo

pytestmark = [pytest.mark.unit]


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
