"""Prometheus metrics of the predictor, in the default registry that KServe's /metrics serves.

KServe already exports per-stage latency histograms (``request_predict_seconds`` ...),
labelled by model only; these add what only the predictor knows: rows forecast, outcomes,
the model version being served, reloads, the freshness of the history window, micro-batch
sizes and CloudEvent delivery, and (:class:`HttpMetrics`, an ASGI middleware) the latency of
every inference call by protocol and HTTP status, which KServe does not record.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp

from freightml.timing import ResponseTimer

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
HISTORY_AGE = Gauge(
    "freightml_serving_history_age_seconds",
    "Seconds since the last fact date of the warm history window, computed at scrape time",
    ["model_name"],
)
HTTP_LATENCY = Histogram(
    "freightml_serving_http_request_duration_seconds",
    "Inference calls (V1 :predict, V2 /infer) from the first byte in to the answer, by "
    "protocol and HTTP status code; _count by code gives requests and errors",
    ["model_name", "protocol", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
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
    "Payload-log CloudEvents by outcome (sent, retried, spooled, dropped)",
    ["model_name", "outcome"],
)
TOO_LARGE = Counter(
    "freightml_serving_too_large_requests",
    "Requests refused with 413: their body was over serving.max_request_bytes",
    ["model_name"],
)
SPOOL_BYTES = Gauge(
    "freightml_serving_spool_bytes",
    "Payload-log batches waiting on disk for the collector, bytes",
    ["model_name"],
)
SPOOL_LIMIT_BYTES = Gauge(
    "freightml_serving_spool_limit_bytes",
    "The payload-log spool's size limit, bytes (serving.spool_max_bytes)",
    ["model_name"],
)


def set_model_version(model_name: str, version: str, previous: str | None = None) -> None:
    """Point the info gauge at ``version`` (and retire the previous label set)."""
    if previous is not None and previous != version:
        with contextlib.suppress(KeyError):
            MODEL_INFO.remove(model_name, previous)
    MODEL_INFO.labels(model_name=model_name, version=version).set(1)


def watch_history_age(model_name: str, last_date_seconds: Callable[[], float | None]) -> None:
    """Make the history-age gauge read ``now - last_date_seconds()`` at every scrape (NaN
    while there is no window), so it keeps growing when refreshes stop."""

    def age() -> float:
        last = last_date_seconds()
        return float("nan") if last is None else time.time() - last

    HISTORY_AGE.labels(model_name=model_name).set_function(age)


# the inference routes of KServe's REST server, and their protocol; other paths (health,
# metadata, /metrics) are not counted
_INFERENCE_PATHS = (
    (re.compile(r"^/v1/models/[^/]+:predict$"), "v1"),
    (re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$"), "v2"),
)


def inference_protocol(path: str) -> str | None:
    """``"v1"`` or ``"v2"`` for an inference route of the model server, else None."""
    for pattern, protocol in _INFERENCE_PATHS:
        if pattern.match(path):
            return protocol
    return None


class HttpMetrics(ResponseTimer):
    """ASGI middleware: each inference call's latency and status into ``HTTP_LATENCY``.

    Unlike ``freightml_serving_requests_total`` it also sees the calls KServe answers
    itself (malformed bodies, unknown model names: 400/404) and the status actually sent.
    The labels stay bounded: ``model_name`` is the served model (not the name in the path),
    ``protocol`` is v1 or v2, ``code`` an HTTP status; an exception that escapes is 500.
    """

    def __init__(self, app: ASGIApp, model_name: str) -> None:
        super().__init__(
            app,
            select=lambda scope: inference_protocol(scope.get("path", "")),
            observe=lambda protocol, status, seconds: HTTP_LATENCY.labels(
                model_name, protocol, str(status)
            ).observe(seconds),
        )
