"""Payload logging as CloudEvents, the way KServe's logger sidecar (pkg/logger) does it.

On the embedded default there is no KServe agent, so the predictor posts each request and
its response to the collector itself: two binary-mode CloudEvents (the payload is the HTTP
body, attributes are ``ce-*`` headers) sharing one ``ce-id``, types
``org.kubeflow.serving.inference.request`` / ``.response``, with the extensions
``inferenceservicename``, ``namespace``, ``component``, ``endpoint`` and ``metadata``. As
in KServe, a response is logged only for a successful request. Sending happens in the
background: it never delays or fails a forecast; failures are logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import httpx

from freightml.serving.metrics import CLOUDEVENTS

log = logging.getLogger("freightml.serving")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
WARN_EVERY_S = 30.0


class CloudEventSender:
    """Posts request/response CloudEvents to ``url`` without blocking the caller."""

    def __init__(
        self,
        url: str,
        *,
        inference_service: str = "freight-volume",
        namespace: str = "default",
        endpoint: str = "default",
        component: str = "predictor",
        source: str = "http://localhost:8080/",
        timeout_s: float = 5.0,
        max_pending: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self.model_name = inference_service
        self._transport = transport
        self._static = {
            "ce-specversion": "1.0",
            "ce-source": source,
            "ce-inferenceservicename": inference_service,
            "ce-namespace": namespace,
            "ce-component": component,
            "ce-endpoint": endpoint,
            "ce-metadata": "{}",
        }
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task] = set()
        self._warned_at = -WARN_EVERY_S
        self._unlogged = 0

    def headers(self, event_id: str, event_type: str, content_type: str) -> dict[str, str]:
        return {
            **self._static,
            "ce-id": event_id,
            "ce-type": event_type,
            "ce-time": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "content-type": content_type,
        }

    def send(
        self,
        event_id: str,
        request_body: bytes | object,
        response_body: bytes | object | None,
        content_type: str = "application/json",
    ) -> None:
        """Queue the request event (and the response event, if any) for ``event_id``.

        Bodies may be bytes or callables returning bytes (serialised in the background).
        """
        if len(self._tasks) >= self.max_pending:
            CLOUDEVENTS.labels(self.model_name, "dropped").inc(1 + (response_body is not None))
            return
        task = asyncio.get_running_loop().create_task(
            self._post_pair(event_id, request_body, response_body, content_type)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_pair(self, event_id: str, request_body: object, response_body: object,
                         content_type: str) -> None:
        pairs = [(REQUEST_TYPE, request_body)]
        if response_body is not None:
            pairs.append((RESPONSE_TYPE, response_body))
        for event_type, body in pairs:
            try:
                data = body() if callable(body) else body
                await self._post(event_id, event_type, data, content_type)
            except Exception as exc:  # noqa: BLE001 - logging must never break serving
                CLOUDEVENTS.labels(self.model_name, "failed").inc()
                self._warn(f"CloudEvent {event_type} {event_id} to {self.url} failed: "
                           f"{type(exc).__name__}: {exc}")
            else:
                CLOUDEVENTS.labels(self.model_name, "sent").inc()

    def _warn(self, message: str) -> None:
        """Log a failure, at most once per WARN_EVERY_S (a collector outage is one story)."""
        self._unlogged += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            more = f" ({self._unlogged - 1} more failures since the last warning)" \
                if self._unlogged > 1 else ""
            log.warning("%s%s", message, more)
            self._warned_at, self._unlogged = now, 0

    async def _post(self, event_id: str, event_type: str, data: bytes, content_type: str) -> None:
        if self._client is None:
            # a few connections, waiting for a free one: never flood the collector
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s, pool=None), transport=self._transport,
                limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))
        response = await self._client.post(
            self.url, content=data, headers=self.headers(event_id, event_type, content_type)
        )
        if response.status_code >= 300:
            raise RuntimeError(f"collector answered HTTP {response.status_code}: "
                               f"{response.text[:200]}")

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for queued events (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    async def aclose(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
