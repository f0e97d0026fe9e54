"""compute.submit operator: the feature build as a SparkApplication of the Kubeflow Spark
Operator. The application is checked against the vendored CRD (unknown fields refused) and
FreightML's pod policy (restricted Pod Security); it is submitted to kmock's API server and
waited for; a stand-in for the operator starts the driver as the driver pod does
(components/spark-entrypoint.sh in driver mode: spark-submit with the application's main
file, arguments and Spark settings, master local[2]), and writes the application's state
as the operator does."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kubernetes import client as k8s

from freightml.cluster.policy import check_objects
from freightml.cluster.schemas import ManifestError, validate_object
from freightml.compute import read_examples, training_examples
from freightml.compute.application import (
    GROUP,
    MAIN_FILE,
    PLURAL,
    VERSION,
    SparkApplicationFailed,
    run_application,
    spark_application,
)
from freightml.compute_settings import ComputeSettings
from freightml.config import Settings
from freightml.data.synthetic import generate
from freightml.stages.features import build_features_on_operator, planned_feature_kwargs
from kmock_server import SPARK_RESOURCE, KMockCluster

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "components" / "spark-entrypoint.sh"
NAMESPACE = "kubeflow"
OPERATOR = ComputeSettings(
    engine="spark", submit="operator", spark_namespace=NAMESPACE, shards=4, executors=3
)


def _api(cluster: KMockCluster) -> k8s.CustomObjectsApi:
    configuration = k8s.Configuration()
    configuration.host = cluster.url
    return k8s.CustomObjectsApi(k8s.ApiClient(configuration))


def _application(**kw: Any) -> dict[str, Any]:
    return spark_application(
        "features",
        ["--settings", "{}", "--facts", "s3://b/facts", "--out", "s3://b/out"],
        OPERATOR,
        image="ghcr.io/freightml/freightml:0.1.0-abc",
        namespace=NAMESPACE,
        name="freightml-features-test",
        **kw,
    )


def test_the_application_matches_the_crd_and_the_restricted_profile() -> None:
    app = _application(object_store_endpoint="http://minio.kubeflow:9000")
    validate_object(app)
    findings = [f for f in check_objects([app]) if f.rule != "network-policy"]
    assert findings == [], findings
    spec = app["spec"]
    assert spec["mainApplicationFile"] == MAIN_FILE
    assert Path(REPO, MAIN_FILE.removeprefix("local:///app/")).is_file()
    assert spec["executor"]["instances"] == 3 and spec["arguments"][0] == "features"
    env = {e["name"]: e for e in spec["driver"]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        "mlpipeline-minio-artifact"
    )
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.kubeflow:9000"


def test_a_broken_application_is_refused_by_the_checks() -> None:
    misspelt = _application()
    misspelt["spec"]["executor"]["instance"] = 3
    with pytest.raises(ManifestError, match="instance"):
        validate_object(misspelt)
    privileged = _application()
    del privileged["spec"]["executor"]["securityContext"]
    rules = {f.rule for f in check_objects([privileged])}
    assert {"pod-security-privilege-escalation", "pod-security-capabilities"} <= rules


def _set_state(api: k8s.CustomObjectsApi, name: str, state: str, message: str = "") -> None:
    body = {"status": {"applicationState": {"state": state, "errorMessage": message}}}
    api.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name, body)


def test_the_wait_follows_the_operator_to_completed_or_failed() -> None:
    with KMockCluster() as cluster:
        api = _api(cluster)
        app = _application()
        name = app["metadata"]["name"]
        timers = [
            threading.Timer(0.2, _set_state, (api, name, "SUBMITTED")),
            threading.Timer(0.5, _set_state, (api, name, "RUNNING")),
            threading.Timer(0.8, _set_state, (api, name, "COMPLETED")),
        ]
        for t in timers:
            t.start()
        seen: list[str] = []
        status = run_application(
            api, app, timeout_seconds=30, poll_seconds=0.05, progress=seen.append
        )
        assert status["applicationState"]["state"] == "COMPLETED"
        assert [s.split(": ")[-1] for s in seen[1:]] == ["NEW", "SUBMITTED", "RUNNING", "COMPLETED"]

        failed = copy.deepcopy(app)
        failed["metadata"]["name"] = "freightml-features-failed"
        threading.Timer(
            0.3, _set_state, (api, "freightml-features-failed", "FAILED", "OOMKilled")
        ).start()
        with pytest.raises(SparkApplicationFailed, match="FAILED: OOMKilled"):
            run_application(api, failed, timeout_seconds=30, poll_seconds=0.05)

        stuck = copy.deepcopy(app)
        stuck["metadata"]["name"] = "freightml-features-stuck"
        with pytest.raises(TimeoutError, match="still NEW"):
            run_application(api, stuck, timeout_seconds=0.3, poll_seconds=0.05)
        with pytest.raises(k8s.ApiException) as gone:
            api.get_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, "freightml-features-stuck"
            )
        assert gone.value.status == 404


class StandInOperator(threading.Thread):
    """What the Spark Operator does with a new SparkApplication, on this machine: start
    the driver as its pod would (the image's entrypoint in driver mode, which runs
    spark-submit, with the application's Spark settings as the properties file, its main
    file (the repository's copy of the image's) and arguments, master local[2]), and
    record the state it ends in."""

    def __init__(self, api: k8s.CustomObjectsApi, workdir: Path) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.workdir = workdir
        self.submitted: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            apps = self.api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
            for app in apps["items"]:
                if not (app.get("status") or {}).get("applicationState"):
                    self._run(app)
            time.sleep(0.1)

    def _run(self, app: dict[str, Any]) -> None:
        name, spec = app["metadata"]["name"], app["spec"]
        self.submitted.append(app)
        _set_state(self.api, name, "RUNNING")
        # the driver pod: the image's entrypoint in driver mode with Spark's properties file
        conf = {**spec["sparkConf"], "spark.master": "local[2]", "spark.app.name": name}
        properties = Path(self.workdir, f"{name}.properties")
        properties.write_text("".join(f"{k} {v}\n" for k, v in conf.items()))
        main = REPO / spec["mainApplicationFile"].removeprefix("local:///app/")
        python = Path(sys.executable).parent
        env = {
            **os.environ,
            "PATH": f"{python}{os.pathsep}{os.environ['PATH']}",
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1",
            "TMPDIR": str(self.workdir),
        }
        done = subprocess.run(
            [str(ENTRYPOINT), "driver", "--properties-file", str(properties),
             "--class", "org.apache.spark.deploy.PythonRunner", f"local://{main}",
             *spec["arguments"]],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
        )  # fmt: skip
        if done.returncode == 0:
            _set_state(self.api, name, "COMPLETED")
        else:  # the operator reports the driver's exit; the log's tail helps the test
            tail = (done.stdout + done.stderr)[-3000:]
            message = f"driver container failed with ExitCode: {done.returncode}\n{tail}"
            _set_state(self.api, name, "FAILED", message)


@dataclass
class Operated:
    """kmock's API server with a stand-in operator watching it."""

    cluster: KMockCluster
    api: k8s.CustomObjectsApi
    operator: StandInOperator


@pytest.fixture
def operated(tmp_path: Path) -> Iterator[Operated]:
    with KMockCluster() as cluster:
        api = _api(cluster)
        operator = StandInOperator(api, tmp_path)
        operator.start()
        try:
            yield Operated(cluster, api, operator)
        finally:
            operator.stop.set()


@pytest.fixture
def facts_file(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    facts = generate("small", seed=5)
    facts.to_parquet(tmp_path / "facts.parquet", index=False)
    return facts, tmp_path / "facts.parquet"


@pytest.mark.slow
def test_the_feature_build_runs_as_a_spark_application(
    operated: Operated, facts_file: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    """The KFP component's path: submit, wait, and the Spark tasks' examples at the output
    URI equal the pandas build's."""
    facts, facts_path = facts_file
    settings = Settings().model_copy(update={"compute": OPERATOR})
    out = tmp_path / "features"
    info = build_features_on_operator(
        settings, str(facts_path), str(out), api=operated.api, poll_seconds=0.2
    )
    (app,) = operated.operator.submitted
    stored = operated.cluster.stored(SPARK_RESOURCE, NAMESPACE, app["metadata"]["name"])
    assert stored["status"]["applicationState"]["state"] == "COMPLETED"
    validate_object({k: v for k, v in stored.items() if k != "status"})
    kw = planned_feature_kwargs(settings, facts)
    expected = training_examples(
        facts, ComputeSettings(), seed=settings.model.params.get("random_state", 0), **kw
    )
    assert info.rows == len(expected)
    pd.testing.assert_frame_equal(expected, read_examples(out), check_exact=True)
    assert "--staging" in app["spec"]["arguments"]
    assert not Path(f"{out}.shards").exists()  # the facts' shards went with the run


def test_a_failed_application_fails_the_step_with_the_operators_message(
    operated: Operated, tmp_path: Path
) -> None:
    settings = Settings().model_copy(update={"compute": OPERATOR})
    with pytest.raises(
        SparkApplicationFailed,
        match="(?s)FAILED: driver container failed with ExitCode: 1.*missing.parquet",
    ):
        build_features_on_operator(
            settings,
            str(tmp_path / "missing.parquet"),
            str(tmp_path / "out"),
            api=operated.api,
            poll_seconds=0.2,
        )


@pytest.mark.slow
def test_batch_scoring_runs_as_a_spark_application(
    operated: Operated, facts_file: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    """The score_batch task's path: the champion goes to the object store, the application
    forecasts every active series shard by shard, and the forecasts equal pandas'."""
    from freightml.features.build import build_examples
    from freightml.models import make_model
    from freightml.stages.score import active_facts, forecast_facts, forecasts_on_operator

    facts, facts_path = facts_file
    model = make_model("gbm", {"max_iter": 20}).fit(build_examples(facts, horizons_per_origin=7))
    settings = Settings().model_copy(update={"compute": OPERATOR})
    out = tmp_path / "forecasts"
    scored, digest = forecasts_on_operator(
        settings, str(facts_path), model, str(out), api=operated.api, poll_seconds=0.2
    )
    (app,) = operated.operator.submitted
    assert app["spec"]["arguments"][0] == "scoring"
    assert app["metadata"]["labels"]["app.kubernetes.io/component"] == "spark-scoring"
    expected = forecast_facts(Settings(), active_facts(facts), model)
    assert (scored.origin_date, scored.n_series) == (expected.origin_date, expected.n_series)
    pd.testing.assert_frame_equal(expected.forecasts, scored.forecasts, check_exact=True)
    assert len(digest) == 64 and not Path(f"{out}.shards").exists()
