"""The collector's group-commit writer over a real store: a batch that fails is retried event
by event, so one bad event fails alone and its neighbours are stored once."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from freightml.collector.events import InferenceEvent, kserve_cloudevent
from freightml.collector.inferences import InferenceStore
from freightml.collector.writer import EventWriter
from freightml.store import Store, is_unavailable
from helpers import STORE_BACKENDS, fresh_store

pytestmark = [pytest.mark.unit]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = fresh_store(request.param, tmp_path)
    yield s
    s.close()


def _event(inference_id: str, body: str = '{"instances": []}') -> InferenceEvent:
    ce = kserve_cloudevent("request", inference_id, None)
    return InferenceEvent(inference_id, ce["type"], ce["source"], body=body)


async def _submit_together(writer: EventWriter, events: list[InferenceEvent]) -> list[object]:
    writer.start()
    try:
        return await asyncio.gather(*(writer.submit(e) for e in events), return_exceptions=True)
    finally:
        await writer.stop()


def test_a_failed_batch_is_retried_event_by_event(store: Store) -> None:
    # a lone surrogate cannot be encoded as UTF-8: both drivers refuse the statement, so the
    # whole batch's transaction fails and only the one-by-one retry can store the others
    poison = _event("bad", body='{"x": "\ud800"}')
    events = [_event("ok-1"), poison, _event("ok-2")]
    batches: list[int] = []
    writer = EventWriter(InferenceStore(store), on_batch=lambda size, _s: batches.append(size))
    results = asyncio.run(_submit_together(writer, events))
    assert batches == [3]  # one batch: the three were written together first
    assert results[0] == "stored" and results[2] == "stored"
    assert isinstance(results[1], Exception) and not is_unavailable(results[1])
    assert store.counts()["events"] == 2
    assert (
        InferenceStore(store).get("ok-1") is not None and InferenceStore(store).get("bad") is None
    )
    # the neighbours were stored exactly once: sending them again changes nothing
    again = asyncio.run(
        _submit_together(EventWriter(InferenceStore(store)), [events[0], events[2]])
    )
    assert again == ["duplicate", "duplicate"] and store.counts()["events"] == 2


def test_an_unavailable_database_fails_the_rest_of_the_batch_without_more_attempts(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    store = Store(f"sqlite:///{home / 'collector.db'}")
    attempts: list[int] = []
    sa.event.listen(store.engine, "do_connect", lambda *_a: attempts.append(1))
    store.engine.dispose()
    shutil.rmtree(home)  # SQLite cannot open a file in a folder that is gone
    events = [_event(f"e-{i}") for i in range(5)]
    results = asyncio.run(_submit_together(EventWriter(InferenceStore(store)), events))
    assert all(isinstance(r, sa.exc.OperationalError) for r in results), results
    assert all(is_unavailable(r) for r in results)  # type: ignore[arg-type]
    assert len(attempts) == 2  # the batch, then the first event alone: not one per event
    home.mkdir()
    store.create_all()
    assert (
        asyncio.run(_submit_together(EventWriter(InferenceStore(store)), events)) == ["stored"] * 5
    )
    assert store.counts()["events"] == 5
