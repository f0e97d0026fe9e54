"""Knative's field masks (freightml.cluster.knative): the pod fields its webhook refuses
with default feature flags, checked on what FreightML renders and deploys."""

from __future__ import annotations

import copy

import pytest

from freightml.cluster.knative import refusals
from freightml.config import DeploySettings
from freightml.deploy.inference_service import build_inference_service, to_manifest

pytestmark = pytest.mark.unit


def isvc() -> dict:
    return to_manifest(build_inference_service(DeploySettings(), "3", canary_percent=10))


def test_the_inference_service_freightml_builds_passes_knatives_masks() -> None:
    assert refusals(isvc()) == []
    assert refusals({"kind": "Deployment", "spec": {"securityContext": {}}}) == []


def test_a_pod_level_security_context_is_refused_by_default() -> None:
    """What the base manifest set before (issue "A cluster that accepts it", critical row):
    the InferenceService would never become Ready."""
    doc = isvc()
    doc["spec"]["predictor"]["securityContext"] = {"runAsNonRoot": True, "fsGroup": 10001}
    assert refusals(doc) == [
        "pod spec field securityContext: needs the feature flag "
        "kubernetes.podspec-securitycontext, off by default"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.update(nodeSelector={"a": "b"}), "kubernetes.podspec-nodeselector"),
        (lambda p: p.update(restartPolicy="Always"), "pod spec field restartPolicy: not in"),
        (lambda p: p.update(automountServiceAccountToken=True), "may only be set to false"),
        (
            lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
            "kubernetes.podspec-volumes-hostpath",
        ),
        (
            lambda p: p["containers"][0].update(lifecycle={"preStop": {}}),
            "field lifecycle is not in Knative's container mask",
        ),
        (
            lambda p: p["containers"][0]["securityContext"].update(privileged=True),
            "privileged may only be false",
        ),
        (
            lambda p: p["containers"][0]["securityContext"].update(procMount="Default"),
            "securityContext.procMount is not in Knative's mask",
        ),
        (
            lambda p: p["containers"][0]["securityContext"]["capabilities"].update(
                add=["NET_ADMIN"]
            ),
            "capabilities.add needs a feature flag",
        ),
        (
            lambda p: p["containers"][0]["volumeMounts"][0].update(
                mountPropagation="HostToContainer"
            ),
            "mountPropagation is not in the mask",
        ),
        (
            lambda p: p["containers"][0]["env"].append(
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ),
            "kubernetes.podspec-fieldref",
        ),
    ],
)
def test_each_masked_field_is_named(change, expected: str) -> None:
    doc = copy.deepcopy(isvc())
    change(doc["spec"]["predictor"])
    found = refusals(doc)
    assert len(found) == 1 and expected in found[0], found
