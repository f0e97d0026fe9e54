"""Payload logging as CloudEvents, batched off the request path.

On the embedded default there is no KServe agent, so the predictor logs each request and
its response itself, with the attributes KServe's logger sidecar (pkg/logger) gives them:
two events sharing one ``id``, types ``REQUEST_EVENT_TYPE`` / ``RESPONSE_EVENT_TYPE``, the
extensions ``inferenceservicename``, ``namespace``, ``component``, ``endpoint`` and
``metadata``. As in KServe, a response is logged only for a successful request.

Unlike KServe's logger (one binary-mode POST per event), events travel in batches:

* ``send()`` appends one tuple to a bounded queue: O(1), no task, no serialisation and no
  I/O on the request path. When the queue is full the inference's events are dropped.
* One background task drains the queue, builds up to ``max_batch`` structured-mode events,
  and posts them as one CloudEvents JSON batch (a JSON array, content type
  ``application/cloudevents-batch+json``; CloudEvents HTTP binding, batched content mode).
* A failed post (connection error, timeout, HTTP 5xx or 429: the collector answers 503
  while its database is down) is retried with exponential backoff and jitter, up to
  ``max_attempts``; then the batch goes to the disk spool (``spool``,
  freightml.serving.spool), or is dropped without one. While the spool holds batches, new
  ones join it (order is kept) and the oldest is offered to the collector again every
  ``backoff_s`` to ``max_backoff_s``; when it is taken, the spool is replayed in order.
  Any other 4xx is final: the collector has stored the valid events and names the
  rejected ones.
* ``freightml_serving_cloudevents_total{outcome="sent"|"retried"|"spooled"|"dropped"}``
  counts events (a retried batch counts each of its events once per retry; a spooled one
  counts ``sent`` again when it is replayed); every drop is logged (failures at most once
  per ``WARN_EVERY_S``: an outage is one story).
* ``aclose()`` stops taking events and drains the queue (bounded by ``close_timeout_s``);
  with a spool, what the collector does not take at once is spooled for the next start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from freightml.domain import MODEL_NAME, REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE
from freightml.serving.metrics import CLOUDEVENTS
from freightml.serving.spool import EventSpool

log = logging.getLogger("freightml.serving")

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
WARN_EVERY_S = 30.0
YIELD_EVERY = 50  # inferences serialised between two yields to the event loop (~0.3 ms)
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

Body = Any  # JSON-able value, JSON bytes, or a callable returning either (called later)


class CloudEventSender:
    """Queues request/response CloudEvents and posts them to ``url`` in batches."""

    def __init__(
        self,
        url: str,
        *,
        inference_service: str = MODEL_NAME,
        namespace: str = "default",
        endpoint: str = "default",
        component: str = "predictor",
        source: str = "http://localhost:8080/",
        max_pending: int = 10_000,
        max_batch: int = 200,
        linger_s: float = 0.05,
        max_attempts: int = 12,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        timeout_s: float = 10.0,
        close_timeout_s: float = 15.0,
        token: str | None = None,
        spool: EventSpool | None = None,
    ) -> None:
        """``token`` is the collector's bearer token (events scope), sent with every post;
        ``max_pending`` inferences (a request and its response each) wait at most;
        ``linger_s`` is how long the sender waits after the first event to fill a batch;
        attempt n waits ``backoff_s * 2**(n-1)`` (at most ``max_backoff_s``) before retrying;
        ``spool`` keeps the batches the collector cannot take (module docstring)."""
        if max_pending < 1 or max_batch < 2 or max_attempts < 1:
            raise ValueError("max_pending >= 1, max_batch >= 2 and max_attempts >= 1 required")
        self.url = url
        self._headers = {"content-type": BATCH_CONTENT_TYPE}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self.model_name = inference_service
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.close_timeout_s = close_timeout_s
        self.spool = spool
        self._spool_delay = backoff_s
        self._spool_next_try = 0.0
        self._static = {
            "specversion": "1.0",
            "source": source,
            "datacontenttype": "application/json",
            "inferenceservicename": inference_service,
            "namespace": namespace,
            "component": component,
            "endpoint": endpoint,
            "metadata": "{}",
        }
        self._queue: deque[tuple[str, float, Body, Body, str | None]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._warned_at = -WARN_EVERY_S
        self._unlogged = 0
        self._counts = {
            o: CLOUDEVENTS.labels(inference_service, o)
            for o in ("sent", "retried", "spooled", "dropped")
        }

    @property
    def pending(self) -> int:
        """Inferences waiting in the queue (not counting a batch being posted)."""
        return len(self._queue)

    def send(
        self,
        event_id: str,
        request_body: Body,
        response_body: Body | None,
        *,
        correlation: str | None = None,
    ) -> None:
        """Queue the request event (and the response event, if any) of one inference.

        Must be called on the event loop the sender runs on (the server's). A body may be
        a callable: it is called by the sender task, off the request path. ``correlation``
        (the client's request id) travels as the CloudEvent extension ``correlationid``.
        """
        if self._closing or len(self._queue) >= self.max_pending:
            n = 1 + (response_body is not None)
            self._counts["dropped"].inc(n)
            self._warn(
                f"payload-log queue {'closed' if self._closing else 'full'} "
                f"({self.max_pending} inferences): dropped the {n} event(s) of {event_id}"
            )
            return
        self._queue.append((event_id, time.time(), request_body, response_body, correlation))
        if self._task is None or self._task.done():
            self.start()
        elif not self._wakeup.is_set():  # type: ignore[union-attr]
            self._wakeup.set()  # type: ignore[union-attr]

    def start(self) -> None:
        """Start the sender task on the running loop (``send`` does it on first use)."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._wakeup.set()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="cloudevent-sender"
            )

    async def _run(self) -> None:
        assert self._wakeup is not None
        # one connection; dropped after 2 s idle, before uvicorn's 5 s keep-alive timeout
        # closes it under a request (a ReadError and a needless retry)
        limits = httpx.Limits(max_connections=1, keepalive_expiry=2.0)
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            while True:
                if self._spooling and time.monotonic() >= self._spool_next_try:
                    await self._replay(client)
                if not self._queue:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    if self._spooling:  # wake up to offer the spool again
                        wait = max(self._spool_next_try - time.monotonic(), 0.01)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), wait)
                    else:
                        await self._wakeup.wait()
                    if self.linger_s and not self._closing and self._queue:
                        await asyncio.sleep(self.linger_s)  # let a batch form
                    continue
                payload, n = await self._next_batch()
                if n:
                    await self._deliver(client, payload, n)

    async def _next_batch(self) -> tuple[bytes, int]:
        """Serialise up to ``max_batch`` queued events into one JSON batch, yielding to the
        event loop every ``YIELD_EVERY`` inferences so requests are not held up."""
        parts: list[bytes] = []
        taken = 0
        while self._queue and len(parts) < self.max_batch - 1:
            taken += 1
            if taken % YIELD_EVERY == 0:
                await asyncio.sleep(0)
                if not self._queue:
                    break
            event_id, at, request_body, response_body, correlation = self._queue.popleft()
            stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")
            stamp = stamp.replace("+00:00", "Z")
            for event_type, body in (
                (REQUEST_EVENT_TYPE, request_body),
                (RESPONSE_EVENT_TYPE, response_body),
            ):
                if body is None:
                    continue
                try:
                    parts.append(self._event(event_id, event_type, stamp, body, correlation))
                except Exception as exc:
                    self._counts["dropped"].inc()
                    log.error(
                        "CloudEvent %s %s dropped: its body cannot be serialised: %s: %s",
                        event_type,
                        event_id,
                        type(exc).__name__,
                        exc,
                    )
        return b"[" + b",".join(parts) + b"]", len(parts)

    def _event(
        self, event_id: str, event_type: str, stamp: str, body: Body, correlation: str | None
    ) -> bytes:
        data = body() if callable(body) else body
        event: dict[str, Any] = {**self._static, "id": event_id, "type": event_type, "time": stamp}
        if correlation:
            event["correlationid"] = correlation
        if isinstance(data, bytes | bytearray | memoryview):
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError:  # e.g. V2 binary tensors: not JSON
                event["datacontenttype"] = "application/octet-stream"
                event["data_base64"] = base64.b64encode(bytes(data)).decode("ascii")
                return orjson.dumps(event)
        event["data"] = data
        return orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY)

    async def _deliver(self, client: httpx.AsyncClient, payload: bytes, n: int) -> None:
        """Post one batch; retry transient failures with backoff; count the outcome. While
        the spool holds batches, this one joins them (in order)."""
        if self._spooling:
            self._to_spool(payload, n)
            return
        attempts = 1 if self._closing and self.spool is not None else self.max_attempts
        delay = self.backoff_s
        problem: str | None = None
        for attempt in range(1, attempts + 1):
            problem = await self._post(client, payload, n)
            if problem is None:
                return
            if attempt == attempts:
                break
            self._counts["retried"].inc(n)
            self._warn(
                f"posting {n} CloudEvents to {self.url} failed ({problem}); "
                f"retrying (attempt {attempt + 1} of {attempts})"
            )
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.max_backoff_s)
        if self.spool is not None:
            self._warn(f"posting {n} CloudEvents to {self.url} failed ({problem}); spooling")
            self._to_spool(payload, n)
            return
        self._counts["dropped"].inc(n)
        log.error(
            "dropped %d CloudEvents: %d attempts to post them to %s failed, the last: %s",
            n,
            attempts,
            self.url,
            problem,
        )

    async def _post(self, client: httpx.AsyncClient, payload: bytes, n: int) -> str | None:
        """Post one batch once. None when it is settled (sent, or a final 4xx counted by
        ``_rejected``); else what went wrong, worth a retry (connection, 5xx, 429)."""
        try:
            response = await client.post(self.url, content=payload, headers=self._headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.status_code < 300:
            self._counts["sent"].inc(n)
            return None
        if response.status_code not in _RETRY_STATUS:
            self._rejected(response, n)
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    @property
    def _spooling(self) -> bool:
        """The spool holds batches (new ones join them, to keep the order)."""
        return self.spool is not None and len(self.spool) > 0

    def _to_spool(self, payload: bytes, n: int) -> None:
        assert self.spool is not None
        try:
            kept = self.spool.put(payload, n)
        except OSError as exc:
            kept, why = False, f"writing it failed: {exc}"
        else:
            why = f"it is full ({self.spool.bytes:,} of {self.spool.max_bytes:,} bytes)"
        if kept:
            self._counts["spooled"].inc(n)
            return
        self._counts["dropped"].inc(n)
        log.error(
            "dropped %d CloudEvents: the spool in %s refused them: %s", n, self.spool.directory, why
        )

    async def _replay(self, client: httpx.AsyncClient) -> None:
        """Offer the spool's batches to the collector, oldest first, until one fails."""
        assert self.spool is not None
        while (batch := self.spool.oldest()) is not None:
            payload, n = batch
            problem = await self._post(client, payload, n)
            if problem is None:  # taken (or refused for good): the next one
                self.spool.pop()
                self._spool_delay = self.backoff_s
                continue
            self._warn(
                f"the collector at {self.url} still does not take the spooled CloudEvents "
                f"({problem}); {self.spool.events} wait in {self.spool.directory}"
            )
            wait = self._spool_delay * random.uniform(0.5, 1.0)
            self._spool_next_try = time.monotonic() + wait
            self._spool_delay = min(self._spool_delay * 2, self.max_backoff_s)
            return
        self._spool_next_try = 0.0

    def _rejected(self, response: httpx.Response, n: int) -> None:
        """A final 4xx: the collector stored the valid events and reports the rejected."""
        try:
            answer = response.json()
            rejected = int(answer.get("rejected", 0)) + int(answer.get("conflicts", 0))
            if not rejected:
                rejected = n
        except (ValueError, KeyError, TypeError, AttributeError):
            answer, rejected = response.text[:300], n
        rejected = min(max(rejected, 0), n)
        self._counts["sent"].inc(n - rejected)
        self._counts["dropped"].inc(rejected)
        log.error(
            "the collector at %s rejected %d of %d CloudEvents (HTTP %d): %s",
            self.url,
            rejected,
            n,
            response.status_code,
            answer,
        )

    def _warn(self, message: str) -> None:
        """Log a failure, at most once per WARN_EVERY_S."""
        self._unlogged += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            more = (
                f" ({self._unlogged - 1} more such warnings since the last)"
                if self._unlogged > 1
                else ""
            )
            log.warning("%s%s", message, more)
            self._warned_at, self._unlogged = now, 0

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued event has been posted (or dropped); False on timeout."""
        deadline = time.monotonic() + (self.close_timeout_s if timeout_s is None else timeout_s)
        while self._task is not None and not self._task.done() and (self._queue or self._busy()):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def _busy(self) -> bool:
        """True while the task is posting a batch (not waiting for work)."""
        return self._wakeup is not None and self._wakeup.is_set()

    async def aclose(self) -> None:
        """Stop taking events, post what is queued (up to ``close_timeout_s``), close."""
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            assert self._wakeup is not None
            self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), self.close_timeout_s)
            except TimeoutError:
                task.cancel()
                left = sum(1 + (r is not None) for _, _, _, r, _ in self._queue)
                self._queue.clear()
                self._counts["dropped"].inc(left)
                log.error(
                    "dropped %d CloudEvents still queued %.0f s after shutdown began",
                    left,
                    self.close_timeout_s,
                )
