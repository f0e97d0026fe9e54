"""The alert rules and the dashboard under helm/freightml-monitoring/files/.

The PrometheusRule validates against the vendored Prometheus Operator CRD, every PromQL
expression (rules and dashboard targets) parses, the committed dashboard is what the
generator writes, and every metric an expression reads is really exported: a real
predictor (KServe ModelServer in a subprocess, after one request) and a real collector app
(with a snapshot) are scraped over HTTP.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from freightml.collector.app import create_app
from freightml.data.sources import save_facts
from freightml.data.synthetic import generate
from freightml.domain import MODEL_NAME, SERIES_KEY
from freightml.features.build import build_examples
from freightml.models import make_model
from helpers import (
    REPO,
    free_port,
    fresh_store,
    running,
    sample_snapshot,
    save_model,
    uvicorn_in_thread,
)
from k8s_schemas import validate_object

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FILES = REPO / "helm" / "freightml-monitoring" / "files"
RULES = FILES / "prometheus-rules.yaml"
DASHBOARD = FILES / "dashboard.json"
# Series Prometheus makes itself, not exported by any FreightML process
BUILT_IN = {
    "up",  # scrape health of every target
}


def rule_expressions() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {
        rule["alert"]: rule["expr"] for group in doc["spec"]["groups"] for rule in group["rules"]
    }


def dashboard_expressions() -> list[str]:
    from freightml.cluster.dashboard import expressions

    return expressions(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def all_expressions() -> list[str]:
    return [*rule_expressions().values(), *dashboard_expressions()]


def selectors(expr: str) -> list[tuple[str, list[str]]]:
    """(metric name, matched label names) of every vector selector in ``expr``."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            labels = [m.name for m in node.matchers.matchers if m.name != "__name__"]
            found.append((node.name, labels))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_rules_validate_against_the_prometheus_operator_crd() -> None:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    validate_object(doc)  # raises naming every bad field; a missing CRD is an error too
    rules = [r for g in doc["spec"]["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {
        "FreightFeatureDrift",
        "FreightQualityDegraded",
        "FreightFactsStale",
        "FreightPredictorNoRequests",
        "FreightPredictorErrorRate",
        "FreightPredictorLatencyP99",
        "FreightPredictorNotReady",
    }
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    for name in ("FreightFeatureDrift", "FreightQualityDegraded"):
        (rule,) = [r for r in rules if r["alert"] == name]
        assert "{{ $labels.segment }}" in rule["annotations"]["summary"]
        assert "segment" in rule["expr"]


def test_the_crd_check_rejects_a_bad_rule() -> None:
    from k8s_schemas import ManifestError

    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    doc["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"  # not a duration
    with pytest.raises(ManifestError, match="for"):
        validate_object(doc)


def test_every_expression_parses() -> None:
    expressions = all_expressions()
    assert len(dashboard_expressions()) >= 10
    for expr in expressions:
        promql_parser.parse(expr)  # raises on a syntax error
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (le (rate(x[5m]))")


def test_committed_dashboard_is_current() -> None:
    from freightml.cluster.dashboard import OUTPUT, render

    assert REPO / OUTPUT == DASHBOARD
    assert DASHBOARD.read_text(encoding="utf-8") == render(), (
        "helm/freightml-monitoring/files/dashboard.json is out of date: run `make dashboards`"
    )


def _samples(text: str) -> dict[str, set[str]]:
    """Sample name (as PromQL sees it: _total, _bucket, ...) -> label names seen on it."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """What a real predictor (after one request) and a real collector with a snapshot
    export on /metrics, merged."""
    tmp = tmp_path_factory.mktemp("monitoring-rules")
    facts = generate("small")
    model = make_model("gbm", {"max_iter": 10}).fit(build_examples(facts, horizons_per_origin=7))
    save_model(model, tmp / "model")
    save_facts(facts, tmp / "facts.parquet")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "freightml.serving",
        "--listen-port",
        str(port),
        "--model-dir",
        str(tmp / "model"),
        "--model-version",
        "2",
        "--history",
        str(tmp / "facts.parquet"),
        "--reload-seconds",
        "0",
        "--history-seconds",
        "0",
    ]
    origin, destination, cargo = facts[list(SERIES_KEY)].astype(str).iloc[0]
    body = {
        "instances": [
            {
                "origin_station": origin,
                "destination_station": destination,
                "cargo_type": cargo,
                "horizon": 1,
            }
        ]
    }
    env = {"FREIGHTML_HOME": str(tmp / "home")}
    store = fresh_store("sqlite", tmp)
    try:
        with uvicorn_in_thread(create_app(store, snapshots=sample_snapshot)) as base:
            assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
            # the predictor logs its payloads to this collector (its spool gauges too)
            events = [*command, "--collector-url", f"{base}/events"]
            with running(events, f"{url}/v1/models/{MODEL_NAME}", tmp / "server.log", env=env):
                answer = httpx.post(f"{url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=30)
                assert answer.status_code == 200, answer.text
                predictor = _samples(httpx.get(f"{url}/metrics", timeout=30).text)
            collector = _samples(httpx.get(f"{base}/metrics", timeout=30).text)
    finally:
        store.close()
    merged = dict(predictor)
    for name, labels in collector.items():
        merged.setdefault(name, set()).update(labels)
    yield merged


def test_every_metric_in_the_expressions_is_exported(exported: dict[str, set[str]]) -> None:
    used = [sel for expr in all_expressions() for sel in selectors(expr)]
    assert len({name for name, _ in used}) >= 15
    missing = sorted({n for n, _ in used if n not in exported and n not in BUILT_IN})
    assert not missing, f"not exported by the predictor or the collector: {missing}"
    for name, labels in used:
        if name in BUILT_IN:
            continue
        unknown = set(labels) - exported[name]
        assert not unknown, f"{name} has no label {sorted(unknown)}"


def test_the_name_check_catches_a_missing_metric(exported: dict[str, set[str]]) -> None:
    (name, _), *_ = selectors("rate(freightml_serving_http_request_duration_seconds[5m])")
    assert name not in exported  # a histogram is only readable as _bucket/_count/_sum
    assert "freightml_serving_http_request_duration_seconds_bucket" in exported
