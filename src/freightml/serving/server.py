"""Run the predictor in a ``kserve.ModelServer`` (the embedded default, and the container).

``serve(settings, ...)`` loads the model and the history, then blocks serving KServe's V1
and V2 REST endpoints, /metrics and the health routes until SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.exceptions import FastAPIDeprecationWarning, RequestValidationError
from fastapi.responses import JSONResponse

import freightml._kserve  # noqa: F401  (before any kserve import: see freightml/_kserve.py)
from freightml.body_limit import BodyLimit
from freightml.config import Settings
from freightml.features.build import LOOKBACK_DAYS
from freightml.features.window import FactsLike, HistorySource, WindowRules
from freightml.serving.events import CloudEventSender
from freightml.serving.metrics import TOO_LARGE, HttpMetrics
from freightml.serving.model_source import LocalModel, RegistryModel
from freightml.serving.spool import EventSpool
from freightml.store import Store

log = logging.getLogger("freightml.serving")


def default_history(settings: Settings) -> FactsLike:
    """``serving.history_uri`` if set, else the collector's store (``Store.facts.frame``)."""
    if settings.serving.history_uri:
        return settings.serving.history_uri

    return Store(settings.collector_store_url).facts.frame


def build_predictor(
    settings: Settings,
    *,
    model_uri: str | None = None,
    model_dir: str | Path | None = None,
    model_version: str | None = None,
    history: FactsLike | None = None,
    collector_url: str | None = None,
    reload_seconds: float | None = None,
    history_seconds: float | None = None,
    window_days: int = LOOKBACK_DAYS,
    namespace: str = "default",
    source_uri: str = "http://localhost:8080/",
    tuning: Any = None,
    freeze_gc: bool = False,
) -> Any:
    """A FreightPredictor (not loaded yet); None arguments come from ``settings.serving``.

    The model is ``model_dir`` (an MLflow model directory, e.g. /mnt/models) if given, else
    ``model_uri``, else ``serving.model_uri``, else ``models:/<registered model>@champion``
    in the configured tracking store. ``history`` is a facts file/URI, a DataFrame or a
    callable returning one; default: ``default_history``. Payload-log CloudEvents go to
    ``collector_url`` when given (the embedded default passes the collector's
    ``collector_events_url``; on a cluster KServe's logger sends them instead). Seconds of 0
    disable a poll.
    """
    from freightml.serving.predictor import MODEL_NAME, FreightPredictor  # noqa: PLC0415

    cfg = settings.serving
    if model_dir is not None:
        source: Any = LocalModel(model_dir, version=model_version)
    else:
        uri = model_uri or cfg.model_uri or settings.champion_uri
        if uri.startswith("models:/"):
            source = RegistryModel.from_uri(uri, settings.tracking_uri)
        else:
            source = LocalModel(uri, version=model_version)
    events = None
    if collector_url:
        events = CloudEventSender(
            collector_url,
            inference_service=MODEL_NAME,
            namespace=namespace,
            source=source_uri,
            token=settings.collector_token,
            spool=EventSpool(
                cfg.spool_dir or settings.home / "spool",
                cfg.spool_max_bytes,
                name=MODEL_NAME,
            ),
        )
    return FreightPredictor(
        source,
        HistorySource(
            history if history is not None else default_history(settings),
            column_mapping=settings.data.column_mapping or None,
        ),
        window_days=window_days,
        reload_seconds=cfg.reload_seconds if reload_seconds is None else reload_seconds,
        history_seconds=cfg.history_seconds if history_seconds is None else history_seconds,
        events=events,
        tuning=tuning,
        freeze_gc=freeze_gc,
        holiday_country=settings.features.holiday_country,
        known_cargo_types=settings.data.known_cargo_types,
        wagon_quantile=cfg.wagon_quantile,
        rules=WindowRules(cfg.origin_quorum, cfg.min_history_days),
        stale_seconds=cfg.history_stale_seconds,
    )


class _OneLineClientErrors(logging.Filter):
    """KServe logs every 400/404 with a full traceback; a client's mistake is one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from kserve.errors import InvalidInput, ModelNotFound

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, InvalidInput | ModelNotFound):
            status = "bad request (400)" if isinstance(exc, InvalidInput) else "not found (404)"
            record.msg, record.args = f"{status}: %s", (exc,)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _quiet_request_logs(log_requests: bool) -> None:
    """KServe logs ~6 lines per request by default; keep errors and lifecycle lines."""

    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    logging.getLogger("kserve").addFilter(_OneLineClientErrors())
    if not log_requests:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per CloudEvents batch


def _bad_request_for_invalid_v2_bodies() -> None:
    """FastAPI rejects a V2 body that is not an InferenceRequest with 422; say 400 + why."""
    from kserve.model_server import app

    async def handler(_request: Any, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": v2_body_problem(exc.errors())})

    app.add_exception_handler(RequestValidationError, handler)


def _count_inference_calls(model_name: str) -> None:
    """Time every V1/V2 inference call by protocol and status (serving.metrics.HttpMetrics)."""
    from kserve.model_server import app

    app.add_middleware(HttpMetrics, model_name=model_name)


def _limit_request_bodies(model_name: str, max_bytes: int) -> None:
    """413 for a body over ``serving.max_request_bytes``, before KServe reads any of it."""
    from kserve.model_server import app

    counter = TOO_LARGE.labels(model_name)
    app.add_middleware(
        BodyLimit, max_bytes=max_bytes, setting="serving.max_request_bytes", on_reject=counter.inc
    )


def v2_body_problem(errors: Sequence[Any]) -> str:
    """One readable line from FastAPI's validation errors of a V2 body."""
    for e in errors:
        if e.get("type") == "json_invalid":
            where = e.get("loc", ("body", "?"))[-1]
            return f"the request body is not JSON (error at character {where})"
    problems = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "InferenceRequest")]
        if loc[:1] == ["bytes"]:  # the raw-bytes alternative of the body: not informative
            continue
        problems.append(f"{'.'.join(loc) or 'body'}: {e.get('msg')}")
    detail = "; ".join(problems[:5]) or "not an Open Inference Protocol request"
    return f"invalid V2 inference request: {detail}"


def _log_to_stderr() -> None:
    """Give freightml's log lines a handler when the host program configured none."""
    logger = logging.getLogger("freightml")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s.%(msecs)03d %(process)s %(name)s %(levelname)s %(message)s",
            "%Y-%m-%d %H:%M:%S",
        )
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


class RepositoryChangeRefused(RuntimeError):
    """A client asked to load or unload a model; this server serves one fixed model."""


REPOSITORY_REFUSAL = (
    "{action} of model {name!r} is refused: this server serves one model and changes it only "
    "by itself (the registry alias is polled); restart or roll out the InferenceService to "
    "change what it serves"
)


def _refuse_repository_changes(server: Any) -> None:
    """Replace KServe's model-repository extension with one that refuses load and unload.

    KServe exposes ``POST /v2/repository/models/{name}/load`` and ``/unload`` without any
    authentication; an unload takes the model down for good (load cannot restore a custom
    model) while liveness still passes. Both answer 403 with the reason instead; the index
    (``/v2/repository/index``) stays.
    """
    from kserve.model_server import app
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension

    class ReadOnlyRepository(ModelRepositoryExtension):
        async def load(self, model_name: str) -> None:
            raise RepositoryChangeRefused(
                REPOSITORY_REFUSAL.format(action="loading", name=model_name)
            )

        async def unload(self, model_name: str) -> None:
            raise RepositoryChangeRefused(
                REPOSITORY_REFUSAL.format(action="unloading", name=model_name)
            )

    async def refused(_request: Any, exc: RepositoryChangeRefused) -> JSONResponse:
        log.warning("%s", exc)
        return JSONResponse(status_code=403, content={"error": str(exc)})

    server.model_repository_extension = ReadOnlyRepository(model_registry=server.registered_models)
    app.add_exception_handler(RepositoryChangeRefused, refused)


def _model_server(host: str, http_port: int, **kwargs: Any) -> Any:
    from kserve import ModelServer

    class LocalModelServer(ModelServer):
        """ModelServer whose REST server binds ``host`` (KServe always binds 0.0.0.0) and
        that refuses the model-repository extension's load and unload."""

        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            _refuse_repository_changes(self)

        def setup_event_loop(self) -> None:
            # start() has created the REST server but not started it: set where it listens
            if self._rest_server is not None:
                self._rest_server.config.host = host
            super().setup_event_loop()

    return LocalModelServer(http_port=http_port, **kwargs)


def serve(
    settings: Settings,
    *,
    model_uri: str | None = None,
    model_dir: str | Path | None = None,
    model_version: str | None = None,
    history: FactsLike | Callable[[], pd.DataFrame] | None = None,
    http_port: int | None = None,
    host: str | None = None,
    collector_url: str | None = None,
    reload_seconds: float | None = None,
    history_seconds: float | None = None,
    namespace: str = "default",
    log_requests: bool = False,
    tuning: Any = None,
) -> None:
    """Load the champion (or ``model_dir``/``model_uri``) and the history, then serve.

    Blocks until SIGINT/SIGTERM. Arguments left None come from ``settings.serving``
    (host 127.0.0.1 and port 8080 by default; a container passes host 0.0.0.0).
    ``reload_seconds`` polls the registry alias, ``history_seconds`` re-reads the facts
    (0 = never). With a collector URL, every request and response is posted there as
    KServe-style CloudEvents. Raises ModelNotAvailable / HistoryUnavailable before serving.
    """
    cfg = settings.serving
    http_port = cfg.http_port if http_port is None else http_port
    host = cfg.host if host is None else host
    predictor = build_predictor(
        settings,
        model_uri=model_uri,
        model_dir=model_dir,
        model_version=model_version,
        history=history,
        collector_url=collector_url,
        reload_seconds=reload_seconds,
        history_seconds=history_seconds,
        namespace=namespace,
        source_uri=f"http://localhost:{http_port}/",
        tuning=tuning,
        freeze_gc=True,
    )
    _log_to_stderr()
    predictor.load()  # raises ModelNotAvailable / HistoryUnavailable with the reason
    server = _model_server(
        host, http_port, grpc_port=http_port + 1, enable_grpc=False, enable_latency_logging=False
    )
    _quiet_request_logs(log_requests)
    _bad_request_for_invalid_v2_bodies()
    _count_inference_calls(predictor.name)
    _limit_request_bodies(predictor.name, cfg.max_request_bytes)
    log.info(
        "serving %s v%s on http://%s:%d", predictor.name, predictor.model_version, host, http_port
    )
    server.start([predictor])
