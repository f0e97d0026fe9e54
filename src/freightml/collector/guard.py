"""The collector's gate: bearer tokens with scopes, and body limits, before any handler runs.

An ASGI middleware (pure ASGI, so the event hot path pays no framework cost) that answers:

- 401 when a route that needs a token gets none, or one it does not know;
- 403 when the token lacks the route's scope (``ROUTE_SCOPES``; ``admin`` holds every scope);
- 413 when the body is over the route's limit (``collector.max_event_bytes`` for events,
  ``collector.max_facts_bytes`` for facts), from the Content-Length before reading anything,
  else while reading: at most the limit is ever read.

``/metrics``, ``/healthz`` and the OpenAPI pages stay open. Tokens are kept as SHA-256
digests, compared in constant time, and never logged.

Where tokens come from (``load_tokens``): a directory of files named for their scope
(``events``, ``facts``, ``admin``; one token per line), as a Kubernetes Secret mounted by the
chart gives them (``collector.tokens_dir``); without one, the embedded default's token file
``<home>/collector.token`` (mode 0600), created with a random token on first start, holds
the admin scope, so `make demo` and the local tools work with no setup (they read the same
file: ``Settings.collector_token``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freightml.body_limit import BODY_METHODS, content_length, read_at_most, replay
from freightml.config import COLLECTOR_TOKEN_FILE

SCOPES = ("events", "facts", "admin")
# (method, path or path prefix ending in "/") -> scope; anything else needs none
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("POST", "/"): "events",
    ("POST", "/events"): "events",
    ("POST", "/facts"): "facts",
    ("POST", "/facts/withdrawals"): "facts",
    ("GET", "/forecasts/joined"): "admin",
    ("GET", "/inferences/"): "admin",
    ("GET", "/stats"): "admin",
}
MIN_TOKEN_LENGTH = 16
# the ASGI scope key naming the credential of an admitted request: "<scope>:<first 8 hex of
# the token's SHA-256>" (what an audit may keep; never the token), or "open"
CREDENTIAL_KEY = "freightml.credential"
DEFAULT_MAX_OTHER_BYTES = 64 * 1024  # any other route with a body


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Tokens:
    """Known tokens by scope, as SHA-256 digests."""

    digests: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, by_scope: Mapping[str, Iterable[str]]) -> Tokens:
        """From plain tokens by scope; each must be ``MIN_TOKEN_LENGTH`` characters or more."""
        out: dict[str, tuple[bytes, ...]] = {}
        for scope, tokens in by_scope.items():
            if scope not in SCOPES:
                raise ValueError(f"unknown token scope {scope!r}; known: {list(SCOPES)}")
            listed = [t.strip() for t in tokens if t.strip()]
            short = [t for t in listed if len(t) < MIN_TOKEN_LENGTH]
            if short:
                raise ValueError(
                    f"a {scope} token is shorter than {MIN_TOKEN_LENGTH} characters: use a "
                    "random one (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
                )
            out[scope] = tuple(_digest(t) for t in listed)
        if not any(out.values()):
            raise ValueError("no collector token configured: writes could never be accepted")
        return cls(out)

    @staticmethod
    def fingerprint(token: str) -> str:
        """A token's public name for audits: the first 8 hex digits of its SHA-256."""
        return _digest(token).hex()[:8]

    def scopes_of(self, token: str) -> set[str]:
        """The scopes ``token`` holds (empty when unknown); every digest is compared."""
        presented = _digest(token)
        held = set()
        for scope, digests in self.digests.items():
            for known in digests:
                if hmac.compare_digest(presented, known):
                    held.add(scope)
        return held


def load_tokens(tokens_dir: str | Path | None, home: Path) -> Tokens:
    """The collector's tokens: the scope files of ``tokens_dir`` when set (a missing
    directory or one without any scope file is an error), else the local token file
    ``home/collector.token``, created with a random admin token when missing."""
    if tokens_dir is not None:
        folder = Path(tokens_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"collector.tokens_dir {folder} is not a directory")
        found = {s: (folder / s).read_text().splitlines() for s in SCOPES if (folder / s).is_file()}
        if not found:
            raise ValueError(f"collector.tokens_dir {folder} holds none of the files {SCOPES}")
        return Tokens.of(found)
    return Tokens.of({"admin": [local_token(home, create=True) or ""]})


def local_token(home: Path, *, create: bool = False) -> str | None:
    """The embedded default's token from ``home/collector.token``; with ``create``, a new
    random one is written first when the file is missing (mode 0600)."""
    path = home / COLLECTOR_TOKEN_FILE
    if not path.exists():
        if not create:
            return None
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip() or None


def route_scope(method: str, path: str) -> str | None:
    """The scope a request needs, or None for an open route."""
    for (m, p), scope in ROUTE_SCOPES.items():
        if m == method and (path == p or (p.endswith("/") and p != "/" and path.startswith(p))):
            return scope
    return None


class IntakeGuard:
    """The ASGI middleware (module docstring). ``tokens`` None leaves every route open
    (an app embedded in a test, or behind another authenticating proxy: ``collector.auth``
    false); ``open_scopes`` are granted without a token (``collector.open_scopes``: the
    events of a KServe payload logger, which cannot send one, admitted by network policy);
    ``limits`` maps a route's scope (events, facts, admin) to its body limit in bytes;
    ``on_reject(reason)`` counts each refusal (unauthenticated, forbidden, too_large)."""

    def __init__(
        self,
        app: Any,
        *,
        tokens: Tokens | None,
        limits: Mapping[str, int],
        open_scopes: Iterable[str] = (),
        on_reject: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.open_scopes = frozenset(open_scopes)
        self.limits = dict(limits)
        self.on_reject = on_reject

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        needed = route_scope(method, path)
        if needed is not None and self.tokens is not None and needed not in self.open_scopes:
            refusal = self._refusal(scope, needed)
            if refusal is not None:
                await self._answer(send, *refusal)
                return
        limit = self.limits.get(needed or "", DEFAULT_MAX_OTHER_BYTES)
        length = content_length(scope)
        if length is not None and length > limit:
            await self._too_large(send, method, path, limit)
            return
        if length is None and method in BODY_METHODS:
            body, over = await read_at_most(receive, limit)
            if over:
                await self._too_large(send, method, path, limit)
                return
            receive = replay(body, receive)
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict[str, Any], needed: str) -> tuple[int, str, str] | None:
        assert self.tokens is not None
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return 401, "unauthenticated", f"{scope['method']} {scope['path']} needs a bearer token"
        held = self.tokens.scopes_of(token.strip())
        if not held:
            return 401, "unauthenticated", "unknown bearer token"
        if needed not in held and "admin" not in held:
            return 403, "forbidden", f"the token lacks the {needed} scope this route needs"
        used = needed if needed in held else "admin"
        scope[CREDENTIAL_KEY] = f"{used}:{Tokens.fingerprint(token.strip())}"
        return None

    async def _answer(self, send: Any, status: int, reason: str, message: str) -> None:
        self.on_reject(reason)
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="freightml-collector"'))
        body = json.dumps({"status": "rejected", "error": message}).encode()
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _too_large(self, send: Any, method: str, path: str, limit: int) -> None:
        await self._answer(
            send, 413, "too_large", f"{method} {path}: the body is over its {limit:,}-byte limit"
        )
