"""The compiled retraining pipeline: monitor -> decide -> (retrain needed) the training
steps -> register -> (deploy requested, promoted) deploy, inside an exit handler whose exit
step closes a failed run's decision; parameters, caching, retries, resources and secrets."""

from pathlib import Path

import pytest
import yaml

from freightml.config import Settings
from pipelines.run import compile_pipelines

pytestmark = [pytest.mark.integration]

TRAINING = {
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
    spec, platform = yaml.safe_load_all(paths["retraining.yaml"].read_text())
    return spec, platform


def _condition(spec: dict, task: dict) -> tuple[str, dict]:
    return task["triggerPolicy"]["condition"], spec["components"][task["componentRef"]["name"]]


def _steps(spec: dict) -> dict:
    """The tasks inside the exit handler: everything but the exit step."""
    return spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]


def test_monitor_then_decide_then_training_only_if_needed(compiled) -> None:
    spec, _ = compiled
    assert spec["pipelineInfo"]["name"] == "freightml-retraining"
    assert set(spec["root"]["dag"]["tasks"]) == {"exit-handler-1", "close-retraining"}
    tasks = _steps(spec)
    assert set(tasks) == {"monitor-model", "decide-retraining", "retrain-gate", "condition-2"}
    assert "dependentTasks" not in tasks["monitor-model"]
    decide = tasks["decide-retraining"]
    assert decide["dependentTasks"] == ["monitor-model"]
    snapshot = decide["inputs"]["artifacts"]["snapshot"]["taskOutputArtifact"]
    assert snapshot == {"outputArtifactKey": "snapshot", "producerTask": "monitor-model"}
    # the as-of date is the pipeline's parameter, given to the monitor and the decision alike
    handler = spec["root"]["dag"]["tasks"]["exit-handler-1"]["inputs"]["parameters"]
    assert handler["pipelinechannel--as_of"] == {"componentInputParameter": "as_of"}
    for name in ("monitor-model", "decide-retraining"):
        assert tasks[name]["inputs"]["parameters"]["as_of"] == {
            "componentInputParameter": "pipelinechannel--as_of"
        }

    # the decision stores the run's id, which the exit step looks it up by
    run_id = {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    assert tasks["decide-retraining"]["inputs"]["parameters"]["run_id"] == run_id

    # the condition reads the gate's single output: kfp.local cannot resolve a named one
    gate = tasks["retrain-gate"]
    assert gate["inputs"]["parameters"]["retrain"] == {
        "taskOutputParameter": {
            "outputParameterKey": "retrain",
            "producerTask": "decide-retraining",
        }
    }
    condition, branch = _condition(spec, tasks["condition-2"])
    assert tasks["condition-2"]["taskInfo"]["name"] == "retrain-needed"
    assert condition == "inputs.parameter_values['pipelinechannel--retrain-gate-Output'] == true"
    inner = branch["dag"]["tasks"]
    assert set(inner) == TRAINING | {"record-retraining", "condition-3"}
    deps = {name: set(t.get("dependentTasks", [])) for name, t in inner.items()}
    # the outcome (the version registered, promoted or not) is stored with the decision
    assert deps["record-retraining"] == {"register-model"}
    record = inner["record-retraining"]["inputs"]["parameters"]
    assert record["decision_id"] == {
        "componentInputParameter": "pipelinechannel--decide-retraining-decision_id"
    }
    assert record["promoted"] == {
        "taskOutputParameter": {"outputParameterKey": "promoted", "producerTask": "register-model"}
    }
    assert deps["ingest-data"] == set()
    assert deps["train-model"] == {"build-features", "select-model"}
    assert {"train-model", "evaluate-model", "validate-data"} <= deps["register-model"]
    # the training steps read the decision's settings (facts up to its as-of date, its tags)
    for name in TRAINING:
        assert inner[name]["inputs"]["parameters"]["config"] == {
            "componentInputParameter": "pipelinechannel--decide-retraining-train_config"
        }, name
    assert tasks["condition-2"]["inputs"]["parameters"][
        "pipelinechannel--decide-retraining-train_config"
    ] == {
        "taskOutputParameter": {
            "outputParameterKey": "train_config",
            "producerTask": "decide-retraining",
        }
    }

    # inside: the optional deploy of a promoted champion, with the canary share
    condition, deploy_requested = _condition(spec, inner["condition-3"])
    assert condition == "inputs.parameter_values['pipelinechannel--deploy'] == true"
    [promoted_task] = deploy_requested["dag"]["tasks"].values()
    condition, promoted = _condition(spec, promoted_task)
    assert "register-model-promoted" in condition
    deploy = promoted["dag"]["tasks"]["deploy-model"]
    parameters = deploy["inputs"]["parameters"]
    assert parameters["canary_percent"] == {
        "componentInputParameter": "pipelinechannel--canary_percent"
    }
    assert parameters["model_version"] == {
        "componentInputParameter": "pipelinechannel--register-model-version"
    }


def test_exit_step_closes_the_decision_whatever_happened(compiled) -> None:
    spec, _ = compiled
    close = spec["root"]["dag"]["tasks"]["close-retraining"]
    assert close["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert close["dependentTasks"] == ["exit-handler-1"]
    parameters = close["inputs"]["parameters"]
    assert parameters["status"] == {"taskFinalStatus": {"producerTask": "exit-handler-1"}}
    assert parameters["run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    assert parameters["config"] == {"componentInputParameter": "config"}
    assert close["cachingOptions"].get("enableCache", False) is False
    definitions = spec["components"]["comp-close-retraining"]["inputDefinitions"]["parameters"]
    assert definitions["status"]["parameterType"] == "TASK_FINAL_STATUS"


def test_parameters_and_their_defaults(compiled, settings: Settings) -> None:
    spec, _ = compiled
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == {"config", "as_of", "window_days", "deploy", "canary_percent"}
    assert parameters["as_of"] == {
        "defaultValue": "",
        "isOptional": True,
        "parameterType": "STRING",
    }
    assert parameters["window_days"]["defaultValue"] == 0
    assert parameters["deploy"]["defaultValue"] is False
    assert parameters["canary_percent"]["defaultValue"] == 100
    assert Settings.model_validate_json(parameters["config"]["defaultValue"]) == settings
    outputs = spec["components"]["comp-decide-retraining"]["outputDefinitions"]
    assert outputs["parameters"]["retrain"]["parameterType"] == "BOOLEAN"
    assert outputs["parameters"]["train_config"]["parameterType"] == "STRING"
    assert outputs["artifacts"]["decision"]["artifactType"]["schemaTitle"] == "system.Artifact"


def test_caching_off_retries_and_resources(compiled, settings: Settings) -> None:
    spec, _ = compiled
    tasks = _steps(spec)
    inner = spec["components"]["comp-condition-2"]["dag"]["tasks"]
    for name, task in {**tasks, **inner}.items():
        if name.startswith("condition-"):
            continue
        assert task["cachingOptions"].get("enableCache", False) is False, name
        if name != "validate-data":  # a data error does not heal on retry
            assert task["retryPolicy"]["maxRetryCount"] == settings.pipeline.retries, name
    assert "retryPolicy" not in inner["validate-data"]
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {settings.pipeline.base_image}
    limits = {name: e["container"].get("resources", {}) for name, e in executors.items()}
    assert limits["exec-monitor-model"]["resourceMemoryLimit"] == "8G"
    assert limits["exec-decide-retraining"]["resourceMemoryLimit"] == "2G"
    assert limits["exec-train-model"]["resourceCpuLimit"] == "2"
    assert limits["exec-train-model"]["resourceMemoryLimit"] == "8G"


def test_secrets_only_where_needed(compiled, settings: Settings) -> None:
    _, platform = compiled
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {
        "exec-monitor-model",
        "exec-decide-retraining",
        "exec-record-retraining",
        "exec-close-retraining",
        "exec-ingest-data",
        "exec-evaluate-model",
        "exec-register-model",
    }
    for name in ("exec-record-retraining", "exec-close-retraining"):
        [secret] = executors[name]["secretAsEnv"]
        assert secret["secretName"] == settings.pipeline.store_secret
    for name in ("exec-monitor-model", "exec-decide-retraining"):
        secrets = {s["secretName"] for s in executors[name]["secretAsEnv"]}
        assert secrets == {settings.pipeline.mlflow_secret, settings.pipeline.store_secret}
    for name in ("exec-ingest-data", "exec-register-model"):
        [secret] = executors[name]["secretAsEnv"]
        assert secret["secretName"] == settings.pipeline.mlflow_secret


def test_training_steps_are_the_training_pipelines(settings: Settings, tmp_path: Path) -> None:
    """One function adds the training steps to both pipelines: same components, same
    settings (resources, retries, caching) whichever pipeline they run in."""
    paths = {p.name: p for p in compile_pipelines(settings, tmp_path)}
    retraining, _ = yaml.safe_load_all(paths["retraining.yaml"].read_text())
    training, _ = yaml.safe_load_all(paths["training.yaml"].read_text())
    inner = retraining["components"]["comp-condition-2"]["dag"]["tasks"]
    for name in TRAINING:
        component = f"comp-{name}"
        assert retraining["components"][component] == training["components"][component]
        executor = f"exec-{name}"
        assert (
            retraining["deploymentSpec"]["executors"][executor]
            == training["deploymentSpec"]["executors"][executor]
        )
        mine, theirs = inner[name], training["root"]["dag"]["tasks"][name]
        assert mine.get("retryPolicy") == theirs.get("retryPolicy")
        assert mine["cachingOptions"] == theirs["cachingOptions"]
