"""The FreightML Grafana dashboard, built in code with grafana-foundation-sdk.

``python -m freightml.cluster.dashboard`` (or ``make dashboards``) writes it to
helm/freightml-monitoring/files/dashboard.json; a test regenerates it and fails when the
committed file is not current. Every query reads metrics the predictor (KServe's
ModelServer /metrics) or the collector (/metrics, with the snapshot gauges of
freightml.monitoring.exporter) export. grafana-foundation-sdk comes with the ``tools``
extra (freightml.cluster): import this module only to regenerate the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, statushistory, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

UID = "freightml-monitoring"
OUTPUT = Path("helm/freightml-monitoring/files/dashboard.json")
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
HTTP = "freightml_serving_http_request_duration_seconds"
COLLECTOR_HTTP = "freightml_collector_request_duration_seconds"


def _query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)


def _steps(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


def _timeseries(title: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(12)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def _stat(title: str, unit: str, query: prometheus.Dataquery, steps: db.ThresholdsConfig) -> Any:
    return (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .with_target(query)
        .thresholds(steps)
        .height(5)
        .span(6)
    )


def build() -> model.Dashboard:
    """The dashboard: serving (requests, latency, errors, model, history age), collector
    errors, and the latest monitoring snapshot (drift by segment, WAPE, status, facts)."""
    status_map = model.ValueMap(
        {
            "0": model.ValueMappingResult(text="green", color="green", index=0),
            "1": model.ValueMappingResult(text="amber", color="orange", index=1),
            "2": model.ValueMappingResult(text="red", color="red", index=2),
        }
    )
    builder = (
        db.Dashboard("FreightML: serving and monitoring")
        .uid(UID)
        .tags(["freightml"])
        .time("now-7d", "now")
        .refresh("1m")
        .timezone("utc")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(db.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_row(db.Row("Serving"))
        .with_panel(
            _timeseries(
                "Inference requests by protocol and status",
                "reqps",
                _query(
                    f"sum by (protocol, code) (rate({HTTP}_count[5m]))", "{{protocol}} {{code}}"
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Inference latency p50 / p99",
                "s",
                _query(
                    f"histogram_quantile(0.5, sum by (le, protocol) (rate({HTTP}_bucket[5m])))",
                    "p50 {{protocol}}",
                ),
                _query(
                    f"histogram_quantile(0.99, sum by (le, protocol) (rate({HTTP}_bucket[5m])))",
                    "p99 {{protocol}}",
                    "B",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Errors: 5xx share (predictor, collector) and rejected requests",
                "percentunit",
                _query(
                    f'sum(rate({HTTP}_count{{code=~"5.."}}[5m])) / sum(rate({HTTP}_count[5m]))',
                    "predictor 5xx share",
                ),
                _query(
                    f'sum(rate({COLLECTOR_HTTP}_count{{code=~"5.."}}[5m]))'
                    f" / sum(rate({COLLECTOR_HTTP}_count[5m]))",
                    "collector 5xx share",
                    "B",
                ),
                _query(
                    'sum(rate(freightml_serving_requests_total{outcome!="ok"}[5m]))'
                    " / sum(rate(freightml_serving_requests_total[5m]))",
                    "predictor bad_request + error share",
                    "C",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Model version served",
                "none",
                _query(
                    "max by (model_name, version) (freightml_serving_model_info)", "v{{version}}"
                ),
            )
        )
        .with_panel(
            _stat(
                "History window age (serving)",
                "s",
                _query("max(freightml_serving_history_age_seconds)", "age"),
                _steps((None, "green"), (3 * 86400, "orange"), (4 * 86400, "red")),
            )
        )
        .with_panel(
            _stat(
                "Facts age at the last snapshot",
                "d",
                _query("max(freightml_facts_age_days)", "days"),
                _steps((None, "green"), (3, "red")),
            )
        )
        .with_panel(
            _stat(
                "Stale series share",
                "percentunit",
                _query("max(freightml_stale_series_share)", "share"),
                _steps((None, "green"), (0.2, "red")),
            )
        )
        .with_panel(
            _stat(
                "Snapshot age",
                "s",
                _query("time() - max(freightml_monitoring_snapshot_timestamp_seconds)", "age"),
                _steps((None, "green"), (2 * 86400, "red")),
            )
        )
        .with_row(db.Row("Monitoring snapshot"))
        .with_panel(
            statushistory.Panel()
            .title("Drift heatmap: share of drifted feature statistics by segment")
            .description(
                "avg of freightml_feature_drifted per segment (facts window); a segment drifts "
                "when the share reaches drift.drifted_feature_share (0.5)"
            )
            .datasource(DATASOURCE)
            .with_target(
                _query(
                    'avg by (segment) (freightml_feature_drifted{source="facts"})', "{{segment}}"
                )
            )
            .unit("percentunit")
            .min(0)
            .max(1)
            .thresholds(_steps((None, "green"), (0.25, "orange"), (0.5, "red")))
            .height(8)
            .span(12)
        )
        .with_panel(
            statushistory.Panel()
            .title("Segment status")
            .datasource(DATASOURCE)
            .with_target(_query("max by (segment) (freightml_segment_status)", "{{segment}}"))
            .mappings([status_map])
            .thresholds(_steps((None, "green"), (1, "orange"), (2, "red")))
            .height(8)
            .span(12)
        )
        .with_panel(
            _timeseries(
                "Realised vs expected WAPE per segment (1-7 days ahead)",
                "percentunit",
                _query(
                    'max by (segment) (freightml_realised_wape{horizon_bucket="1-7"})',
                    "{{segment}} realised",
                ),
                _query(
                    'max by (segment) (freightml_expected_wape{horizon_bucket="1-7"})',
                    "{{segment}} expected",
                    "B",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Monitoring alerts by kind",
                "none",
                _query("sum by (kind) (freightml_monitoring_alerts)", "{{kind}}"),
            )
        )
    )
    return builder.build()


def render() -> str:
    """The dashboard as the JSON text committed in the chart (stable key order)."""
    data = json.loads(json.dumps(build(), cls=JSONEncoder))
    for number, panel in enumerate(data["panels"], start=1):
        panel["id"] = number  # the SDK leaves 0 on every panel; Grafana wants them unique
        if panel.get("options", {}) is None:  # the SDK writes null for panels without options
            del panel["options"]
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard's panels."""
    return [
        target["expr"]
        for panel in dashboard.get("panels", [])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def main(argv: list[str] | None = None) -> None:
    """Write the dashboard to ``argv[0]`` (default helm/freightml-monitoring/files/...)."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else OUTPUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
