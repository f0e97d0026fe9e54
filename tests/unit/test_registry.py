"""Registry logic on a real MLflow SQLite store: aliases, promotion, rollback, audit."""

from datetime import UTC, datetime, timedelta

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from freightml.config import Settings
from freightml.tracking import (
    CHAMPION,
    RegistryError,
    champion_version,
    configure_mlflow,
    list_versions,
    promote,
    rollback,
)
from freightml.tracking.registry import AuditEvent, audit_log

pytestmark = [pytest.mark.unit]
MODEL = "freight-volume"


@pytest.fixture
def client(settings: Settings):
    client = configure_mlflow(settings)
    model = LinearRegression().fit(np.arange(6).reshape(3, 2), [1.0, 2.0, 3.0])
    for i in range(3):
        with mlflow.start_run():
            mlflow.log_metric("wape", 0.3 - i * 0.01)
            info = mlflow.sklearn.log_model(
                model, name="model", serialization_format="cloudpickle", pip_requirements=[]
            )
        mlflow.register_model(info.model_uri, MODEL)
    return client


def _within(at: str, start: datetime, end: datetime) -> bool:
    return start - timedelta(seconds=1) <= datetime.fromisoformat(at) <= end + timedelta(seconds=1)


def test_promote_records_who_and_why(client) -> None:
    assert champion_version(client, MODEL) is None
    start = datetime.now(UTC)
    event = promote(client, MODEL, "1", reason="first model", actor="alice")
    assert _within(event.at, start, datetime.now(UTC))
    assert event == AuditEvent("promote", MODEL, "1", None, "alice", "first model", event.at)
    assert champion_version(client, MODEL) == "1"
    tags = client.get_model_version(MODEL, "1").tags
    assert (tags["freightml.promote_by"], tags["freightml.promote_reason"]) == (
        "alice",
        "first model",
    )
    assert tags["freightml.promote_at"] == event.at
    assert audit_log(client, MODEL) == [event]


def test_rollback_walks_back_through_history(client) -> None:
    promote(client, MODEL, "1", reason="r1", actor="a")
    promote(client, MODEL, "2", reason="r2", actor="a")
    promote(client, MODEL, "3", reason="r3", actor="a")
    assert rollback(client, MODEL, reason="v3 bad", actor="bob").version == "2"
    assert champion_version(client, MODEL) == "2"
    assert rollback(client, MODEL, reason="v2 bad too", actor="bob").version == "1"
    with pytest.raises(RegistryError, match="no champion before version 1"):
        rollback(client, MODEL, reason="nothing left", actor="bob")
    entries = [
        (e.action, e.version, e.previous_version, e.actor, e.reason)
        for e in audit_log(client, MODEL)
    ]
    assert entries == [
        ("promote", "1", None, "a", "r1"),
        ("promote", "2", "1", "a", "r2"),
        ("promote", "3", "2", "a", "r3"),
        ("rollback", "2", "3", "bob", "v3 bad"),
        ("rollback", "1", "2", "bob", "v2 bad too"),
    ]


def test_rollback_to_explicit_version(client) -> None:
    promote(client, MODEL, "3", reason="r", actor="a")
    assert rollback(client, MODEL, reason="back", to="1", actor="a").version == "1"


def test_errors_name_the_problem(client) -> None:
    with pytest.raises(RegistryError, match="no version '9'"):
        promote(client, MODEL, "9", reason="x")
    with pytest.raises(RegistryError, match="needs a reason"):
        promote(client, MODEL, "1", reason="  ")
    with pytest.raises(RegistryError, match="no champion to roll back"):
        rollback(client, MODEL, reason="x")
    promote(client, MODEL, "1", reason="x")
    with pytest.raises(RegistryError, match="already the champion"):
        promote(client, MODEL, "1", reason="again")


def test_list_versions_shows_aliases(client) -> None:
    promote(client, MODEL, "2", reason="r", actor="a")
    client.set_registered_model_alias(MODEL, "challenger", "3")
    rows = {r["version"]: r for r in list_versions(client, MODEL)}
    assert rows["2"]["aliases"] == CHAMPION
    assert rows["3"]["aliases"] == "challenger"
    assert rows["1"]["wape"] == "0.3000"
    with pytest.raises(RegistryError, match="no registered model 'other'"):
        list_versions(client, "other")
