"""The real kfp.Client (2.17) over HTTP against the KFP v2beta1 stand-in on 127.0.0.1:
`freightml pipeline run --host` submits, `freightml retrain schedule --host` creates, keeps
or replaces exactly one recurring run, and the in-flight guard reads the runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kfp
import pytest
import yaml

from freightml.config import Settings, load_settings
from helpers import cli, free_port, words

pytestmark = [pytest.mark.integration]

API = "/apis/v2beta1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def standin() -> Iterator[Any]:
    from kfp_standin import KfpStandin  # tests/kfp_standin.py

    with KfpStandin() as api:
        yield api


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    monkeypatch.chdir(tmp_path)  # compiled YAML goes to build/pipelines here
    path = tmp_path / "freightml.yaml"
    policy = yaml.safe_load((REPO / "configs" / "retraining.yaml").read_text())
    policy["schedule"]["cron"] = "0 15 4 * * 2"  # the policy's schedule, not the default's
    (tmp_path / "retraining.yaml").write_text(yaml.safe_dump(policy))
    path.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "retraining_path": str(tmp_path / "retraining.yaml"),
                "data": {"synthetic_size": "small"},
            }
        )
    )
    return path


def compiled(tmp_path: Path, name: str) -> tuple[dict, dict]:
    spec, platform = yaml.safe_load_all((tmp_path / "build" / "pipelines" / f"{name}.yaml").open())
    return spec, platform


def test_pipeline_run_host_sends_the_compiled_training_pipeline(
    standin: Any, config: Path, tmp_path: Path
) -> None:
    result = cli("pipeline", "run", "training", "--host", standin.url, "--config", str(config))
    assert [(r.method, r.path) for r in standin.requests] == [
        ("GET", f"{API}/healthz"),
        ("GET", f"{API}/experiments"),
        ("POST", f"{API}/experiments"),
        ("POST", f"{API}/runs"),
    ]
    [run] = standin.state.runs.values()
    assert f"submitted training to {standin.url}: run {run['run_id']}" in words(result.output)
    [experiment] = standin.state.experiments.values()
    assert experiment["display_name"] == "freightml"
    body = standin.requests[-1].body
    assert body["experiment_id"] == experiment["experiment_id"]
    assert body["display_name"].startswith("training-")
    # the package sent is the one `pipeline compile` wrote, unchanged
    spec, platform = compiled(tmp_path, "training")
    assert body["pipeline_spec"]["pipeline_spec"] == spec
    assert body["pipeline_spec"]["platform_spec"] == platform
    assert spec["pipelineInfo"]["name"] == "freightml-training"
    sent = body["runtime_config"]["parameters"]
    assert set(sent) == {"config"}
    assert Settings.model_validate_json(sent["config"]) == load_settings(config)


def test_pipeline_run_host_passes_the_retraining_window(
    standin: Any, config: Path, tmp_path: Path
) -> None:
    cli(
        "pipeline",
        "run",
        "retraining",
        "--host",
        standin.url,
        "--as-of",
        "2026-03-02",
        "--window-days",
        "14",
        "--config",
        str(config),
    )
    body = standin.requests_to("POST", f"{API}/runs")[-1].body
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "freightml-retraining"
    parameters = body["runtime_config"]["parameters"]
    assert parameters["as_of"] == "2026-03-02" and parameters["window_days"] == 14
    result = cli(
        "pipeline", "run", "retraining", "--host", standin.url, "--as-of", "2.3.2026", code=2
    )
    assert "--as-of '2.3.2026' is not a date" in words(result.output)


def schedule(standin: Any, config: Path, *args: str, code: int = 0) -> str:
    result = cli(
        "retrain", "schedule", "--host", standin.url, *args, "--config", str(config), code=code
    )
    return words(result.output)


def test_schedule_creates_one_recurring_run_and_keeps_it(
    standin: Any, config: Path, tmp_path: Path
) -> None:
    out = schedule(standin, config, "--cron", "0 0 3 * * 1")
    [recurring] = standin.state.recurring_runs.values()
    assert f"recurring run created {recurring['recurring_run_id']}" in out
    assert recurring["display_name"] == "freightml-retraining-schedule"
    assert recurring["max_concurrency"] == "1"
    assert recurring["no_catchup"] is True
    assert recurring["status"] == "ENABLED"
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    parameters = recurring["runtime_config"]["parameters"]
    assert parameters["as_of"] == ""  # each run's own start day: the placeholder is not resolved
    assert Settings.model_validate_json(parameters["config"]) == load_settings(config)
    [experiment] = standin.state.experiments.values()
    assert recurring["experiment_id"] == experiment["experiment_id"]

    # the recurring run points at an uploaded version holding the compiled retraining pipeline
    [upload] = standin.requests_to("POST", f"{API}/pipelines/upload")
    [upload_version] = standin.requests_to("POST", f"{API}/pipelines/upload_version")
    package = (tmp_path / "build" / "pipelines" / "retraining.yaml").read_bytes()
    assert upload.body == {"filename": "retraining.yaml", "content": package}
    assert upload.query["name"] == "freightml-retraining"
    assert upload_version.body["content"] == package
    reference = recurring["pipeline_version_reference"]
    version = standin.state.versions[reference["pipeline_version_id"]]
    assert version["display_name"].startswith("freightml-retraining-")
    assert version["pipeline_spec"] == next(iter(yaml.safe_load_all(package)))
    assert reference["pipeline_id"] == upload_version.query["pipelineid"]

    # the same schedule again: nothing uploaded, created or deleted
    before = len(standin.requests)
    out = schedule(standin, config, "--cron", "0 0 3 * * 1")
    assert f"already up to date: {recurring['recurring_run_id']}" in out
    writes = [r for r in standin.requests[before:] if r.method != "GET"]
    assert writes == [] and list(standin.state.recurring_runs) == [recurring["recurring_run_id"]]


def test_schedule_replaces_a_changed_recurring_run_and_never_keeps_two(
    standin: Any, config: Path
) -> None:
    schedule(standin, config)  # no --cron: the policy's schedule.cron
    [old] = standin.state.recurring_runs.values()
    assert old["trigger"]["cron_schedule"]["cron"] == "0 15 4 * * 2"

    before = len(standin.requests)
    out = schedule(standin, config, "--cron", "0 30 2 * * MON-FRI", "--as-of", "2026-03-02")
    [new] = standin.state.recurring_runs.values()
    assert new["recurring_run_id"] != old["recurring_run_id"]
    assert "replaced (cron, parameters changed)" in out
    assert new["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * MON-FRI"
    assert new["runtime_config"]["parameters"]["as_of"] == "2026-03-02"
    assert new["status"] == "ENABLED" and new["max_concurrency"] == "1" and new["no_catchup"]
    # created disabled, the old one deleted, then enabled: never two enabled at once
    writes = [(r.method, r.path, r.body) for r in standin.requests[before:] if r.method != "GET"]
    assert [(m, p) for m, p, _ in writes] == [
        ("POST", f"{API}/recurringruns"),
        ("DELETE", f"{API}/recurringruns/{old['recurring_run_id']}"),
        ("POST", f"{API}/recurringruns/{new['recurring_run_id']}:enable"),
    ]
    assert writes[0][2]["mode"] == "DISABLE"
    # the pipeline did not change: its version is reused, no second pipeline
    assert len(standin.state.pipelines) == 1
    assert (
        new["pipeline_version_reference"]["pipeline_version_id"]
        == old["pipeline_version_reference"]["pipeline_version_id"]
    )


def test_schedule_removes_copies_and_re_enables_a_paused_one(standin: Any, config: Path) -> None:
    schedule(standin, config)
    [kept] = standin.state.recurring_runs.values()
    client = kfp.Client(host=standin.url)
    reference = kept["pipeline_version_reference"]
    copy = client.create_recurring_run(  # a copy made by hand, same name
        experiment_id=kept["experiment_id"],
        job_name=kept["display_name"],
        cron_expression="0 0 4 * * *",
        pipeline_id=reference["pipeline_id"],
        version_id=reference["pipeline_version_id"],
    )
    client.disable_recurring_run(kept["recurring_run_id"])
    out = schedule(standin, config)
    assert f"re-enabled {kept['recurring_run_id']}" in out
    assert list(standin.state.recurring_runs) == [kept["recurring_run_id"]]
    assert standin.state.recurring_runs[kept["recurring_run_id"]]["status"] == "ENABLED"
    assert standin.requests_to("DELETE", f"{API}/recurringruns/{copy.recurring_run_id}")


def test_schedule_of_the_training_pipeline_takes_no_date(standin: Any, config: Path) -> None:
    out = schedule(standin, config, "--pipeline", "training", "--cron", "0 0 1 1 * ?")
    assert "recurring run created" in out
    [recurring] = standin.state.recurring_runs.values()
    assert recurring["display_name"] == "freightml-training-schedule"
    assert set(recurring["runtime_config"]["parameters"]) == {"config"}
    out = schedule(standin, config, "--pipeline", "training", "--as-of", "2026-03-02", code=2)
    assert "--as-of applies to the retraining pipeline only" in out


def test_schedule_refuses_bad_input_before_calling_the_api(standin: Any, config: Path) -> None:
    out = schedule(standin, config, "--cron", "0 3 * * 1", code=2)
    assert "has 5 fields; KFP recurring runs need 6" in out
    out = schedule(standin, config, "--cron", "0 0 25 * * 1", code=2)
    assert "hour field: 25 is outside 0-23" in out
    out = schedule(standin, config, "--pipeline", "monitoring", code=2)
    assert "--pipeline must be retraining or training" in out
    assert standin.requests == []
    bad_policy = config.parent / "retraining.yaml"
    bad_policy.write_text(bad_policy.read_text().replace("0 15 4 * * 2", "0 15 4 * *"))
    out = schedule(standin, config, code=2)  # the policy's cron is checked when it loads
    assert "schedule.cron" in out and "has 5 fields" in out
    assert standin.requests == []
    result = cli(
        "retrain",
        "schedule",
        "--host",
        f"http://127.0.0.1:{free_port()}",
        "--cron",  # given: the (broken) policy is not read
        "0 0 3 * * 1",
        "--config",
        str(config),
        code=1,
    )
    assert "cannot reach the Kubeflow Pipelines API" in words(result.output)


def test_runs_in_flight_guard_over_the_api(
    standin: Any, config: Path, tmp_path: Path, settings: Settings
) -> None:
    from pipelines.run import KfpClientBackend, RunInFlightError, submit

    backend = KfpClientBackend(standin.url)
    backend.page_size = 2  # the runs below span pages
    out = tmp_path / "build" / "pipelines"
    first = submit(settings, backend, "retraining", out, exclusive=True)
    other = submit(settings, backend, "monitoring", out, exclusive=True)  # another pipeline
    with pytest.raises(RunInFlightError, match=rf"pipeline freightml-retraining .*{first}"):
        submit(settings, backend, "retraining", out, exclusive=True)
    assert len(standin.state.runs) == 2  # refused before anything was sent

    # a run the recurring run started references the uploaded version, not an inline spec
    pipeline_id, version_id = backend.upload(out / "retraining.yaml", "freightml-retraining", "v1")
    client = kfp.Client(host=standin.url)
    scheduled = client.run_pipeline(
        experiment_id=backend.experiment_id,
        job_name="scheduled",
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    standin.set_run_state(first, "SUCCEEDED")
    standin.set_run_state(other, "RUNNING")
    in_flight = backend.runs_in_flight("freightml-retraining")
    assert [(r.id, r.state, r.pipeline_name) for r in in_flight] == [
        (scheduled.run_id, "PENDING", "freightml-retraining")
    ]
    assert {r.id for r in backend.runs_in_flight()} == {scheduled.run_id, other}
    list_calls = standin.requests_to("GET", f"{API}/runs")
    assert any(r.query.get("page_token") for r in list_calls)  # it followed the pages
    standin.set_run_state(scheduled.run_id, "FAILED")
    third = submit(settings, backend, "retraining", out, exclusive=True)
    assert standin.state.runs[third]["state"] == "PENDING"
    assert json.loads(standin.state.runs[third]["runtime_config"]["parameters"]["config"])


def test_retrain_run_host_refuses_while_a_training_run_is_in_flight(
    standin: Any, config: Path
) -> None:
    cli("pipeline", "run", "training", "--host", standin.url, "--config", str(config))
    [running] = standin.state.runs
    # no champion yet: the policy asks for the first one (the small facts end 2025-03-31)
    args = ("retrain", "run", "--host", standin.url, "--as-of", "2025-03-31")
    result = cli(*args, "--config", str(config), code=1)
    out = words(result.output)
    assert "run(s) of pipeline freightml-training still in flight" in out and running in out
    assert list(standin.state.runs) == [running]  # nothing else was submitted

    standin.set_run_state(running, "SUCCEEDED")
    result = cli(*args, "--force", "--reason", "the slot is free", "--config", str(config))
    [submitted] = [r for r in standin.state.runs if r != running]
    assert f"submitted: run {submitted}" in words(result.output)
    tags = json.loads(standin.state.runs[submitted]["runtime_config"]["parameters"]["config"])[
        "tracking"
    ]["run_tags"]
    assert tags["retrain.trigger"] == "manual" and tags["retrain.as_of"] == "2025-03-31"
