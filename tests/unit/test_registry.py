"""Registry logic on a real MLflow SQLite store: aliases, promotion, rollback, audit."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import mlflow.artifacts
import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression

from freightml.config import Settings
from freightml.domain import TAG_FAILED_GATES, TAG_GATES
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


EXAMPLE = np.arange(6.0).reshape(3, 2)


def _register(model, gates: str | None = "passed", example=EXAMPLE) -> str:
    """A version as the training pipeline leaves it: its gate results as a tag and an
    input example (``gates`` None: a version registered by hand)."""
    with mlflow.start_run():
        mlflow.log_metric("wape", 0.3)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=[],
            input_example=example,
        )
    mv = mlflow.register_model(info.model_uri, MODEL)
    if gates is not None:
        MlflowClient().set_model_version_tag(MODEL, mv.version, TAG_GATES, gates)
    return str(mv.version)


@pytest.fixture
def client(settings: Settings):
    client = configure_mlflow(settings)
    model = LinearRegression().fit(EXAMPLE, [1.0, 2.0, 3.0])
    for _ in range(3):
        _register(model)
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


class Broken(LinearRegression):
    """Scores NaN: what a corrupted or mis-trained model might answer."""

    def predict(self, X):
        return np.full(len(X), np.nan)


def test_promotion_refuses_a_version_that_could_not_serve(client, settings: Settings) -> None:
    """Finding 7 of "Trust what is collected": `models promote` took a version with no gate
    results that could not be loaded; a new predictor replica then exited 1."""
    model = LinearRegression().fit(EXAMPLE, [1.0, 2.0, 3.0])
    by_hand = _register(model, gates=None)
    with pytest.raises(RegistryError, match="no gate results"):
        promote(client, MODEL, by_hand, reason="x", actor="a")
    failed = _register(model, gates="failed")
    client.set_model_version_tag(MODEL, failed, TAG_FAILED_GATES, "bias,coverage_80")
    with pytest.raises(RegistryError, match=r"failed its gates \(bias,coverage_80\)"):
        promote(client, MODEL, failed, reason="x", actor="a")
    nan = _register(Broken().fit(EXAMPLE, [1.0, 2.0, 3.0]))
    with pytest.raises(RegistryError, match="not all finite"):
        promote(client, MODEL, nan, reason="x", actor="a")
    corrupt = _register(model)
    source = mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{corrupt}")
    pkl = next(Path(source).glob("*.pkl"))
    assert settings.home.resolve() in pkl.resolve().parents  # the store's own copy
    pkl.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(RegistryError, match="does not load"):
        promote(client, MODEL, corrupt, reason="x", actor="a")
    assert champion_version(client, MODEL) is None  # nothing moved
    # --force with a reason promotes it anyway, and says so on the version
    promote(client, MODEL, by_hand, reason="hand-made, checked by eye", actor="a", force=True)
    assert champion_version(client, MODEL) == by_hand
    assert client.get_model_version(MODEL, by_hand).tags["freightml.promote_forced"] == "true"
    promote(client, MODEL, "1", reason="back to a checked one", actor="a")
    assert champion_version(client, MODEL) == "1"
