"""The collector's gate over real HTTP: bearer tokens with scopes and body limits (issue
"Trust what is collected", findings 3 and 4). Before the gate, every one of these requests
was answered 200 and stored."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from freightml.collector.app import create_app
from freightml.collector.guard import Tokens, load_tokens, local_token, route_scope
from freightml.config import COLLECTOR_TOKEN_ENV, Settings
from freightml.store import Store
from helpers import facts_records, uvicorn_in_thread

pytestmark = [pytest.mark.integration]

EVENTS, FACTS, ADMIN = "e" * 24, "f" * 24, "a" * 24
EVENT_HEADERS = {
    "ce-id": "guard-1",
    "ce-type": "org.kubeflow.serving.inference.request",
    "ce-source": "http://localhost:8080/",
    "ce-specversion": "1.0",
    "content-type": "application/json",
}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    tokens = Tokens.of({"events": [EVENTS], "facts": [FACTS], "admin": [ADMIN]})
    app = create_app(store, tokens=tokens, max_event_bytes=4096, max_facts_bytes=64 * 1024)
    with uvicorn_in_thread(app) as base:
        yield base, store
    store.close()


def test_writes_need_a_token_with_their_scope(guarded: tuple[str, Store]) -> None:
    base, store = guarded
    event = b'{"instances": [1]}'
    fact = facts_records(1)
    no_token = httpx.post(f"{base}/", content=event, headers=EVENT_HEADERS)
    assert no_token.status_code == 401 and "needs a bearer token" in no_token.json()["error"]
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(f"{base}/", content=event, headers={**EVENT_HEADERS, **bearer("x" * 24)})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unknown bearer token"
    other_scope = httpx.post(f"{base}/facts", json=fact, headers=bearer(EVENTS))
    assert other_scope.status_code == 403 and "facts scope" in other_scope.json()["error"]
    assert httpx.post(f"{base}/facts", json=fact).status_code == 401
    assert store.counts()["events"] == 0 and store.counts()["facts"] == 0  # nothing stored

    ok = httpx.post(f"{base}/", content=event, headers={**EVENT_HEADERS, **bearer(EVENTS)})
    assert ok.status_code == 200, ok.text
    assert httpx.post(f"{base}/facts", json=fact, headers=bearer(FACTS)).status_code == 200
    # admin holds every scope; payload reads need it
    assert httpx.get(f"{base}/inferences/guard-1").status_code == 401
    assert httpx.get(f"{base}/inferences/guard-1", headers=bearer(EVENTS)).status_code == 403
    assert httpx.get(f"{base}/inferences/guard-1", headers=bearer(ADMIN)).status_code == 200
    assert httpx.get(f"{base}/stats", headers=bearer(ADMIN)).json()["facts"] == 1
    assert httpx.get(f"{base}/forecasts/joined").status_code == 401
    # health, metrics and the API description stay open; refusals are counted
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/openapi.json").status_code == 200
    metrics = httpx.get(f"{base}/metrics").text
    assert 'freightml_collector_rejected_requests_total{reason="unauthenticated"} 5.0' in metrics
    assert 'freightml_collector_rejected_requests_total{reason="forbidden"} 2.0' in metrics


def test_facts_are_withdrawn_with_a_token_and_audited(guarded: tuple[str, Store]) -> None:
    """Finding 1: there was no API to withdraw a fact."""
    base, store = guarded
    records = facts_records(3)
    assert httpx.post(f"{base}/facts", json=records, headers=bearer(FACTS)).status_code == 200
    key = ["origin_station", "destination_station", "cargo_type", "date"]
    body = {"by": "ops", "reason": "duplicate feed", "facts": [{k: records[1][k] for k in key}]}
    url = f"{base}/facts/withdrawals"
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers=bearer(EVENTS)).status_code == 403
    done = httpx.post(url, json=body, headers=bearer(FACTS))
    assert done.status_code == 200 and done.json() == {"status": "ok", "withdrawn": 1, "already": 0}
    assert len(store.facts.frame()) == 2
    audit = store.facts.withdrawals().iloc[0]
    assert audit["withdrawn_by"] == "ops" and audit["reason"] == "duplicate feed"
    assert audit["credential"] == f"facts:{Tokens.fingerprint(FACTS)}"
    assert FACTS not in audit["credential"]
    again = httpx.post(url, json=body, headers=bearer(FACTS)).json()
    assert (again["withdrawn"], again["already"]) == (0, 1)
    unknown = {**body, "facts": [{**body["facts"][0], "date": "2001-01-01"}]}
    missing = httpx.post(url, json=unknown, headers=bearer(ADMIN))
    assert missing.status_code == 404 and "2001-01-01" in missing.json()["errors"][0]
    no_reason = httpx.post(url, json={**body, "reason": ""}, headers=bearer(FACTS))
    assert no_reason.status_code == 422
    metrics = httpx.get(f"{base}/metrics").text
    assert 'freightml_collector_facts_total{outcome="withdrawn"} 1.0' in metrics


def test_bodies_over_the_limit_are_refused_unread(guarded: tuple[str, Store]) -> None:
    base, store = guarded
    big = b'{"instances": [' + b"1," * 4000 + b"1]}"
    declared = httpx.post(f"{base}/", content=big, headers={**EVENT_HEADERS, **bearer(EVENTS)})
    assert declared.status_code == 413 and "4,096-byte limit" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield big[:3000]
        yield big[3000:]

    streamed = httpx.post(f"{base}/", content=chunks(), headers={**EVENT_HEADERS, **bearer(EVENTS)})
    assert streamed.status_code == 413
    small = httpx.post(
        f"{base}/",
        content=(b'{"instances": [1]}' for _ in range(1)),
        headers={**EVENT_HEADERS, **bearer(EVENTS)},
    )
    assert small.status_code == 200  # a chunked body under the limit reaches the handler
    facts = httpx.post(f"{base}/facts", content=b"x" * (64 * 1024 + 1), headers=bearer(FACTS))
    assert facts.status_code == 413 and "POST /facts" in facts.json()["error"]
    assert store.counts()["events"] == 1 and store.counts()["facts"] == 0
    assert 'reason="too_large"} 3.0' in httpx.get(f"{base}/metrics").text


def test_tokens_come_from_scope_files_or_the_local_token_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert local_token(home) is None
    tokens = load_tokens(None, home)  # the embedded default: one admin token, mode 0600
    token_file = home / "collector.token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32 and tokens.scopes_of(token) == {"admin"}
    assert load_tokens(None, home).scopes_of(token) == {"admin"}  # kept, not replaced
    assert Settings(home=home).collector_token == token  # what the local clients send

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "events").write_text("predictor-token-0123456789\nsecond-token-0123456789\n")
    (secret / "facts").write_text("loader-token-0123456789\n")
    from_dir = load_tokens(secret, home)
    assert from_dir.scopes_of("second-token-0123456789") == {"events"}
    assert from_dir.scopes_of(token) == set()  # the local file is not read then
    (secret / "admin").write_text("short\n")
    with pytest.raises(ValueError, match="shorter than 16"):
        load_tokens(secret, home)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_tokens(tmp_path / "missing", home)
    with pytest.raises(ValueError, match="unknown token scope"):
        Tokens.of({"root": ["r" * 20]})


def test_the_client_token_comes_from_the_environment_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(home=tmp_path).collector_token is None
    monkeypatch.setenv(COLLECTOR_TOKEN_ENV, "from-the-environment-123")
    assert Settings(home=tmp_path).collector_token == "from-the-environment-123"


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/", "events"),
        ("POST", "/events", "events"),
        ("POST", "/facts", "facts"),
        ("POST", "/facts/withdrawals", "facts"),
        ("GET", "/inferences/abc", "admin"),
        ("GET", "/stats", "admin"),
        ("GET", "/forecasts/joined", "admin"),
        ("GET", "/metrics", None),
        ("GET", "/healthz", None),
        ("GET", "/", None),
        ("POST", "/other", None),
    ],
)
def test_route_scopes(method: str, path: str, scope: str | None) -> None:
    assert route_scope(method, path) == scope


def test_an_open_scope_needs_no_token_and_the_others_still_do(tmp_path: Path) -> None:
    """On a cluster the KServe payload logger cannot send a token: ``open_scopes: [events]``
    admits its events (the NetworkPolicy admits only predictor pods); facts still need one."""
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    app = create_app(store, tokens=Tokens.of({"facts": [FACTS]}), open_scopes=["events"])
    with uvicorn_in_thread(app) as base:
        assert httpx.post(f"{base}/", content=b"{}", headers=EVENT_HEADERS).status_code == 200
        assert httpx.post(f"{base}/facts", json=facts_records(1)).status_code == 401
    store.close()
