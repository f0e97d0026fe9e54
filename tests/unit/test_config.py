from pathlib import Path

import pytest
from pydantic import ValidationError

from freightml.config import Settings, load_settings, settings_from_json

pytestmark = [pytest.mark.unit]


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    s = load_settings()
    assert s.model.name == "gbm"
    assert s.features.horizon_max == 28
    assert s.tracking_uri == f"sqlite:///{(tmp_path / '.freightml' / 'mlflow.db')}"


def test_yaml_then_env_then_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("data:\n  seed: 7\n  synthetic_size: small\ntracking:\n  experiment: from-file\n")
    monkeypatch.setenv("FREIGHTML_TRACKING__EXPERIMENT", "from-env")
    s = load_settings(file, data={"seed": 9})
    assert s.data.seed == 9  # kwargs win
    assert s.data.synthetic_size == "small"  # file kept where not overridden
    assert s.tracking.experiment == "from-env"  # env beats file


def test_env_switches_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert load_settings().tracking_uri == "http://mlflow:5000"
    monkeypatch.setenv("FREIGHTML_TRACKING__URI", "http://other:5000")
    assert load_settings().tracking_uri == "http://other:5000"


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("data:\n  sead: 7\n")
    with pytest.raises(ValidationError, match="sead"):
        load_settings(file)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_settings(tmp_path / "nope.yaml")


def test_json_round_trip_is_frozen(settings: Settings) -> None:
    again = settings_from_json(settings.to_json())
    assert again == settings
    with pytest.raises(ValidationError):
        again.data.seed = 1  # type: ignore[misc]
