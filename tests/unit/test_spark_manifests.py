"""manifests/spark: what FreightML's SparkApplications need in the pipelines' namespace,
validated like every other rendering, and together with a SparkApplication the build
writes: every object matches its schema and FreightML's policy holds (restricted pods, a
NetworkPolicy selecting the Spark pods, RBAC without wildcards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from freightml.cluster.policy import check_objects
from freightml.cluster.render import render_kustomize
from freightml.cluster.schemas import validate_objects
from freightml.compute.application import spark_application
from freightml.compute_settings import ComputeSettings

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render_kustomize(REPO / "manifests" / "spark")


def _application(compute: ComputeSettings) -> dict:
    return spark_application(
        "features", ["--facts", "s3://b/f"], compute, image="ghcr.io/freightml/freightml:1-a",
        namespace="kubeflow",
    )  # fmt: skip


def test_the_spark_manifests_are_valid_and_hold_with_an_application(objects: list[dict]) -> None:
    compute = ComputeSettings(engine="spark", submit="operator")
    app = _application(compute)
    assert validate_objects([*objects, app]) == len(objects) + 1
    assert check_objects([*objects, app]) == []
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("ServiceAccount", compute.spark_service_account) in kinds
    assert app["spec"]["driver"]["serviceAccount"] == compute.spark_service_account
    submitter = next(o for o in objects if o["metadata"]["name"] == "freightml-spark-submitter"
                     and o["kind"] == "Role")  # fmt: skip
    assert submitter["rules"][0]["resources"] == ["sparkapplications"]


def test_an_application_of_another_step_is_not_let_through(objects: list[dict]) -> None:
    """The NetworkPolicy names the Spark steps' pods; a step it does not name has none."""
    app = _application(ComputeSettings(engine="spark", submit="operator"))
    app["spec"]["driver"]["labels"] = {"app.kubernetes.io/component": "spark-selection"}
    rules = {f.rule for f in check_objects([*objects, app])}
    assert rules == {"network-policy"}
