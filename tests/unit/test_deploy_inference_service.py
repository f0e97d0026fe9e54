"""The InferenceService builder: schema-valid, secrets by reference, clear input errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from freightml.config import DeploySettings, Settings
from freightml.deploy import deploy_model
from freightml.deploy.apply import DeployError, apply_inference_service
from freightml.deploy.inference_service import (
    VERSION_LABEL,
    build_inference_service,
    build_service_account,
    to_manifest,
    to_yaml,
)
from freightml.kubernetes_values import quantity
from k8s_schemas import require_crds, validate_object

pytestmark = [pytest.mark.unit]


def manifest(canary: int | None = None, version: str = "7", **settings: Any) -> dict[str, Any]:
    isvc = build_inference_service(DeploySettings(**settings), version, canary_percent=canary)
    return to_manifest(isvc)


def container(m: dict[str, Any]) -> dict[str, Any]:
    [c] = m["spec"]["predictor"]["containers"]
    return c


@pytest.mark.parametrize("canary", [None, 0, 10, 100])
def test_validates_against_the_crd_in_strict_mode(canary: int | None) -> None:
    require_crds()
    m = manifest(canary)
    validate_object(m, strict=True)
    predictor = m["spec"]["predictor"]
    if canary is None:
        assert "canaryTrafficPercent" not in predictor  # None is dropped, not sent as null
    else:
        assert predictor["canaryTrafficPercent"] == canary


def test_manifest_shape() -> None:
    m = manifest(10)
    assert (m["apiVersion"], m["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert m["metadata"]["name"] == "freight-volume"
    assert m["metadata"]["namespace"] == "freightml"
    assert m["metadata"]["annotations"]["freightml.io/model-uri"] == "models:/freight-volume/7"
    p = m["spec"]["predictor"]
    assert p["serviceAccountName"] == "freightml-predictor"
    assert (p["minReplicas"], p["maxReplicas"]) == (1, 3)
    assert p["logger"] == {
        "mode": "all",
        "url": "http://freightml-collector.freightml.svc.cluster.local/events",
    }
    c = container(m)
    assert c["name"] == "kserve-container"
    assert c["image"] == "ghcr.io/freightml/freightml:0.1.0"
    assert c["command"] == ["python", "-m", "freightml.serving"]
    assert c["args"] == [
        "--model-uri",
        "models:/freight-volume/7",
        "--model-version",
        "7",
        "--listen-host",
        "0.0.0.0",
        "--listen-port",
        "8080",
    ]
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def test_probes_use_the_model_server_endpoints() -> None:
    c = container(manifest())
    assert c["readinessProbe"]["httpGet"] == {"path": "/v1/models/freight-volume", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/", "port": 8080}
    assert c["livenessProbe"]["initialDelaySeconds"] >= c["readinessProbe"]["initialDelaySeconds"]


def test_secrets_are_referenced_never_inlined() -> None:
    env = {e["name"]: e for e in container(manifest())["env"]}
    tracking = env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]
    assert tracking == {
        "name": "mlflow-credentials",
        "key": "MLFLOW_TRACKING_URI",
        "optional": False,
    }
    for key in ("MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"], ref["optional"]) == ("mlflow-credentials", key, True)
        assert "value" not in env[key]
    literal = {name for name, e in env.items() if "value" in e}
    assert literal == {"FREIGHTML_MODEL_VERSION"}
    assert env["FREIGHTML_MODEL_VERSION"]["value"] == "7"


def test_restricted_pod_security() -> None:
    """The pod meets the restricted Pod Security profile; only the image's writable paths
    (/tmp and FREIGHTML_HOME, components/Dockerfile) are writable, as emptyDirs."""
    m = manifest()
    predictor = m["spec"]["predictor"]
    # at container level only: Knative refuses a pod-level securityContext by default
    # (issue "A cluster that accepts it"; freightml.cluster.knative)
    assert "securityContext" not in predictor
    assert predictor["automountServiceAccountToken"] is False
    sc = container(m)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == sc["runAsGroup"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(m)["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "home", "mountPath": "/var/lib/freightml"},
    ]
    assert predictor["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "home", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    dockerfile = (Path(__file__).resolve().parents[2] / "components" / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    assert "FREIGHTML_HOME=/var/lib/freightml" in dockerfile


def test_labels_on_the_service_and_its_pods() -> None:
    m = manifest(version="12")
    for labels in (m["metadata"]["labels"], m["spec"]["predictor"]["labels"]):
        assert labels[VERSION_LABEL] == "12"
        assert labels["freightml.io/model-name"] == "freight-volume"
        assert labels["app.kubernetes.io/component"] == "predictor"
        assert labels["app.kubernetes.io/part-of"] == "freightml"
        assert labels["app.kubernetes.io/instance"] == "freight-volume"


def test_settings_reach_the_manifest() -> None:
    m = manifest(
        name="freight-volume-eu",
        namespace="ml",
        image="registry.local/fml:2",
        collector_url="http://collector.ml:8080/events",
        min_replicas=0,
        max_replicas=5,
        mlflow_secret="mlflow-prod",
        service_account="predictor",
    )
    assert (m["metadata"]["name"], m["metadata"]["namespace"]) == ("freight-volume-eu", "ml")
    p = m["spec"]["predictor"]
    assert p["logger"]["url"] == "http://collector.ml:8080/events"
    assert (p["minReplicas"], p["maxReplicas"], p["serviceAccountName"]) == (0, 5, "predictor")
    assert container(m)["image"] == "registry.local/fml:2"
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container(m)["env"] if "valueFrom" in e}
    assert refs == {"mlflow-prod"}
    # the derived collector URL follows the namespace
    assert manifest(namespace="ml")["spec"]["predictor"]["logger"]["url"].startswith(
        "http://freightml-collector.ml.svc.cluster.local/"
    )


def test_the_predictor_entrypoint_accepts_the_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """The container's command line is what `python -m freightml.serving` parses."""
    from freightml.deploy.inference_service import SERVE_COMMAND, SERVED_MODEL_NAME
    from freightml.serving import __main__ as entry
    from freightml.serving import server
    from freightml.serving.predictor import MODEL_NAME

    assert SERVED_MODEL_NAME == MODEL_NAME, "the readiness probe must ask for the served name"
    assert SERVE_COMMAND == ["python", "-m", "freightml.serving"]
    seen: dict[str, Any] = {}
    monkeypatch.setattr(server, "serve", lambda settings, **kwargs: seen.update(kwargs))
    entry.main(container(manifest(history_uri="s3://facts/freight.parquet"))["args"])
    assert (seen["model_uri"], seen["model_version"]) == ("models:/freight-volume/7", "7")
    assert (seen["host"], seen["http_port"]) == ("0.0.0.0", 8080)
    assert seen["history"] == "s3://facts/freight.parquet"
    assert seen["collector_url"] is None, "KServe's logger sends the events, not the predictor"


def test_model_uri_override() -> None:
    isvc = build_inference_service(DeploySettings(), "3", model_uri="s3://models/freight/3")
    args = to_manifest(isvc)["spec"]["predictor"]["containers"][0]["args"]
    assert args[args.index("--model-uri") + 1] == "s3://models/freight/3"


def test_yaml_round_trip_and_service_account() -> None:
    require_crds()
    deploy = DeploySettings()
    text = to_yaml([build_service_account(deploy), build_inference_service(deploy, "7")])
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "InferenceService"]
    assert docs[0]["secrets"] == [{"name": "mlflow-credentials"}]
    for doc in docs:
        validate_object(doc, strict=True)  # built-in kind and custom kind alike


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        (150, "canary_percent must be between 0 and 100, got 150"),
        (-1, "between 0 and 100, got -1"),
        (True, "must be an integer 0-100 or None, got True"),
        ("10", "must be an integer 0-100 or None, got '10'"),
    ],
)
def test_bad_canary_is_named(canary: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_inference_service(DeploySettings(), "7", canary_percent=canary)


@pytest.mark.parametrize("version", ["", "  ", "v 1", "-1", "x" * 64])
def test_bad_version_is_named(version: str) -> None:
    with pytest.raises(ValueError, match="model version .* must be 1-63 letters"):
        build_inference_service(DeploySettings(), version)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image", "", "image"),
        ("image", "has space:1", "image"),
        ("name", "Freight_Volume", "name"),
        ("namespace", "", "namespace"),
        ("cpu_request", "half", "cpu_request"),
        ("min_replicas", -1, "min_replicas"),
        ("bogus", 1, "bogus"),
    ],
)
def test_bad_settings_are_named(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeploySettings(**{field: value})


def test_inconsistent_settings_are_explained() -> None:
    with pytest.raises(ValidationError, match=r"max_replicas \(1\) is below min_replicas \(2\)"):
        DeploySettings(min_replicas=2, max_replicas=1)
    with pytest.raises(ValidationError, match="memory_request 8Gi exceeds memory_limit 4Gi"):
        DeploySettings(memory_request="8Gi")
    with pytest.raises(ValidationError, match="cpu_request 2500m exceeds cpu_limit 2"):
        DeploySettings(cpu_request="2500m")


def test_quantity() -> None:
    assert quantity("500m") == quantity("0.5")
    assert quantity("1Gi") == 2**30
    assert quantity("1G") == 10**9
    assert quantity("1e3") == 1000


def test_deploy_model_dry_run_touches_no_cluster(settings: Settings) -> None:
    m = deploy_model(settings, "4", canary_percent=25, dry_run=True)
    assert m["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert m["metadata"]["labels"][VERSION_LABEL] == "4"
    assert container(m)["args"][container(m)["args"].index("--model-uri") + 1] == (
        f"models:/{settings.tracking.registered_model}/4"
    )


class _FailingClient:
    """Stands in for KServeClient: fails the way it does (RuntimeError over ApiException)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.error = ApiException(status=status, reason=reason)
        self.error.body = json.dumps({"kind": "Status", "message": message})

    def create(self, *args: Any, **kwargs: Any) -> None:
        try:
            raise self.error
        except ApiException as e:
            raise RuntimeError(f"Exception when calling CustomObjectsApi: {e}") from e


def test_api_errors_keep_status_reason_and_message() -> None:
    denied = 'inferenceservices is forbidden: User "x" cannot create'
    client = _FailingClient(403, "Forbidden", denied)
    isvc = build_inference_service(DeploySettings(), "7")
    with pytest.raises(DeployError) as caught:
        apply_inference_service(isvc, client)  # type: ignore[arg-type]
    err = caught.value
    assert (err.status, err.reason) == (403, "Forbidden")
    assert str(err) == (
        "creating InferenceService freightml/freight-volume failed: HTTP 403 Forbidden: "
        'inferenceservices is forbidden: User "x" cannot create'
    )


def test_namespace_must_agree() -> None:
    isvc = build_inference_service(DeploySettings(), "7")
    with pytest.raises(ValueError, match="namespace 'other' differs from .* 'freightml'"):
        apply_inference_service(isvc, object(), namespace="other")  # type: ignore[arg-type]


def test_the_documented_example_is_what_the_builder_makes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    marker = doc.index("<!-- example: build_inference_service")
    block = doc[doc.index("```yaml\n", marker) + len("```yaml\n") :]
    documented = yaml.safe_load(block[: block.index("```")])
    assert documented == manifest(10, version="7"), "re-render the example in docs/deploy.md"


def test_no_kubeconfig_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(DeployError, match="no Kubernetes configuration .*: set KUBECONFIG"):
        deploy_model(Settings(), "3")
