"""The Helm charts under helm/, rendered offline with helm-python-sdk (no helm binary, no
cluster): strict lint, the values schema, every object against the Kubernetes schemas or the
vendored CRDs, and the project's policies (restricted Pod Security, requests and limits,
probes, no inline secret, pinned images, a NetworkPolicy for every workload)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from freightml.image import IMAGE
from k8s_schemas import ManifestError, validate_object

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / "helm"
CHARTS = sorted(p.parent.name for p in HELM.glob("*/Chart.yaml"))
CASES = [(c, f.name) for c in CHARTS for f in sorted((HELM / c / "ci").glob("*-values.yaml"))]
KUBE = "v1.31.0"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
RUN_TO_COMPLETION = {"Job", "CronJob"}
MONITORING_FILES = HELM / "freightml-monitoring" / "files"


def _values(chart: str, ci: str) -> dict[str, Any]:
    return yaml.safe_load((HELM / chart / "ci" / ci).read_text()) or {}


def render(chart: str, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders (NOTES.txt left out)."""
    with helm.Chart.load(str(HELM / chart)) as ch:
        out = ch.render(values=values or {}, name="rel", namespace="ml")
    objs = []
    for name, text in sorted(out.items()):
        if name.endswith(".yaml"):
            objs += [d for d in yaml.safe_load_all(text) if d]
    return objs


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def _containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    pod = _pod_spec(obj)["spec"]
    for c in pod.get("initContainers", []):
        yield "init", c
    for c in pod["containers"]:
        yield "main", c


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {(c, ci): render(c, _values(c, ci)) for c, ci in CASES}


def test_there_are_two_charts_with_ci_values():
    assert CHARTS == ["freightml-monitoring", "freightml-tracking"]
    for chart in CHARTS:
        names = [ci for c, ci in CASES if c == chart]
        assert "default-values.yaml" in names and len(names) >= 4, names


@pytest.mark.parametrize(("chart", "ci"), CASES)
def test_lint_strict_has_no_warnings_or_errors(chart, ci):
    report = helm.lint(str(HELM / chart), strict=True, kube_version=KUBE, values=_values(chart, ci))
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not serious, serious
    assert not report["errors"], report["errors"]


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_metadata_and_dependencies(chart):
    meta = yaml.safe_load((HELM / chart / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == project["version"]
    assert meta["kubeVersion"].startswith(">=1.")
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    deps = helm.dependency_list(str(HELM / chart))
    assert all(d["status"] in ("ok", "unpacked") for d in deps), deps
    assert not meta.get("dependencies"), "no subcharts: the charts write their own objects"


def test_mlflow_image_is_the_version_in_uv_lock():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    mlflow = next(p["version"] for p in lock["package"] if p["name"] == "mlflow")
    values = yaml.safe_load((HELM / "freightml-tracking" / "values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/mlflow/mlflow"
    assert values["image"]["tag"] == f"v{mlflow}-full"


@pytest.mark.parametrize(
    ("chart", "bad", "named"),
    [
        ("freightml-tracking", {"replicas": 2}, "additional properties 'replicas'"),
        ("freightml-tracking", {"server": {"port": "5000"}}, "/server/port"),
        ("freightml-tracking", {"artifacts": {"type": "gcs"}}, "/artifacts/type"),
        ("freightml-tracking", {"backendStore": {"type": "sqlite"}}, "/backendStore/type"),
        ("freightml-tracking", {"image": {"tag": "latest"}}, "/image/tag"),
        ("freightml-tracking", {"auth": {"defaultPermission": "ALL"}}, "/auth/defaultPermission"),
        (
            "freightml-monitoring",
            {"collector": {"replicas": 1}},
            "additional properties 'replicas'",
        ),
        ("freightml-monitoring", {"monitor": {"enabled": "yes"}}, "/monitor/enabled"),
        ("freightml-monitoring", {"monitor": {"schedule": "daily"}}, "/monitor/schedule"),
        ("freightml-monitoring", {"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        (
            "freightml-monitoring",
            {"prometheus": {"predictor": {"selector": {"app": "not a label!"}}}},
            "/prometheus/predictor/selector/app",
        ),
    ],
)
def test_schema_rejects_bad_values_naming_the_key(chart, bad, named):
    with helm.Chart.load(str(HELM / chart)) as ch:
        ch.validate_schema({})  # the defaults pass
        with pytest.raises(helm.HelmValuesError) as err:
            ch.validate_schema(bad)
    assert named in str(err.value), str(err.value)


@pytest.mark.parametrize("chart", CHARTS)
def test_every_object_level_is_strict_in_the_schema(chart):
    schema = json.loads((HELM / chart / "values.schema.json").read_text())

    def walk(node: dict[str, Any], where: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{where} is not strict"
            for key, sub in node["properties"].items():
                walk(sub, f"{where}.{key}")

    walk(schema, "<values>")


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        ("freightml-tracking", {"backendStore": {"type": "external"}}, "existingSecret"),
        ("freightml-tracking", {"artifacts": {"type": "s3"}}, "artifacts.s3.bucket"),
        ("freightml-tracking", {"replicaCount": 2}, "replicaCount > 1"),
        ("freightml-tracking", {"auth": {"enabled": True}}, "auth.existingSecret"),
        (
            "freightml-tracking",
            {"serviceMonitor": {"enabled": True}, "server": {"metrics": False}},
            "server.metrics",
        ),
    ],
)
def test_inconsistent_values_fail_with_a_message(chart, values, message):
    with pytest.raises(helm.HelmError) as err:
        render(chart, values)
    assert message in str(err.value)


@pytest.mark.parametrize(("chart", "ci"), CASES)
def test_rendered_objects_match_their_schemas(rendered, chart, ci):
    objs = rendered[chart, ci]
    assert objs
    for obj in objs:
        validate_object(obj)  # built-in kinds strict, ServiceMonitor/PrometheusRule via CRDs
        assert obj["metadata"]["namespace"] == "ml", obj["metadata"]["name"]


def test_a_kind_without_schema_is_an_error():
    with pytest.raises(ManifestError, match="no schema"):
        validate_object(
            {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
        )


def test_a_broken_custom_object_is_caught():
    monitor = next(
        o
        for o in render(
            "freightml-monitoring", _values("freightml-monitoring", "servicemonitor-values.yaml")
        )
        if o["kind"] == "ServiceMonitor"
    )
    del monitor["spec"]["selector"]
    with pytest.raises(ManifestError, match="selector"):
        validate_object(monitor)


@pytest.mark.parametrize(("chart", "ci"), CASES)
def test_pod_security_resources_and_probes(rendered, chart, ci):
    workloads = [o for o in rendered[chart, ci] if o["kind"] in WORKLOADS]
    assert workloads
    for obj in workloads:
        where = f"{obj['kind']} {obj['metadata']['name']}"
        pod = _pod_spec(obj)["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] > 0, where
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        for kind, c in _containers(obj):
            at = f"{where} container {c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, at
            assert sc["readOnlyRootFilesystem"] is True, at
            assert sc["runAsNonRoot"] is True, at
            assert sc["capabilities"]["drop"] == ["ALL"], at
            assert not sc["capabilities"].get("add"), at
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", at
            assert not sc.get("privileged"), at
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), f"{at}: {part}"
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{at}: {image} has no tag"
            assert not image.endswith((":latest", ":latest-full")), at
            # run-to-completion Job/CronJob containers and init containers get no probes:
            # nothing routes traffic to them and a restart would not help
            if kind == "main" and obj["kind"] not in RUN_TO_COMPLETION:
                assert {"readinessProbe", "livenessProbe"} <= set(c), f"{at}: probes"
        # every writable path is a volume: the root filesystem stays read-only
        mounts = {m["mountPath"] for _, c in _containers(obj) for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts, where


# a URL with a password in it, even a $(VAR) reference: the value would sit in the URL
_LITERAL_CREDENTIAL = re.compile(r"://[^/@:\s]+:[^/@\s]+@")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL", re.I)


@pytest.mark.parametrize(("chart", "ci"), CASES)
def test_no_secret_value_inline(rendered, chart, ci):
    for obj in rendered[chart, ci]:
        assert obj["kind"] != "Secret", "the charts reference existing Secrets, never make one"
        if obj["kind"] not in WORKLOADS:
            continue
        for _, c in _containers(obj):
            for env in c.get("env", []):
                if "value" in env:
                    # a path to a mounted Secret (FREIGHTML_COLLECTOR__TOKENS_DIR) is no secret
                    is_path = env["name"].endswith(("_DIR", "_FILE", "_PATH")) and env[
                        "value"
                    ].startswith("/")
                    assert is_path or not _SECRET_NAME.search(env["name"]), env
                    assert not _LITERAL_CREDENTIAL.search(env["value"]), env
                else:
                    assert "secretKeyRef" in env["valueFrom"] or "fieldRef" in env["valueFrom"]
            assert not c.get("args") or not any(_LITERAL_CREDENTIAL.search(a) for a in c["args"])


def test_the_credential_check_catches_a_literal_password():
    assert _LITERAL_CREDENTIAL.search("postgresql://mlflow:hunter2@db:5432/mlflow")
    assert not _LITERAL_CREDENTIAL.search("postgresql+psycopg2://mlflow@db:5432/mlflow")


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


@pytest.mark.parametrize(("chart", "ci"), CASES)
def test_a_network_policy_selects_every_workload(rendered, chart, ci):
    objs = rendered[chart, ci]
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    for obj in (o for o in objs if o["kind"] in WORKLOADS):
        labels = _pod_spec(obj)["metadata"]["labels"]
        chosen = [p for p in policies if _selects(p, labels)]
        assert chosen, f"no NetworkPolicy selects {obj['kind']} {obj['metadata']['name']}"
        for policy in chosen:
            assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_selector_labels_carry_no_chart_version():
    for chart in CHARTS:
        for obj in render(chart):
            selector = (obj.get("spec") or {}).get("selector")
            if obj["kind"] in {"Deployment", "StatefulSet"}:
                assert "helm.sh/chart" not in selector["matchLabels"]
                assert "app.kubernetes.io/version" not in selector["matchLabels"]


# -- freightml-tracking ---------------------------------------------------------------


def _by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def test_external_store_migrates_in_a_pre_install_pre_upgrade_hook():
    objs = render(
        "freightml-tracking", _values("freightml-tracking", "postgres-external-values.yaml")
    )
    (job,) = _by_kind(objs, "Job")
    notes = job["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in notes["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mlflow", "db", "upgrade", "$(MLFLOW_BACKEND_STORE_URI)"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-backend-store",
        "key": "uri",
    }
    # the hook's own NetworkPolicy is an earlier hook, so a default-deny namespace lets it out
    hook_policies = [
        p
        for p in _by_kind(objs, "NetworkPolicy")
        if "helm.sh/hook" in p["metadata"].get("annotations", {})
    ]
    assert hook_policies and int(
        hook_policies[0]["metadata"]["annotations"]["helm.sh/hook-weight"]
    ) < int(notes["helm.sh/hook-weight"])
    assert not _by_kind(objs, "StatefulSet")
    # the server itself does not migrate (the hook did)
    (deploy,) = _by_kind(objs, "Deployment")
    assert "initContainers" not in deploy["spec"]["template"]["spec"]


def test_bundled_store_is_a_postgres_statefulset_and_migrates_in_an_init_container():
    objs = render("freightml-tracking")
    assert not _by_kind(objs, "Job"), "no hook: the bundled database does not exist before install"
    (sts,) = _by_kind(objs, "StatefulSet")
    (pg,) = sts["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"docker\.io/library/postgres:\d+\.\d+-bookworm", pg["image"])
    env = {e["name"]: e for e in pg["env"]}
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    assert (
        env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        == "freightml-tracking-postgres"
    )
    assert {m["mountPath"] for m in pg["volumeMounts"]} == {
        "/var/lib/postgresql/data",
        "/var/run/postgresql",
        "/tmp",
    }
    assert sts["spec"]["template"]["spec"]["securityContext"]["fsGroup"] >= 10000
    (deploy,) = _by_kind(objs, "Deployment")
    (init,) = deploy["spec"]["template"]["spec"]["initContainers"]
    assert init["command"][:3] == ["mlflow", "db", "upgrade"]
    # the server's driver gets the password as PGPASSWORD, never inside the URL
    server_env = {e["name"]: e for e in _server(objs)["env"]}
    assert server_env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "freightml-tracking-postgres",
        "key": "password",
    }
    uri = server_env["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert uri == "postgresql+psycopg2://mlflow@rel-freightml-tracking-postgresql:5432/mlflow"


def _server(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (deploy,) = _by_kind(objs, "Deployment")
    return next(
        c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow"
    )


def _arg(container: dict[str, Any], flag: str) -> str | None:
    for arg in container["args"]:
        if arg == flag:
            return ""
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def test_artifacts_pvc_is_proxied_from_a_claim():
    objs = render("freightml-tracking")
    server = _server(objs)
    assert _arg(server, "--serve-artifacts") == ""
    assert _arg(server, "--artifacts-destination") == "/mlartifacts"
    (pvc,) = _by_kind(objs, "PersistentVolumeClaim")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_artifacts_s3_from_an_existing_secret():
    objs = render("freightml-tracking", _values("freightml-tracking", "s3-values.yaml"))
    server = _server(objs)
    assert _arg(server, "--artifacts-destination") == "s3://freightml-artifacts/mlflow"
    env = {e["name"]: e for e in server["env"]}
    for key in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-s3", key
    assert env["MLFLOW_S3_ENDPOINT_URL"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert not _by_kind(objs, "PersistentVolumeClaim")
    direct = _server(
        render("freightml-tracking", _values("freightml-tracking", "s3-direct-values.yaml"))
    )
    assert _arg(direct, "--no-serve-artifacts") == ""
    assert _arg(direct, "--default-artifact-root") == "s3://freightml-artifacts/mlflow"


def test_allowed_hosts_cover_the_service_and_the_ingress_host():
    objs = render("freightml-tracking", _values("freightml-tracking", "ingress-auth-values.yaml"))
    hosts = _arg(_server(objs), "--allowed-hosts").split(",")
    (svc,) = [
        s for s in _by_kind(objs, "Service") if s["metadata"]["name"] == "rel-freightml-tracking"
    ]
    name = svc["metadata"]["name"]
    for host in (
        name,
        f"{name}.ml",
        f"{name}.ml.svc.cluster.local",
        f"{name}.ml.svc.cluster.local:5000",
    ):
        assert host in hosts
    (ingress,) = _by_kind(objs, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] in hosts
    assert "*" not in hosts


def test_basic_auth_takes_credentials_from_the_secret():
    objs = render("freightml-tracking", _values("freightml-tracking", "ingress-auth-values.yaml"))
    server = _server(objs)
    assert _arg(server, "--app-name") == "basic-auth"
    env = {e["name"]: e for e in server["env"]}
    for key in (
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-basic-auth", key
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow-auth/basic_auth.ini"
    (deploy,) = _by_kind(objs, "Deployment")
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert volumes["auth-config"]["emptyDir"]["medium"] == "Memory"


def test_tracking_service_monitor_scrapes_the_metrics_port():
    objs = render("freightml-tracking", _values("freightml-tracking", "servicemonitor-values.yaml"))
    (monitor,) = _by_kind(objs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "monitoring"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert _arg(_server(objs), "--expose-prometheus") == "/tmp/metrics"
    assert "basicAuth" not in monitor["spec"]["endpoints"][0]
    # with basic auth on, /metrics needs credentials too: taken from the auth Secret
    values = {
        **_values("freightml-tracking", "ingress-auth-values.yaml"),
        "serviceMonitor": {"enabled": True},
    }
    (monitor,) = _by_kind(render("freightml-tracking", values), "ServiceMonitor")
    auth = monitor["spec"]["endpoints"][0]["basicAuth"]
    assert auth["username"] == {"name": "mlflow-basic-auth", "key": "admin-username"}
    assert auth["password"] == {"name": "mlflow-basic-auth", "key": "admin-password"}
    validate_object(monitor)


# -- freightml-monitoring -------------------------------------------------------------


def test_collector_serves_from_the_image_with_the_store_from_a_secret():
    from freightml.config import DeploySettings
    from freightml.domain import STORE_SECRET, STORE_URL_KEY

    objs = render("freightml-monitoring")
    (deploy,) = _by_kind(objs, "Deployment")
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    assert c["image"] == IMAGE  # the one reference a release pins (freightml.image)
    assert c["command"][:3] == ["freightml", "collector", "serve"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FREIGHTML_STORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": STORE_SECRET,
        "key": STORE_URL_KEY,
    }
    assert env["FREIGHTML_COLLECTOR__HOST"]["value"] == "0.0.0.0"
    assert env["FREIGHTML_HOME"]["value"] == "/var/lib/freightml"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    # the Service is where `freightml deploy` points KServe's payload logger
    (svc,) = _by_kind(objs, "Service")
    url = DeploySettings(namespace="ml").logger_url
    port = svc["spec"]["ports"][0]["port"]
    assert url == f"http://{svc['metadata']['name']}.ml.svc.cluster.local/events" and port == 80


def test_collector_takes_its_tokens_from_a_secret_and_admits_only_labelled_pods():
    from freightml.config import CollectorSettings

    clients = [
        {"podLabels": {"serving.kserve.io/inferenceservice": "freight-volume"}},
        {"podLabels": {"freightml.io/collector-client": "true"}, "namespaces": ["monitoring"]},
    ]
    objs = render("freightml-monitoring", {"networkPolicy": {"clients": clients}})
    (deploy,) = _by_kind(objs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["collector-tokens"]["mountPath"] == env["FREIGHTML_COLLECTOR__TOKENS_DIR"]
    assert mounts["collector-tokens"]["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "collector-tokens")
    assert volume["secret"]["secretName"] == "freightml-collector-tokens"
    # the settings read the environment as the chart writes it
    parsed = CollectorSettings.model_validate_json(
        '{"open_scopes": ' + env["FREIGHTML_COLLECTOR__OPEN_SCOPES"] + "}"
    )
    assert parsed.open_scopes == ["events"]
    collector_policy = next(
        p for p in _by_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("collector")
    )
    sources = collector_policy["spec"]["ingress"][0]["from"]
    assert {} not in [s.get("podSelector") for s in sources]  # no pod of the namespace at large
    assert all(s["podSelector"]["matchLabels"] for s in sources)
    labels = [s["podSelector"]["matchLabels"] for s in sources]
    assert {"serving.kserve.io/inferenceservice": "freight-volume"} in labels
    assert {"freightml.io/collector-client": "true"} in labels
    by_namespace = [s for s in sources if "namespaceSelector" in s]
    assert by_namespace == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"freightml.io/collector-client": "true"}},
        }
    ]  # a namespace is only ever admitted together with pod labels


def test_no_clients_means_no_ingress_and_stores_are_reached_by_address():
    """An empty client list admits nobody (an empty `from` would admit everyone); the
    database is reached on its CIDRs and port, a public S3 endpoint on HTTPS only."""
    objs = render("freightml-monitoring", {"networkPolicy": {"clients": []}})
    collector = next(
        p for p in _by_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("collector")
    )
    assert "ingress" not in collector["spec"] and "Ingress" in collector["spec"]["policyTypes"]
    jobs = next(
        p for p in _by_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("jobs")
    )
    blocks = [
        (peer["ipBlock"]["cidr"], tuple(p["port"] for p in rule["ports"]))
        for rule in jobs["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    ]
    assert ("10.0.0.0/8", (5432,)) in blocks and ("0.0.0.0/0", (443,)) in blocks
    assert all(ports == (443,) for cidr, ports in blocks if cidr == "0.0.0.0/0")


def test_monitor_cronjob_runs_freightml_monitor_run(tmp_path):
    objs = render(
        "freightml-monitoring", _values("freightml-monitoring", "settings-thresholds-values.yaml")
    )
    (cron,) = _by_kind(objs, "CronJob")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"][:3] == ["freightml", "monitor", "run"]
    assert "--fail-on-alert" in c["command"]
    assert c["command"][c["command"].index("--window-days") + 1] == "14"
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-credentials"
    assert env["FREIGHTML_MONITORING_PATH"]["value"] == "/etc/freightml-monitoring/monitoring.yaml"
    assert env["FREIGHTML_CONFIG"]["value"] == "/etc/freightml/freightml.yaml"
    maps = {m["metadata"]["name"]: m for m in _by_kind(objs, "ConfigMap")}
    settings = yaml.safe_load(maps["rel-freightml-monitoring-settings"]["data"]["freightml.yaml"])
    assert settings == {"tracking": {"registered_model": "freight-volume"}}
    from freightml.config import Settings
    from freightml.monitoring.config import load_monitoring_config

    Settings(**settings)  # the settings the chart mounts are valid FreightML settings
    thresholds = maps["rel-freightml-monitoring-thresholds"]["data"]["monitoring.yaml"]
    (tmp_path / "monitoring.yaml").write_text(thresholds)
    # the thresholds the chart mounts load as the monitor will load them
    assert load_monitoring_config(tmp_path / "monitoring.yaml").window_days == 14


def test_retraining_is_off_by_default_and_runs_retrain_run_with_today():
    assert not [
        o for o in render("freightml-monitoring") if o["metadata"]["name"].endswith("-retrain")
    ]
    objs = render("freightml-monitoring", _values("freightml-monitoring", "retraining-values.yaml"))
    (cron,) = [o for o in _by_kind(objs, "CronJob") if o["metadata"]["name"].endswith("-retrain")]
    (c,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["command"][:2] == ["sh", "-c"]
    assert c["command"][2].startswith('exec freightml retrain run --as-of "$(date -u +%Y-%m-%d)"')


def _rules_jobs() -> set[str]:
    text = (MONITORING_FILES / "prometheus-rules.yaml").read_text()
    return set(re.findall(r'job="([^"]+)"', text))


def _scrape_jobs(monitors: list[dict[str, Any]]) -> set[str]:
    return {
        r["replacement"]
        for m in monitors
        for e in m["spec"].get("endpoints", []) + m["spec"].get("podMetricsEndpoints", [])
        for r in e["relabelings"]
        if r["targetLabel"] == "job"
    }


def test_monitors_set_the_jobs_the_rules_use():
    objs = render(
        "freightml-monitoring", _values("freightml-monitoring", "servicemonitor-values.yaml")
    )
    monitors = _by_kind(objs, "ServiceMonitor") + _by_kind(objs, "PodMonitor")
    assert _scrape_jobs(monitors) == _rules_jobs() == {"freightml-collector", "freightml-predictor"}
    # the predictor: a PodMonitor on KServe's pod label and the container's HTTP port,
    # past the payload-logger agent (a scrape must not become an inference event)
    (predictor,) = _by_kind(objs, "PodMonitor")
    assert predictor["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "freight-volume"
    }
    assert predictor["spec"]["namespaceSelector"]["matchNames"] == ["freightml-serving"]
    from freightml.deploy.inference_service import HTTP_PORT

    assert predictor["spec"]["podMetricsEndpoints"][0]["portNumber"] == HTTP_PORT
    assert all(m["metadata"]["labels"]["release"] == "monitoring" for m in monitors)


def test_predictor_service_monitor_needs_a_port_name():
    objs = render(
        "freightml-monitoring",
        _values("freightml-monitoring", "predictor-servicemonitor-values.yaml"),
    )
    assert not _by_kind(objs, "PodMonitor")
    monitors = _by_kind(objs, "ServiceMonitor")
    assert _scrape_jobs(monitors) == {"freightml-collector", "freightml-predictor"}
    (predictor,) = [m for m in monitors if m["metadata"]["name"].endswith("-predictor")]
    assert predictor["spec"]["endpoints"][0]["port"] == "http"
    with pytest.raises(helm.HelmError, match="servicePortName"):
        render(
            "freightml-monitoring",
            {
                "prometheus": {
                    "serviceMonitors": {"enabled": True},
                    "predictor": {"kind": "ServiceMonitor"},
                }
            },
        )


def test_rules_and_dashboard_come_from_files_unchanged():
    objs = render(
        "freightml-monitoring", _values("freightml-monitoring", "rules-dashboard-values.yaml")
    )
    (rule,) = _by_kind(objs, "PrometheusRule")
    shipped = yaml.safe_load((MONITORING_FILES / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == shipped["spec"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (dashboard,) = [
        m for m in _by_kind(objs, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert (
        dashboard["data"]["freightml-monitoring.json"]
        == (MONITORING_FILES / "dashboard.json").read_text()
    )
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "FreightML"


def test_prometheus_objects_are_off_by_default():
    kinds = {o["kind"] for o in render("freightml-monitoring")}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert "ServiceMonitor" not in {o["kind"] for o in render("freightml-tracking")}


# -- policy scanner ---------------------------------------------------------------------


@pytest.mark.slow
def test_checkov_finds_nothing_beyond_the_justified_skips(rendered, tmp_path):
    """checkov (its own locked project, tools/checkov) over every rendered case, with the
    repository's .checkov.yaml: every skip there carries a justification."""
    config = REPO / ".checkov.yaml"
    lines = config.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s+- CKV_", line):
            inline = re.search(r"CKV_\S+\s+#\s*\S", line)
            above = lines[i - 1].strip().startswith("# ")
            assert inline or above, f"{line.strip()} has no justification"
    for (chart, ci), objs in rendered.items():
        folder = tmp_path / chart
        folder.mkdir(exist_ok=True)
        (folder / ci).write_text(yaml.safe_dump_all(objs, sort_keys=False))
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to run checkov (tools/checkov); install it: make install"
    result = subprocess.run(
        [uv, "run", "--project", str(REPO / "tools" / "checkov"), "--frozen", "checkov",
         "--config-file", str(config), "-d", str(tmp_path), "--output", "json"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert result.stdout.strip(), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    passed = sum(r["summary"]["passed"] for r in reports)
    assert not failed, "\n".join(failed)
    assert passed > 500, passed  # it really scanned the objects
    assert result.returncode == 0, result.stderr[-2000:]


# -- documentation ----------------------------------------------------------------------


def test_readme_values_tables_are_current_and_every_value_documented():
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    try:
        import helm_docs
    finally:
        sys.path.remove(str(REPO / "tools"))
    for chart in CHARTS:
        readme = HELM / chart / "README.md"
        values = helm_docs.documented_values(HELM / chart / "values.yaml")  # raises if undocumented
        assert len(values) > 20
        assert (
            helm_docs.render_readme(readme, HELM / chart / "values.yaml") == readme.read_text()
        ), f"{readme} is out of date: run `make helm-docs`"
        for v in values:
            assert f"`{v.path}`" in readme.read_text()


def test_helm_docs_reports_an_undocumented_key(tmp_path):
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    try:
        import helm_docs
    finally:
        sys.path.remove(str(REPO / "tools"))
    values = tmp_path / "values.yaml"
    values.write_text("# -- documented\na: 1\nb:\n  # -- fine\n  c: 2\n  d: 3\n")
    with pytest.raises(helm_docs.UndocumentedValues, match=r"b\.d"):
        helm_docs.documented_values(values)


def test_auth_config_written_by_the_init_container_is_read_by_mlflow(tmp_path, monkeypatch):
    # mlflow.server.auth's package needs Flask-WTF (the -full image has it, the dev venv
    # does not): load only its config module, which reads basic_auth.ini
    import importlib.util

    import mlflow

    path = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("mlflow_auth_config", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    read_auth_config = module.read_auth_config

    objs = render("freightml-tracking", _values("freightml-tracking", "ingress-auth-values.yaml"))
    (deploy,) = _by_kind(objs, "Deployment")
    init = next(
        c
        for c in deploy["spec"]["template"]["spec"]["initContainers"]
        if c["name"] == "auth-config"
    )
    (mount,) = init["volumeMounts"]
    script = init["command"][2].replace(mount["mountPath"], str(tmp_path))
    uri = "postgresql+psycopg2://mlflow:s3cr%40t@db:5432/mlflow"
    env = {"PATH": os.environ["PATH"], "DEFAULT_PERMISSION": "READ", "AUTH_DATABASE_URI": uri}
    subprocess.run([*init["command"][:2], script], env=env, check=True, timeout=30)
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(tmp_path / "basic_auth.ini"))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "pw")
    config = read_auth_config()
    assert config.database_uri == uri
    assert config.default_permission == "READ"
    assert config.admin_username == "admin"
    assert (tmp_path / "basic_auth.ini").stat().st_mode & 0o077 == 0  # umask 077


def test_one_monitor_cronjob_per_serving_environment():
    envs = ["freightml-dev", "freightml-prod"]
    objs = render("freightml-monitoring", {"monitor": {"environments": envs}})
    crons = {c["metadata"]["name"].split("-monitor-")[1]: c for c in _by_kind(objs, "CronJob")}
    assert set(crons) == set(envs)
    for env in envs:
        cron = crons[env]
        (c,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert c["command"][c["command"].index("--environment") + 1] == env
        assert cron["metadata"]["labels"]["freightml.io/environment"] == env
    # without environments: one CronJob judging every environment's traffic together
    (single,) = _by_kind(render("freightml-monitoring"), "CronJob")
    assert (
        "--environment"
        not in single["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    )
