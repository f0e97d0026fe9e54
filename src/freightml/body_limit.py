"""Request bodies bounded before a handler reads them: an ASGI middleware, and the pieces
the collector's gate (freightml.collector.guard) shares with it.

A body over the limit is refused with 413 naming the limit: from its Content-Length before
anything is read, else while reading (a chunked body): at most the limit is ever read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def content_length(scope: dict[str, Any]) -> int | None:
    """The request's Content-Length, None when absent or not a number."""
    raw = dict(scope["headers"]).get(b"content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


async def read_at_most(receive: Any, limit: int) -> tuple[bytes, bool]:
    """The request body, read until its end or until it passes ``limit`` bytes (then the
    second value is True and the rest is never read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that gives ``body`` (already read) first, then what ``receive`` gives."""
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def answer_json(send: Any, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 ``{"error": ...}`` naming the limit
    (``setting`` names where it is configured); ``on_reject()`` counts each refusal."""

    def __init__(
        self,
        app: Any,
        *,
        max_bytes: int,
        setting: str = "",
        on_reject: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.setting = setting
        self.on_reject = on_reject

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._too_large(scope, send)
            return
        if length is None:
            body, over = await read_at_most(receive, self.max_bytes)
            if over:
                await self._too_large(scope, send)
                return
            receive = replay(body, receive)
        await self.app(scope, receive, send)

    async def _too_large(self, scope: dict[str, Any], send: Any) -> None:
        self.on_reject()
        where = f" ({self.setting})" if self.setting else ""
        message = (
            f"{scope['method']} {scope['path']}: the body is over its "
            f"{self.max_bytes:,}-byte limit{where}"
        )
        await answer_json(send, 413, {"error": message})
