"""FreightPredictor: the KServe model that answers business forecast requests.

``load()`` loads the model (registry alias or local directory) and the warm history
window; both must succeed before ``ready``. A request (V1 dict or V2 InferRequest) is
parsed into rows of the window's feature table (``preprocess``), predicted through the
micro-batcher (``predict``) and written back in the request's protocol (``postprocess``).

The model, the window and the scorer binding them live in one immutable ``ServingState``;
a champion reload or a history refresh builds a new state beside the old one and swaps the
reference. A request keeps the state it was parsed with, so nothing is dropped or mixed.
"""

from __future__ import annotations

# kserve parses sys.argv when first imported: the guard goes before every other import
import freightml._kserve  # noqa: F401  (first: see freightml/_kserve.py)

# isort: split

import asyncio
import contextlib
import gc
import logging
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import InferenceError, InvalidInput
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferRequest, InferResponse

from freightml.domain import CARGO_TYPES, MODEL_NAME
from freightml.features.build import LOOKBACK_DAYS
from freightml.features.calendar import DEFAULT_HOLIDAY_COUNTRY
from freightml.features.levels import adjustments_of
from freightml.features.window import (
    HORIZON_MAX,
    HistorySource,
    HistoryUnavailable,
    HistoryWindow,
    WindowRules,
    facts_signature,
    recent_facts,
)
from freightml.models.intervals import interpolate_quantile, quantile_column
from freightml.models.statistical import StatisticalColumns
from freightml.serving import metrics
from freightml.serving.batcher import MicroBatcher
from freightml.serving.events import CloudEventSender
from freightml.serving.model_source import LoadedModel, ModelNotAvailable, ModelSource
from freightml.serving.schema import (
    ANSWERED_LEVELS,
    DEFAULT_MAX_ROWS,
    V2_INPUTS,
    V2_OUTPUTS,
    WAGON_QUANTILE,
    RequestError,
    parse_v1,
    parse_v2,
    v1_response,
    v2_response,
    wagon_quantile,
)
from freightml.serving.scoring import Scorer, make_scorer

log = logging.getLogger("freightml.serving")
MAX_CORRELATION_LENGTH = 128  # characters of a client request id kept with its events
INFERENCE_ID_HEADER = "x-inference-id"  # the answer's header naming its logged inference


@dataclass(frozen=True, eq=False)
class ServingState:
    model: LoadedModel
    window: HistoryWindow
    scorer: Scorer


@dataclass(frozen=True, eq=False)
class _Query:
    """A parsed request: the state it refers to and its feature-table rows."""

    protocol: str
    state: ServingState
    rows: np.ndarray
    request: Any
    tonnes: np.ndarray | None = None
    wagon_quantile: float | None = None


@dataclass
class Tuning:
    """Performance knobs (defaults measured on the project's 2-core machine)."""

    max_batch_rows: int = 2048  # rows merged into one model call at most
    max_wait_ms: float = 2.0  # under load, wait this long for more requests to merge
    parallel_rows: int = 256  # batches below this always run on 1 OpenMP thread
    # OpenMP threads for bigger batches. 1 by default, like GlobalGBM: with a busy event loop
    # (or neighbours) on a small machine, a 2-thread team stalls at each of the ~200
    # per-tree barriers of one predict (1000-row p99 3 s instead of 0.25 s at 32 clients)
    large_batch_threads: int | None = 1
    fast_scorer: bool = True  # pre-encoded trees for GlobalGBM (checked against predict)
    max_request_rows: int = DEFAULT_MAX_ROWS


class FreightPredictor(Model):
    """Daily freight volume forecasts per (origin, destination, cargo) and day."""

    def __init__(
        self,
        model_source: ModelSource,
        history: HistorySource,
        *,
        name: str = MODEL_NAME,
        window_days: int = LOOKBACK_DAYS,
        horizon_max: int = HORIZON_MAX,
        reload_seconds: float | None = 30.0,
        history_seconds: float | None = 60.0,
        retry_failed_seconds: float = 300.0,
        events: CloudEventSender | None = None,
        tuning: Tuning | None = None,
        freeze_gc: bool = False,
        holiday_country: str = DEFAULT_HOLIDAY_COUNTRY,
        known_cargo_types: Collection[str] | None = CARGO_TYPES,
        wagon_quantile: float | None = None,
        rules: WindowRules | None = None,
        stale_seconds: float = 0.0,
    ) -> None:
        super().__init__(name)
        self.rules = rules or WindowRules()  # the window's origin and membership rules
        # not healthy after the history has not been read for this long (0: never)
        self.stale_seconds = stale_seconds
        self._last_good_read = time.monotonic()
        # the quantile wagons are counted at when a request does not say (None: the point
        # forecast); serving.wagon_quantile
        self.wagon_quantile = wagon_quantile
        self.holiday_country = holiday_country  # features.holiday_country of training
        self.known_cargo_types = known_cargo_types  # data.known_cargo_types (None: no list)
        self.model_source = model_source
        self.history = history
        self.window_days = window_days
        self.horizon_max = horizon_max
        self.reload_seconds = reload_seconds
        self.history_seconds = history_seconds
        self.retry_failed_seconds = retry_failed_seconds
        self.events = events
        self.tuning = tuning or Tuning()
        self.engine = True  # KServe then runs start_engine() in the server's event loop
        self.freeze_gc = freeze_gc  # for a server process: see _settle_gc
        self._state: ServingState | None = None
        self._swap_lock = threading.Lock()
        self._failed_versions: dict[str, float] = {}
        self._history_stamp: object | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping: asyncio.Event | None = None
        self._batcher = MicroBatcher(
            self._run_batch,
            max_rows=self.tuning.max_batch_rows,
            max_wait_s=self.tuning.max_wait_ms / 1000.0,
            on_batch=self._observe_batch,
        )

    # -- loading --------------------------------------------------------------------------
    @property
    def state(self) -> ServingState:
        if self._state is None:
            raise ModelNotAvailable(f"{self.name}: load() has not succeeded yet")
        return self._state

    @property
    def model_version(self) -> str | None:
        return self._state.model.version if self._state else None

    def load(self) -> bool:
        """Load the model and the history window; raise ModelNotAvailable/HistoryUnavailable."""
        model = self.model_source.load()
        self._history_stamp = self.history.stamp()
        window = self._build_window(self.history.read(), model)
        self._last_good_read = time.monotonic()
        with self._swap_lock:
            self._install(model, window)
        metrics.watch_history_age(self.name, self._history_last_seconds)
        for outcome in ("updated", "unchanged", "failure"):  # exported from the start, at 0
            metrics.HISTORY_REFRESHES.labels(self.name, outcome)
        self.ready = True
        log.info(
            "%s ready: model v%s from %s; %d series, forecast origin %s, history from %s",
            self.name,
            model.version,
            model.uri,
            window.n_series,
            window.origin_date,
            self.history.describe(),
        )
        return self.ready

    def _build_window(self, facts: Any, model: LoadedModel) -> HistoryWindow:
        """The window of ``facts`` as ``model`` reads them (its level adjustments)."""
        return HistoryWindow.build(
            facts,
            window_days=self.window_days,
            horizon_max=self.horizon_max,
            holiday_country=self.holiday_country,
            known_cargo_types=self.known_cargo_types,
            rules=self.rules,
            level_adjustments=adjustments_of(model.model),
            origin_columns=StatisticalColumns.of(model.model),
        )

    def _window_for(self, model: LoadedModel) -> HistoryWindow:
        """The current window, rebuilt from the history source when ``model`` reads the
        facts with other level adjustments than the model in service."""
        window = self.state.window
        same_stats = tuple(getattr(model.model, "statistical_models", ())) == window.statistical
        if adjustments_of(model.model) == window.level_adjustments and same_stats:
            return window
        since = (window.origin - pd.Timedelta(days=self.window_days)).date()
        return self._build_window(self.history.read(start=since), model)

    def _install(self, model: LoadedModel, window: HistoryWindow) -> None:
        """Bind model and window (checking the model scores the window), then swap."""
        t = self.tuning
        scorer = self._batcher.call(  # on the model thread, like every prediction
            make_scorer,
            model.model,
            window.features,
            fast=t.fast_scorer,
            parallel_rows=t.parallel_rows,
            large_threads=t.large_batch_threads,
        )
        previous = self._state
        self._state = ServingState(model, window, scorer)
        self._settle_gc()
        metrics.set_model_version(
            self.name, model.version, previous.model.version if previous else None
        )
        metrics.HISTORY_LAST_DATE.labels(self.name).set(window.origin.timestamp())

    def _history_last_seconds(self) -> float | None:
        """The warm window's last fact date (Unix seconds), None before load()."""
        state = self._state
        return None if state is None else float(state.window.origin.timestamp())

    def _settle_gc(self) -> None:
        """Move the long-lived heap (imports, model, window) out of the collector's sight.

        A full collection walks ~250k objects after KServe and MLflow are imported (~0.25 s
        on the reference machine), a stall every few seconds under load that made p99 10x
        p50. Frozen objects are never scanned; after a swap the old state is unfrozen once
        so that it can be freed.
        """
        if not self.freeze_gc:
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    # -- champion reload and history refresh (thread-safe, called from background tasks) --
    def reload_model(self) -> bool:
        """Swap in the alias' version if it moved; on failure keep serving the current one."""
        current = self.state.model.version
        try:
            version = self.model_source.current_version()
        except Exception as exc:
            metrics.RELOADS.labels(self.name, "poll_failure").inc()
            log.warning(
                "%s: cannot read the model version from %s: %s",
                self.name,
                self.model_source.describe(),
                exc,
            )
            return False
        if version == current:
            return False
        failed_at = self._failed_versions.get(version)
        if failed_at is not None and time.monotonic() - failed_at < self.retry_failed_seconds:
            return False
        started = time.perf_counter()
        try:
            loaded = self.model_source.load(version)
            with self._swap_lock:
                self._install(loaded, self._window_for(loaded))
        except Exception as exc:
            self._failed_versions[version] = time.monotonic()
            metrics.RELOADS.labels(self.name, "failure").inc()
            log.error(
                "%s: loading v%s failed, still serving v%s: %s: %s",
                self.name,
                version,
                current,
                type(exc).__name__,
                exc,
            )
            return False
        self._failed_versions.pop(version, None)
        metrics.RELOADS.labels(self.name, "success").inc()
        log.info(
            "%s: now serving v%s (was v%s), loaded in %.2f s",
            self.name,
            version,
            current,
            time.perf_counter() - started,
        )
        return True

    def refresh_history(self) -> bool:
        """Rebuild the window when new or revised facts arrived; True when it changed."""
        stamp = self.history.stamp()
        if stamp is not None and stamp == self._history_stamp:
            metrics.HISTORY_REFRESHES.labels(self.name, "unchanged").inc()
            self._last_good_read = time.monotonic()
            return False
        try:
            window = self.state.window
            since = (window.origin - pd.Timedelta(days=self.window_days)).date()
            recent = recent_facts(
                self.history.read(start=since), self.window_days, self.rules.origin_quorum
            )
            self._last_good_read = time.monotonic()
            if facts_signature(recent) == self.state.window.signature:
                self._history_stamp = stamp
                metrics.HISTORY_REFRESHES.labels(self.name, "unchanged").inc()
                return False
            window = self._build_window(recent, self.state.model)
            with self._swap_lock:
                model = self.state.model  # a reload may have swapped it meanwhile
                stats = tuple(getattr(model.model, "statistical_models", ()))
                if (
                    adjustments_of(model.model) != window.level_adjustments
                    or stats != window.statistical
                ):
                    window = self._build_window(recent, model)
                self._install(model, window)
        except Exception as exc:
            metrics.HISTORY_REFRESHES.labels(self.name, "failure").inc()
            log.error(
                "%s: history refresh from %s failed, keeping the window up to %s: %s",
                self.name,
                self.history.describe(),
                self.state.window.origin_date,
                exc,
            )
            return False
        self._history_stamp = stamp
        self._last_good_read = time.monotonic()
        metrics.HISTORY_REFRESHES.labels(self.name, "updated").inc()
        log.info(
            "%s: history refreshed, forecast origin now %s (%d series)",
            self.name,
            window.origin_date,
            window.n_series,
        )
        return True

    async def start_engine(self) -> None:
        """Run the background polls until ``stop_engine()``, then drain the payload log.

        KServe awaits this beside the REST server (``engine = True``), so on SIGTERM the
        process exits only after the queued CloudEvents are posted (or the sender's close
        timeout passes).
        """
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self.reload_seconds and self.model_source.follows:
            self._tasks.append(
                loop.create_task(self._every(self.reload_seconds, self.reload_model))
            )
        if self.history_seconds:
            self._tasks.append(
                loop.create_task(self._every(self.history_seconds, self.refresh_history))
            )
        if self.events is not None:
            self.events.start()
        await self._stopping.wait()
        if self.events is not None:
            await self.events.aclose()

    async def _every(self, seconds: float, job: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await asyncio.to_thread(job)
            except Exception:
                log.exception("%s: background %s failed", self.name, job.__name__)

    @property
    def history_stale(self) -> bool:
        """True when the history has not been read successfully for ``stale_seconds``."""
        return bool(self.stale_seconds) and (
            time.monotonic() - self._last_good_read > self.stale_seconds
        )

    async def healthy(self) -> bool:
        """Ready (KServe's readiness): loaded, and the history read recently enough."""
        return self.ready and not self.history_stale

    def stop_engine(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._batcher.shutdown()
        self.ready = False
        if self._stopping is not None:
            self._stopping.set()

    def stop(self) -> None:
        self.stop_engine()

    # -- the request path -----------------------------------------------------------------
    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> Any:
        """KServe's pipeline plus outcome metrics and payload logging."""
        protocol = "v2" if isinstance(body, InferRequest) else "v1"
        try:
            response, response_headers = await super().__call__(body, headers, verb)
        except InvalidInput:
            metrics.REQUESTS.labels(self.name, protocol, "bad_request").inc()
            self._log_payload(body, None, headers)
            raise
        except Exception:
            metrics.REQUESTS.labels(self.name, protocol, "error").inc()
            raise
        metrics.REQUESTS.labels(self.name, protocol, "ok").inc()
        rows = (
            len(response["predictions"])
            if isinstance(response, dict)
            else response.outputs[0].shape[0]
        )
        metrics.FORECASTS.labels(self.name, protocol).inc(rows)
        inference_id = self._log_payload(body, response, headers)
        if inference_id is not None:
            response_headers = {**(response_headers or {}), INFERENCE_ID_HEADER: inference_id}
        return response, response_headers

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> _Query:
        state = self.state
        limit = self.tuning.max_request_rows
        if isinstance(payload, InferRequest):
            rows = parse_v2(payload, state.window, limit)
            q = wagon_quantile(payload.parameters)
            return _Query("v2", state, rows, payload, None, q)
        rows = parse_v1(payload, state.window, limit)
        q = wagon_quantile(payload.get("parameters") if isinstance(payload, dict) else None)
        return _Query("v1", state, rows, payload, None, q)

    def validate(self, payload: Any) -> Any:
        return payload if isinstance(payload, _Query) else super().validate(payload)

    async def predict(
        self,
        payload: _Query,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> _Query:
        try:
            tonnes = await self._batcher.submit(payload.state, payload.rows)
        except Exception as exc:
            raise InferenceError(
                f"the model failed to forecast: {type(exc).__name__}: {exc}"
            ) from exc
        return _Query(
            payload.protocol,
            payload.state,
            payload.rows,
            payload.request,
            tonnes,
            payload.wagon_quantile,
        )

    async def postprocess(
        self,
        result: _Query,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        state, version = result.state, result.state.model.version
        if result.tonnes is None:  # predict() always sets it; a bug otherwise
            raise InferenceError("no forecast to answer with: predict() did not run")
        bands, wagon_tonnes = self._bands(result)
        if result.protocol == "v2":
            return v2_response(
                result.request,
                state.window,
                result.rows,
                result.tonnes,
                self.name,
                version,
                bands,
                wagon_tonnes,
            )
        return v1_response(
            state.window, result.rows, result.tonnes, self.name, version, bands, wagon_tonnes
        )

    def _bands(self, result: _Query) -> tuple[dict[str, np.ndarray] | None, np.ndarray | None]:
        """The answered quantiles of the rows, and the tonnes wagons are counted from (the
        request's or the default wagon quantile; None: the point forecast)."""
        scorer = result.state.scorer
        table = getattr(scorer, "quantiles", None)
        q = result.wagon_quantile if result.wagon_quantile is not None else self.wagon_quantile
        if table is None:
            if result.wagon_quantile is not None:
                raise RequestError(
                    f"model v{result.state.model.version} has no calibrated intervals: "
                    f"{WAGON_QUANTILE} cannot be answered"
                )
            return None, None
        levels = np.asarray(getattr(scorer, "levels", ()))
        rows = table[result.rows]
        bands = {
            quantile_column(level): rows[:, int(np.argmin(np.abs(levels - level)))]
            for level in ANSWERED_LEVELS
            if np.isclose(levels, level).any()
        }
        if q is None:
            return bands, None
        if not levels[0] <= q <= levels[-1]:
            raise RequestError(
                f"{WAGON_QUANTILE} {q} is outside the calibrated levels {levels[0]}..{levels[-1]}"
            )
        return bands, interpolate_quantile(levels, rows, q)

    @staticmethod
    def _run_batch(state: ServingState, rows: np.ndarray) -> np.ndarray:
        return state.scorer.predict(rows)

    def _observe_batch(self, n_rows: int, n_requests: int) -> None:
        metrics.BATCH_ROWS.labels(self.name).observe(n_rows)
        metrics.BATCH_REQUESTS.labels(self.name).observe(n_requests)

    def _log_payload(self, body: Any, response: Any, headers: dict[str, str] | None) -> str | None:
        """Queue the payload-log events (serialised later by the sender, off this path);
        the inference id they carry, None when nothing is logged."""
        if self.events is None:
            return None
        headers = headers or {}
        inference_id = str(uuid.uuid4())
        # the inference id is the predictor's own (a client cannot pre-empt or overwrite
        # another inference's log by reusing an id); the client's id is kept beside it
        correlation = headers.get("x-request-id") or headers.get("ce-id")
        with contextlib.suppress(RuntimeError):  # no running loop: a call outside the server
            self.events.send(
                inference_id,
                partial(_body_data, body),
                None if response is None else partial(_body_data, response),
                correlation=correlation[:MAX_CORRELATION_LENGTH] if correlation else None,
            )
        return inference_id

    # -- V2 metadata ----------------------------------------------------------------------
    def get_input_types(self) -> list[dict]:
        return [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in V2_INPUTS]

    def get_output_types(self) -> list[dict]:
        return [{"name": n, "datatype": d, "shape": [-1]} for n, d in V2_OUTPUTS.items()]


def _body_data(body: Any) -> Any:
    """A request or response as JSON data (dict), or its wire bytes (V2 binary tensors)."""
    if isinstance(body, InferRequest | InferResponse):
        body, _ = body.to_rest()
    return body


__all__ = ["FreightPredictor", "HistoryUnavailable", "ModelNotAvailable", "ServingState", "Tuning"]
