"""Prometheus metrics of the predictor, in the default registry that KServe's /metrics serves.

KServe already exports per-stage latency histograms (``request_predict_seconds`` ...); these
add what only the predictor knows: rows forecast, outcomes, the model version being served,
reloads, the freshness of the history window, micro-batch sizes and CloudEvent delivery.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

FORECASTS = Counter(
    "freightml_serving_forecasts",
    "Forecast rows (series-days) answered",
    ["model_name", "protocol"],
)
REQUESTS = Counter(
    "freightml_serving_requests",
    "Inference requests by protocol and outcome (ok, bad_request, error)",
    ["model_name", "protocol", "outcome"],
)
MODEL_INFO = Gauge(
    "freightml_serving_model_info",
    "1 for the registered model version being served",
    ["model_name", "version"],
)
RELOADS = Counter(
    "freightml_serving_model_reloads",
    "Champion reload attempts by outcome (success, failure)",
    ["model_name", "outcome"],
)
HISTORY_LAST_DATE = Gauge(
    "freightml_serving_history_last_date_seconds",
    "Last fact date in the warm history window (the forecast origin), Unix seconds",
    ["model_name"],
)
HISTORY_REFRESHES = Counter(
    "freightml_serving_history_refreshes",
    "History refreshes by outcome (updated, unchanged, failure)",
    ["model_name", "outcome"],
)
BATCH_ROWS = Histogram(
    "freightml_serving_batch_rows",
    "Rows per model call after micro-batching",
    ["model_name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192),
)
BATCH_REQUESTS = Histogram(
    "freightml_serving_batch_requests",
    "Requests merged into one model call",
    ["model_name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
CLOUDEVENTS = Counter(
    "freightml_serving_cloudevents",
    "Payload-log CloudEvents by outcome (sent, failed, dropped)",
    ["model_name", "outcome"],
)


def set_model_version(model_name: str, version: str, previous: str | None = None) -> None:
    """Point the info gauge at ``version`` (and retire the previous label set)."""
    if previous is not None and previous != version:
        with contextlib.suppress(KeyError):
            MODEL_INFO.remove(model_name, previous)
    MODEL_INFO.labels(model_name=model_name, version=version).set(1)
