"""Rollout through the real KServeClient against kmock's in-memory Kubernetes API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kserve import constants

import freightml._kserve  # noqa: F401  (first: see freightml/_kserve.py)
from freightml.config import DeploySettings, Settings
from freightml.deploy import deploy_model
from freightml.deploy.apply import DeployError, rollout, wait_ready
from freightml.deploy.inference_service import VERSION_LABEL
from k8s_schemas import require_crds, validate_object
from kmock_server import ISVC_RESOURCE, KMockCluster, kserve_client

pytestmark = [pytest.mark.integration]
NS, NAME = "freightml", "freight-volume"


@pytest.fixture
def cluster() -> Iterator[KMockCluster]:
    with KMockCluster() as c:
        yield c


@pytest.fixture
def kserve(cluster: KMockCluster) -> Iterator[Any]:
    with kserve_client(cluster.kubeconfig()) as client:
        yield client


def _set_status(client: Any, status: dict[str, Any], generation: int | None = None) -> None:
    """What the KServe controller would do: write the status (and bump the generation)."""
    body: dict[str, Any] = {"status": status}
    if generation is not None:
        body["metadata"] = {"generation": generation}
    client.api_instance.patch_namespaced_custom_object(
        constants.KSERVE_GROUP,
        constants.KSERVE_V1BETA1_VERSION,
        NS,
        constants.KSERVE_PLURAL_INFERENCESERVICE,
        NAME,
        body,
    )


def _ready(value: str = "True", **extra: str) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": value, **extra}]}


def test_create_canary_promote_and_delete(cluster: KMockCluster, kserve: Any) -> None:
    deploy = DeploySettings()

    applied = rollout(deploy, "1", client=kserve)  # first deploy: POST
    stored = kserve.get(NAME, namespace=NS)
    assert stored["metadata"]["labels"][VERSION_LABEL] == "1"
    assert stored["spec"] == applied["spec"]
    assert "canaryTrafficPercent" not in stored["spec"]["predictor"]

    rollout(deploy, "2", 10, client=kserve)  # challenger as a canary: 409 on POST, then PATCH
    stored = cluster.stored(ISVC_RESOURCE, NS, NAME)
    predictor = stored["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert stored["metadata"]["labels"][VERSION_LABEL] == "2"
    assert predictor["labels"][VERSION_LABEL] == "2"
    args = predictor["containers"][0]["args"]
    assert args[args.index("--model-uri") + 1] == "models:/freight-volume/2"

    rollout(deploy, "2", 50, client=kserve)
    stored = cluster.stored(ISVC_RESOURCE, NS, NAME)
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 50

    # the controller marks it Ready a moment later; wait_ready sees it
    timer = threading.Timer(0.3, _set_status, (kserve, _ready()))
    timer.start()
    try:
        ready = wait_ready(NAME, NS, timeout=5, client=kserve, poll_seconds=0.05)
    finally:
        timer.join()
    assert ready["status"]["conditions"][0]["status"] == "True"

    rollout(deploy, "2", None, client=kserve)  # promote: the canary field is removed
    final = cluster.stored(ISVC_RESOURCE, NS, NAME)
    assert "canaryTrafficPercent" not in final["spec"]["predictor"]
    assert final["status"]["conditions"][0]["type"] == "Ready", "the patch keeps the status"

    versions = [v for v in cluster.history(ISVC_RESOURCE, NS, NAME) if v is not None]
    canaries = [v["spec"]["predictor"].get("canaryTrafficPercent") for v in versions]
    assert canaries == [None, 10, 50, 50, None]  # create, 3 rollouts and the status write between

    kserve.delete(NAME, namespace=NS)
    with pytest.raises(DeployError) as caught:
        wait_ready(NAME, NS, timeout=1, client=kserve, poll_seconds=0.05)
    assert caught.value.status == 404
    assert "reading InferenceService freightml/freight-volume failed: HTTP 404" in str(caught.value)

    require_crds()  # what the server held after all the patches is still a valid object
    validate_object({k: v for k, v in final.items() if k != "status"})


def test_wait_ready_times_out_with_the_reason(kserve: Any) -> None:
    rollout(DeploySettings(), "3", client=kserve)
    _set_status(kserve, _ready("False", reason="RevisionMissing", message="image pull failed"))
    with pytest.raises(TimeoutError) as caught:
        wait_ready(NAME, NS, timeout=0.3, client=kserve, poll_seconds=0.05)
    assert str(caught.value) == (
        "InferenceService freightml/freight-volume not Ready after 0.3s: "
        "Ready=False (RevisionMissing: image pull failed)"
    )


def test_ready_of_an_older_generation_does_not_count(kserve: Any) -> None:
    rollout(DeploySettings(), "3", client=kserve)
    _set_status(kserve, {**_ready(), "observedGeneration": 1}, generation=2)
    with pytest.raises(TimeoutError, match="has not seen generation 2 yet"):
        wait_ready(NAME, NS, timeout=0.2, client=kserve, poll_seconds=0.05)
    _set_status(kserve, {**_ready(), "observedGeneration": 2})
    assert wait_ready(NAME, NS, timeout=1, client=kserve, poll_seconds=0.05)


def test_deploy_model_applies_and_waits(
    cluster: KMockCluster, kserve: Any, settings: Settings
) -> None:
    rollout(DeploySettings(), "1", client=kserve)
    _set_status(kserve, _ready())
    manifest = deploy_model(settings, "5", canary_percent=20, client=kserve, wait=True)
    stored = cluster.stored(ISVC_RESOURCE, NS, NAME)
    assert stored["spec"] == manifest["spec"]
    assert stored["metadata"]["labels"] == manifest["metadata"]["labels"]


def test_unreachable_api_server_is_a_deploy_error(cluster: KMockCluster) -> None:
    config = cluster.kubeconfig()
    config["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:9"  # nothing listens there
    with (
        kserve_client(config) as client,
        pytest.raises(DeployError, match="creating InferenceService freightml/freight-volume"),
    ):
        rollout(DeploySettings(), "1", client=client)


@pytest.mark.filterwarnings("ignore:.*non-Python base image.*")  # locally it runs in this venv
@pytest.mark.slow
def test_deploy_component_dry_run(tmp_path: Path, settings: Settings) -> None:
    """The component runs under kfp.local and writes a schema-valid manifest artifact."""
    require_crds()
    from kfp import dsl, local

    from components.deploy_model import deploy_model as stage

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
    )
    component = dsl.component(
        stage, base_image=settings.pipeline.base_image, install_kfp_package=False
    )
    task = component(config=settings.to_json(), model_version="9", canary_percent=30, dry_run=True)
    artifact = task.outputs["manifest"]
    manifest = yaml.safe_load(Path(artifact.path).read_text())
    validate_object(manifest)
    assert manifest["spec"]["predictor"]["canaryTrafficPercent"] == 30
    assert manifest["metadata"]["labels"][VERSION_LABEL] == "9"
    assert artifact.metadata["dry_run"] is True
