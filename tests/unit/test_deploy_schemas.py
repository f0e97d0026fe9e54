"""The manifest validator (tests/k8s_schemas.py): it catches what the API server would."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import k8s_schemas
from freightml.deploy import DeploySettings
from freightml.deploy.inference_service import build_inference_service, to_manifest
from k8s_schemas import ManifestError, require_crds, to_jsonschema, validate_object

pytestmark = [pytest.mark.unit]


@pytest.fixture
def isvc() -> dict[str, Any]:
    require_crds()
    return to_manifest(build_inference_service(DeploySettings(), "7", canary_percent=10))


def test_wrong_logger_mode_names_the_field(isvc: dict[str, Any]) -> None:
    isvc["spec"]["predictor"]["logger"]["mode"] = "everything"
    with pytest.raises(ManifestError) as caught:
        validate_object(isvc)
    message = str(caught.value)
    assert "InferenceService freightml/freight-volume is invalid" in message
    assert (
        "spec.predictor.logger.mode: 'everything' is not one of ['all', 'request', 'response']"
        in message
    )


def test_wrong_type_names_the_field(isvc: dict[str, Any]) -> None:
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    expected = r"spec.predictor.canaryTrafficPercent: 'ten' is not of type 'integer'"
    with pytest.raises(ManifestError, match=expected):
        validate_object(isvc)


def test_unknown_field_fails_only_in_strict_mode(isvc: dict[str, Any]) -> None:
    isvc["spec"]["predictor"]["containers"][0]["portz"] = [{"containerPort": 8080}]
    validate_object(copy.deepcopy(isvc), strict=False)
    expected = r"spec.predictor.containers\[0\]: Additional properties .*'portz'"
    with pytest.raises(ManifestError, match=expected):
        validate_object(isvc, strict=True)


def test_every_error_is_reported(isvc: dict[str, Any]) -> None:
    isvc["spec"]["predictor"]["logger"]["mode"] = "everything"
    isvc["spec"]["predictor"]["minReplicas"] = "one"
    with pytest.raises(ManifestError) as caught:
        validate_object(isvc)
    assert "logger.mode" in str(caught.value) and "minReplicas" in str(caught.value)


def test_metadata_is_checked(isvc: dict[str, Any]) -> None:
    isvc["metadata"]["labels"]["freightml.io/model-version"] = "seven point one"
    with pytest.raises(ManifestError, match="'seven point one' is not a valid label value"):
        validate_object(isvc)
    del isvc["metadata"]["name"]
    with pytest.raises(ManifestError, match="metadata.name: is required"):
        validate_object(isvc)


def test_other_vendored_kinds() -> None:
    require_crds()
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "freightml", "namespace": "freightml"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "Down", "expr": "up == 0"}]}]},
    }
    validate_object(rule)
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    expected = r"spec.groups\[0\].rules\[0\]: 'expr' is a required property"
    with pytest.raises(ManifestError, match=expected):
        validate_object(rule)


def test_builtin_kinds_use_kubernetes_validate() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "collector"},
        "spec": {
            "replicas": "two",
            "selector": {"matchLabels": {"app": "c"}},
            "template": {
                "metadata": {"labels": {"app": "c"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    expected = r"Deployment collector is invalid:\n  spec.replicas: 'two'"
    with pytest.raises(ManifestError, match=expected):
        validate_object(deployment)
    deployment["spec"]["replicas"] = 2
    validate_object(deployment)


def test_unknown_kind_is_an_error_not_a_pass() -> None:
    thing = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    expected = "no schema for example.com/v1 Gadget: not a built-in kind"
    with pytest.raises(ManifestError, match=expected):
        validate_object(thing)
    with pytest.raises(ManifestError, match="not a Kubernetes object"):
        validate_object({"metadata": {"name": "x"}})


def test_kubernetes_extensions_are_translated() -> None:
    schema = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "note": {"type": "string", "nullable": True},
            "free": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    }
    loose = jsonschema.Draft202012Validator(to_jsonschema(schema))
    strict = jsonschema.Draft202012Validator(to_jsonschema(schema, strict=True))
    assert "x-kubernetes-int-or-string" in schema["properties"]["port"], "input left untouched"
    for ok in ({"port": 80}, {"port": "http"}, {"note": None}, {"free": {"a": "x", "b": 1}}):
        assert loose.is_valid(ok) and strict.is_valid(ok), ok
    assert not loose.is_valid({"port": 1.5})
    assert loose.is_valid({"extra": 1}) and not strict.is_valid({"extra": 1})


def test_missing_crds_fail_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"CRDs not found at .*nowhere: custom kinds"):
        require_crds(tmp_path / "nowhere")
    thing = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "x"},
    }
    with pytest.raises(ManifestError, match=r"CRDs not found at .*nowhere"):
        validate_object(thing, crds=tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.yaml").write_text("kind: ConfigMap\n")
    with pytest.raises(ManifestError, match="no CRD for it in .*empty"):
        validate_object(thing, crds=empty)


def test_every_vendored_crd_is_listed_in_its_readme() -> None:
    """crds/README.md names the upstream tag of every file; a new file must be listed."""
    readme = (k8s_schemas.CRDS / "README.md").read_text()
    files = sorted(
        p.relative_to(k8s_schemas.CRDS).as_posix() for p in k8s_schemas.CRDS.rglob("*.yaml")
    )
    assert files, "no CRDs vendored"
    assert [f for f in files if f"| {f} |" not in readme] == []
    # copied verbatim: each file's sha256 is the one recorded at copy time
    for f in files:
        digest = hashlib.sha256((k8s_schemas.CRDS / f).read_bytes()).hexdigest()
        assert f"{digest} {f}" in readme, f"{f} differs from the upstream copy in the README"
