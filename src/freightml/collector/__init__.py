"""Collector: the HTTP intake of KServe payload-log CloudEvents and facts into the store of
record (freightml.store).

``create_app`` is the HTTP service, ``InferenceStore`` the collector's table family (events
and inferences), ``ingest_facts_file`` and ``serve_collector`` the command-line entry points.
Names are imported on first use, so ``freightml.collector.events`` stays light for senders.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "REQUEST_TYPE": "events",
    "RESPONSE_TYPE": "events",
    "BadEventError": "events",
    "InferenceEvent": "events",
    "event_from_http": "events",
    "ForecastBody": "payloads",
    "ForecastBodyError": "payloads",
    "parse_forecast_body": "payloads",
    "InferenceStore": "inferences",
    "FactsRejected": "intake",
    "create_app": "app",
    "ingest_facts_file": "service",
    "serve_collector": "service",
    "store_url_for": "service",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"freightml.collector.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'freightml.collector' has no attribute {name!r}")
