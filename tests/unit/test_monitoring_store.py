"""The monitoring table family and the facts read helper monitoring needs, on SQLite and on
PostgreSQL (FREIGHTML_TEST_POSTGRES_URL): idempotent saves, newest-first reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from freightml.monitoring.snapshots import SUMMARY_COLUMNS, SnapshotStore
from freightml.monitoring.types import Alert
from freightml.store import Store
from helpers import STORE_BACKENDS, facts_frame, fresh_store, sample_snapshot

pytestmark = [pytest.mark.unit]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = fresh_store(request.param, tmp_path)
    yield s
    s.close()


def _snap(n: int, *, as_of: date, created_hour: int = 6, model: str = "freight-volume"):
    return sample_snapshot(
        id=f"snap-{n}",
        as_of=as_of,
        created_at=datetime(2026, 4, 1, created_hour, tzinfo=UTC),
        model_name=model,
    )


def test_a_saved_snapshot_reads_back_equal(store: Store) -> None:
    snapshot = sample_snapshot()
    assert SnapshotStore(store).save(snapshot) is True
    assert SnapshotStore(store).get(snapshot.id) == snapshot
    assert SnapshotStore(store).get("no-such-id") is None
    assert store.counts()["monitoring_snapshots"] == 1


def test_saving_the_same_id_again_changes_nothing(store: Store) -> None:
    first = sample_snapshot()
    assert SnapshotStore(store).save(first) is True
    other = sample_snapshot(status="green", alerts=[])  # same id, other content
    assert SnapshotStore(store).save(other) is False
    assert SnapshotStore(store).get(first.id) == first
    assert store.counts()["monitoring_snapshots"] == 1


def test_latest_is_by_as_of_then_created_at(store: Store) -> None:
    assert SnapshotStore(store).latest() is None
    SnapshotStore(store).save(_snap(1, as_of=date(2026, 3, 31), created_hour=9))
    SnapshotStore(store).save(_snap(2, as_of=date(2026, 4, 1), created_hour=5))  # newest as_of
    SnapshotStore(store).save(_snap(3, as_of=date(2026, 4, 1), created_hour=4))
    SnapshotStore(store).save(_snap(4, as_of=date(2026, 4, 2), model="other-model"))
    assert SnapshotStore(store).latest("freight-volume").id == "snap-2"  # type: ignore[union-attr]
    assert SnapshotStore(store).latest().id == "snap-4"  # type: ignore[union-attr]
    assert SnapshotStore(store).latest("unknown") is None


def test_list_gives_the_summary_columns_newest_first(store: Store) -> None:
    SnapshotStore(store).save(_snap(1, as_of=date(2026, 3, 30)))
    two_alerts = [
        Alert(kind="quality", segment="all", message="a"),
        Alert(kind="staleness", segment="all", message="b"),
    ]
    SnapshotStore(store).save(
        sample_snapshot(
            id="snap-2",
            as_of=date(2026, 3, 31),
            created_at=datetime(2026, 4, 1, 9, tzinfo=timezone(timedelta(hours=3))),
            model_version=None,
            status="amber",
            alerts=two_alerts,
        )
    )
    SnapshotStore(store).save(_snap(3, as_of=date(2026, 3, 29), model="other-model"))
    rows = SnapshotStore(store).list()
    assert [r["id"] for r in rows] == ["snap-2", "snap-1", "snap-3"]
    assert rows[0] == {
        "id": "snap-2",
        "created_at": datetime(2026, 4, 1, 6, tzinfo=UTC),  # 09:00+03:00 in UTC
        "as_of": date(2026, 3, 31),
        "model_name": "freight-volume",
        "model_version": None,
        "status": "amber",
        "n_alerts": 2,
    }
    assert all(tuple(r) == SUMMARY_COLUMNS for r in rows)
    assert [r["id"] for r in SnapshotStore(store).list(limit=1)] == ["snap-2"]
    assert [r["id"] for r in SnapshotStore(store).list(model_name="other-model")] == ["snap-3"]


def test_bad_ids_and_limits_are_refused_with_a_clear_error(store: Store) -> None:
    with pytest.raises(ValueError, match="snapshot id must have 1 to 64 characters, got 65"):
        SnapshotStore(store).save(sample_snapshot(id="x" * 65))
    with pytest.raises(ValueError, match="snapshot model_name is longer than 255"):
        SnapshotStore(store).save(sample_snapshot(model_name="m" * 256))
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        SnapshotStore(store).list(limit=0)
    assert store.counts()["monitoring_snapshots"] == 0


def test_newest_fact_by_series_respects_until_and_since(store: Store) -> None:
    store.facts.ingest(facts_frame([0, 1, 5], start="2026-03-01"))  # NSK: 1, 2 and 6 March
    store.facts.ingest(facts_frame([0, 2], start="2026-03-01", origin="OMS"))  # 1 and 3 March
    newest = store.facts.newest_by_series()
    assert list(newest.columns) == ["origin_station", "destination_station", "cargo_type", "newest"]
    assert newest["origin_station"].tolist() == ["NSK", "OMS"]
    assert newest["newest"].tolist() == [pd.Timestamp("2026-03-06"), pd.Timestamp("2026-03-03")]
    capped = store.facts.newest_by_series(until="2026-03-04")
    assert capped["newest"].tolist() == [pd.Timestamp("2026-03-02"), pd.Timestamp("2026-03-03")]
    active = store.facts.newest_by_series(until="2026-03-04", since="2026-03-03")
    assert active["origin_station"].tolist() == ["OMS"]


def test_newest_fact_by_series_of_an_empty_store_has_the_columns(store: Store) -> None:
    newest = store.facts.newest_by_series()
    assert newest.empty
    assert list(newest.columns) == ["origin_station", "destination_station", "cargo_type", "newest"]
    assert newest["newest"].dtype == "datetime64[ns]"
