"""The test harness's own switches: a skip of something CI must run fails in CI."""

from __future__ import annotations

import pytest

import helpers

pytestmark = pytest.mark.unit


def test_skip_or_fail_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(helpers.REQUIRE_ALL_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no database"):
        helpers.skip_or_fail("no database")


def test_skip_or_fail_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(helpers.REQUIRE_ALL_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no database .*CI must run this test"):
        helpers.skip_or_fail("no database")


def test_postgres_url_needs_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(helpers.PG_ENV, raising=False)
    monkeypatch.setenv(helpers.REQUIRE_ALL_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{helpers.PG_ENV} is not set"):
        helpers.postgres_url()
    monkeypatch.setenv(helpers.PG_ENV, "postgresql+psycopg://u:p@127.0.0.1:1/db")
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # no worker: the URL as given
    assert helpers.postgres_url() == "postgresql+psycopg://u:p@127.0.0.1:1/db"


def test_facts_frame_builds_one_series() -> None:
    frame = helpers.facts_frame([0, 2, 5], start="2025-01-30", tonnes=[1.0, 2.0, 3.0])
    assert [d.strftime("%Y-%m-%d") for d in frame["date"]] == [
        "2025-01-30",
        "2025-02-01",
        "2025-02-04",
    ]
    assert frame["volume_tonnes"].tolist() == [1.0, 2.0, 3.0]
    assert helpers.facts_records(2)[1]["date"] == "2025-03-02"
