"""The compiled KFP IR: tasks, dependencies, image, retries and platform config."""

import hashlib
from pathlib import Path

import pytest
import yaml

from freightml.config import Settings
from pipelines.run import compile_pipelines

pytestmark = [pytest.mark.integration]

STAGES = {
    "ingest-data",
    "validate-data",
    "build-features",
    "select-model",
    "train-model",
    "evaluate-model",
    "register-model",
}


@pytest.fixture(scope="module")
def settings(compiled_pipelines) -> Settings:
    """The settings compiled into the session's pipelines (conftest)."""
    return compiled_pipelines.settings


@pytest.fixture(scope="module")
def compiled(compiled_pipelines) -> tuple[dict, dict]:
    """The session's compiled IR: the tests read the YAML, none changes it."""
    paths = compiled_pipelines.paths
    assert set(paths) == {
        "training.yaml",
        "batch_scoring.yaml",
        "monitoring.yaml",
        "retraining.yaml",
    }
    path = paths["training.yaml"]
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform


def test_seven_components_wired_in_order(compiled) -> None:
    spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == STAGES | {"condition-1"}  # condition-1: the optional deploy branch
    deps = {name: set(t.get("dependentTasks", [])) for name, t in tasks.items()}
    assert deps["ingest-data"] == set()
    assert deps["validate-data"] == {"ingest-data"}
    assert "validate-data" in deps["build-features"]  # bad data never reaches features
    assert "validate-data" in deps["select-model"]  # nor the selection
    assert deps["train-model"] == {"build-features", "select-model"}
    assert deps["evaluate-model"] == {"ingest-data", "select-model"}
    assert {"train-model", "evaluate-model", "validate-data"} <= deps["register-model"]


def test_image_retries_and_caching_from_settings(compiled, settings: Settings) -> None:
    spec, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {settings.pipeline.base_image}
    tasks = spec["root"]["dag"]["tasks"]
    assert "retryPolicy" not in tasks["validate-data"]  # a data error does not heal
    assert tasks["train-model"]["retryPolicy"]["maxRetryCount"] == settings.pipeline.retries
    assert all(tasks[t]["cachingOptions"].get("enableCache", False) is False for t in STAGES)
    train = executors["exec-train-model"]["container"]["resources"]
    assert train["resourceMemoryLimit"] == "8G"


def test_deploy_runs_only_when_asked_and_promoted(compiled) -> None:
    spec, _ = compiled
    outer = spec["root"]["dag"]["tasks"]["condition-1"]
    assert (
        "inputs.parameter_values['pipelinechannel--deploy'] == true"
        in outer["triggerPolicy"]["condition"]
    )
    inner_component = spec["components"][outer["componentRef"]["name"]]
    [inner] = inner_component["dag"]["tasks"].values()
    assert "register-model-promoted" in inner["triggerPolicy"]["condition"]
    deploy = spec["components"][inner["componentRef"]["name"]]["dag"]["tasks"]["deploy-model"]
    version = deploy["inputs"]["parameters"]["model_version"]
    assert version["componentInputParameter"] == "pipelinechannel--register-model-version"


def test_mlflow_secret_only_on_tasks_that_need_it(compiled, settings: Settings) -> None:
    _, platform = compiled
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-ingest-data", "exec-evaluate-model", "exec-register-model"}
    for executor in executors.values():
        [secret] = executor["secretAsEnv"]
        assert secret["secretName"] == settings.pipeline.mlflow_secret
        envs = {k["envVar"] for k in secret["keyToEnv"]}
        assert "MLFLOW_TRACKING_URI" in envs and "AWS_SECRET_ACCESS_KEY" in envs


def test_config_parameter_carries_settings_not_secrets(compiled, settings: Settings) -> None:
    spec, _ = compiled
    default = spec["root"]["inputDefinitions"]["parameters"]["config"]["defaultValue"]
    assert Settings.model_validate_json(default) == settings
    assert "password" not in default.lower()


def test_outputs_are_typed_artifacts(compiled) -> None:
    spec, _ = compiled
    outputs = spec["components"]["comp-register-model"]["outputDefinitions"]["artifacts"]
    assert outputs["model_card"]["artifactType"]["schemaTitle"] == "system.Markdown"
    assert outputs["model_card_html"]["artifactType"]["schemaTitle"] == "system.HTML"
    metrics = spec["components"]["comp-evaluate-model"]["outputDefinitions"]["artifacts"]["metrics"]
    assert metrics["artifactType"]["schemaTitle"] == "system.Metrics"


def test_batch_scoring_reads_store_url_from_a_secret(settings: Settings, tmp_path: Path) -> None:
    paths = {p.name: p for p in compile_pipelines(settings, tmp_path)}
    spec, platform = yaml.safe_load_all(paths["batch_scoring.yaml"].read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest-data", "validate-data", "score-batch"}
    assert "validate-data" in tasks["score-batch"]["dependentTasks"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secrets = {s["secretName"] for s in executors["exec-score-batch"]["secretAsEnv"]}
    assert secrets == {settings.pipeline.mlflow_secret, settings.pipeline.store_secret}


def test_monitoring_pipeline_takes_its_window_and_reads_both_secrets(
    settings: Settings, tmp_path: Path
) -> None:
    paths = {p.name: p for p in compile_pipelines(settings, tmp_path)}
    spec, platform = yaml.safe_load_all(paths["monitoring.yaml"].read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"monitor-model"}
    assert tasks["monitor-model"]["cachingOptions"].get("enableCache", False) is False
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert (
        parameters["as_of"]["defaultValue"] == "" and parameters["window_days"]["defaultValue"] == 0
    )
    outputs = spec["components"]["comp-monitor-model"]["outputDefinitions"]["artifacts"]
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secrets = {s["secretName"] for s in executors["exec-monitor-model"]["secretAsEnv"]}
    assert secrets == {settings.pipeline.mlflow_secret, settings.pipeline.store_secret}


class RecordingBackend:
    """Stands in for a KFP API server, which cannot run here: records what is submitted and
    answers with a run id derived from the package it received."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str, dict]] = []

    def submit(self, package: Path, run_name: str, arguments: dict) -> str:
        self.calls.append((package, run_name, arguments))
        return "run-" + hashlib.sha256(package.read_bytes()).hexdigest()[:12]


def test_submit_sends_the_compiled_package(settings: Settings, tmp_path: Path) -> None:
    from pipelines.run import submit

    backend = RecordingBackend()
    run_id = submit(settings, backend, "training", tmp_path)
    [(package, run_name, arguments)] = backend.calls
    assert package == tmp_path / "training.yaml"
    # the id is the backend's answer for the package submit compiled, which is a training IR
    assert run_id == "run-" + hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    spec, _ = yaml.safe_load_all(package.read_text())
    assert spec["pipelineInfo"]["name"] == "freightml-training"
    assert run_name.startswith("training-")
    assert Settings.model_validate_json(arguments["config"]) == settings
    with pytest.raises(ValueError, match="unknown pipeline 'nope'"):
        submit(settings, backend, "nope", tmp_path)
