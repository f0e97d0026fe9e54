"""Facts are held to hard bounds at any batch size (issue "Trust what is collected",
finding 2): each post below was stored with 200 before, because the anomaly checks need
14+ points of a series' history; now each is refused with 422 naming the rule, and nothing
of it is stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from freightml.collector.app import create_app
from freightml.collector.intake import (
    MAX_FACT_AGE_DAYS,
    MAX_TONNES_PER_WAGON,
    MAX_WAGONS_PER_DAY,
    bound_errors,
)
from freightml.store import Store
from helpers import facts_frame, facts_records, uvicorn_in_thread

pytestmark = [pytest.mark.integration]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[httpx.Client, Store]]:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    with uvicorn_in_thread(create_app(store)) as base, httpx.Client(base_url=base) as client:
        yield client, store
    store.close()


def _one(**kw: Any) -> list[dict[str, Any]]:
    return facts_records(1, **kw)


@pytest.mark.parametrize(
    ("records", "rule"),
    [
        (facts_records(7, tonnes=1e308), "[tonnes_bound] 7 row(s)"),
        (_one(tonnes=1e9, wagons=0), "[tonnes_bound]"),
        (_one(tonnes=0.0, wagons=1_000_000), "[wagons_bound]"),
        (_one(tonnes=0.0, wagons=40), "loaded wagons carrying 0 t"),
        (_one(tonnes=10_000.0, wagons=2), "[tonnes_per_wagon]"),
        (_one(origin="NS\x07K"), "[printable_names]"),
        (_one(start="1900-01-01"), "[date_bound]"),
        (
            facts_records(1) + facts_records(1, start="2025-03-02", origin_region="Ural"),
            "station 'NSK' is given 2 regions in this post",
        ),
    ],
    ids=[
        "1e308-tonnes",
        "1e9-tonnes",
        "a-million-wagons",
        "0-t-in-40-wagons",
        "5000-t-a-wagon",
        "control-character",
        "1900-01-01",
        "two-regions",
    ],
)
def test_a_small_post_beyond_a_bound_is_refused_whole(
    collector: tuple[httpx.Client, Store], records: list[dict[str, Any]], rule: str
) -> None:
    client, store = collector
    answer = client.post("/facts", json=records)
    assert answer.status_code == 422, answer.text
    assert any(rule in e for e in answer.json()["errors"]), answer.json()
    assert store.counts()["facts"] == 0


def test_a_station_keeps_the_region_the_store_knows(collector: tuple[httpx.Client, Store]) -> None:
    client, store = collector
    assert client.post("/facts", json=facts_records(3)).status_code == 200
    moved = facts_records(1, start="2025-03-05", destination="KHB", origin_region="Ural")
    answer = client.post("/facts", json=moved)
    assert answer.status_code == 422
    assert (
        "station 'NSK' is in ['West Siberian'] in the store; this post puts it in ['Ural']"
        in " ".join(answer.json()["errors"])
    )
    assert store.counts()["facts"] == 3
    fine = facts_records(2, start="2025-03-05", destination="KHB")
    assert client.post("/facts", json=fine).status_code == 200


def test_the_bounds_hold_at_their_edges() -> None:
    today = date(2026, 12, 6)
    edge = facts_frame(
        1,
        start="1996-12-20",
        tonnes=MAX_TONNES_PER_WAGON * MAX_WAGONS_PER_DAY,
        wagons=MAX_WAGONS_PER_DAY,
    )
    assert (today - edge["date"].iloc[0].date()).days <= MAX_FACT_AGE_DAYS
    assert bound_errors(edge, today) == []
    over = edge.assign(wagons=MAX_WAGONS_PER_DAY + 1)
    assert [e.split("]")[0] for e in bound_errors(over, today)] == ["[wagons_bound"]
    unknown_wagons = facts_frame(1, tonnes=5_000.0, wagons=0)  # wagons 0: not counted
    assert bound_errors(unknown_wagons, today) == []


def test_revisions_are_ordered_by_when_the_source_reported_them(
    collector: tuple[httpx.Client, Store],
) -> None:
    """Finding 6: a correction 644 -> 700 then a stale copy 650 made 650 current. With
    ``reported_at`` the stale copy is refused (409, counted) and 700 stays current; a copy
    without ``reported_at`` is ordered by arrival, as before."""
    client, store = collector

    def post(tonnes: float, reported_at: str | None) -> httpx.Response:
        record = facts_records(1, tonnes=tonnes, wagons=10)[0]
        if reported_at is not None:
            record["reported_at"] = reported_at
        return client.post("/facts", json=[record])

    def current() -> float:
        return float(store.facts.frame()["volume_tonnes"].iloc[0])

    assert post(644.0, "2025-03-02T08:00:00Z").status_code == 200
    assert post(700.0, "2025-03-03T08:00:00+03:00").status_code == 200  # a correction
    stale = post(650.0, "2025-03-02T09:00:00Z")  # an older copy arriving late
    assert stale.status_code == 409
    assert "1 fact(s) are stale" in stale.json()["errors"][0]
    assert "650 t reported 2025-03-02T09:00:00+00:00, stored 700 t" in stale.json()["errors"][0]
    assert current() == 700.0
    same_time = post(710.0, "2025-03-03T05:00:00Z")  # = the stored time: not after it
    assert same_time.status_code == 409 and current() == 700.0
    assert post(700.0, "2025-03-01T00:00:00Z").json()["duplicates"] == 1  # same value: a no-op
    assert post(720.0, "2025-03-04T00:00:00Z").json()["revised"] == 1
    assert post(730.0, None).json()["revised"] == 1  # no time: arrival order
    history = store.facts.history("NSK", "VLD", "coal", "2025-03-01")
    assert list(history["volume_tonnes"]) == [644.0, 700.0, 720.0, 730.0]
    bad = post(1.0, "yesterday")
    assert bad.status_code == 422 and "[reported_at]" in bad.json()["errors"][-1]
    assert 'freightml_collector_facts_total{outcome="stale"} 2.0' in client.get("/metrics").text
