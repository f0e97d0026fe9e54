"""Settings: each layer of the precedence (kwargs > environment > file > defaults), the
shipped file, and the one place that reads FREIGHTML_*/MLFLOW_* variables."""

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from freightml.config import (
    MODEL_PARAMS,
    DataSettings,
    DeploySettings,
    ModelSettings,
    ServingSettings,
    Settings,
    load_settings,
    settings_from_json,
)
from freightml.domain import MLFLOW_SECRET, MODEL_NAME, STORE_SECRET

pytestmark = [pytest.mark.unit]
REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "freightml.yaml"


@pytest.fixture
def file(tmp_path: Path) -> Path:
    """A settings file whose values all differ from the defaults."""
    path = tmp_path / "s.yaml"
    path.write_text(
        "data:\n  seed: 7\n  synthetic_size: small\n"
        "serving:\n  send_events: false\n  http_port: 9000\n"
        "tracking:\n  experiment: from-file\n"
    )
    return path


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    s = load_settings()
    assert s.data.seed == 42 and s.data.synthetic_size == "demo"
    assert s.model.params == MODEL_PARAMS and s.model.params["learning_rate"] == 0.08
    assert s.features.horizon_max == 28
    assert s.tracking_uri == f"sqlite:///{(tmp_path / '.freightml' / 'mlflow.db')}"


def test_file_beats_defaults(file: Path) -> None:
    s = load_settings(file)
    assert (s.data.seed, s.data.synthetic_size) == (7, "small")
    assert (s.serving.send_events, s.serving.http_port) == (False, 9000)
    assert s.data.train_window_days == 730  # not in the file: the default


def test_environment_beats_file(file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREIGHTML_TRACKING__EXPERIMENT", "from-env")
    monkeypatch.setenv("FREIGHTML_DATA__SEED", "9")
    s = load_settings(file)
    assert s.tracking.experiment == "from-env"
    assert s.data.seed == 9
    assert s.data.synthetic_size == "small"  # the file's other keys of the section stay


def test_environment_equal_to_the_default_still_beats_file(
    file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug of issue 6 item 5: a variable set to the default value was dropped."""
    assert DataSettings().seed == 42 and ServingSettings().send_events is True
    assert ServingSettings().http_port == 8080
    monkeypatch.setenv("FREIGHTML_DATA__SEED", "42")
    monkeypatch.setenv("FREIGHTML_SERVING__SEND_EVENTS", "true")
    monkeypatch.setenv("FREIGHTML_SERVING__HTTP_PORT", "8080")
    s = load_settings(file)
    assert s.data.seed == 42
    assert s.serving.send_events is True
    assert s.serving.http_port == 8080
    assert s.data.synthetic_size == "small"


def test_keyword_arguments_beat_environment_and_file(
    file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREIGHTML_DATA__SEED", "9")
    monkeypatch.setenv("FREIGHTML_SERVING__HTTP_PORT", "9100")
    s = load_settings(file, data={"seed": 42}, serving={"http_port": 9200})
    assert s.data.seed == 42  # equal to the default, and still wins over env and file
    assert s.serving.http_port == 9200
    assert s.data.synthetic_size == "small" and s.serving.send_events is False  # merged


def test_config_file_from_environment(file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREIGHTML_CONFIG", str(file))
    assert load_settings().data.seed == 7
    other = file.with_name("other.yaml")
    other.write_text("data:\n  seed: 11\n")
    assert load_settings(other).data.seed == 11  # an explicit path beats $FREIGHTML_CONFIG


def test_env_switches_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert load_settings().tracking_uri == "http://mlflow:5000"
    monkeypatch.setenv("FREIGHTML_TRACKING__URI", "http://other:5000")
    assert load_settings().tracking_uri == "http://other:5000"


def test_store_url_from_secret_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(home=str(tmp_path))
    assert s.collector_store_url == f"sqlite:///{tmp_path / 'collector.db'}"
    monkeypatch.setenv("FREIGHTML_STORE_URL", "postgresql+psycopg://u@db/x")
    assert s.collector_store_url == "postgresql+psycopg://u@db/x"


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("data:\n  sead: 7\n")
    with pytest.raises(ValidationError, match="sead"):
        load_settings(file)


def test_a_file_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    file = tmp_path / "list.yaml"
    file.write_text("- seed\n- 7\n")
    with pytest.raises(ValueError, match=r"list.yaml: expected a mapping of settings, got list"):
        load_settings(file)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_settings(tmp_path / "nope.yaml")


def test_json_round_trip_is_frozen(settings: Settings) -> None:
    again = settings_from_json(settings.to_json())
    assert again == settings
    with pytest.raises(ValidationError):
        again.data.seed = 1  # type: ignore[misc]


def test_domain_constants_are_the_defaults() -> None:
    s = Settings()
    assert s.tracking.registered_model == s.tracking.experiment == MODEL_NAME
    assert s.deploy.name == MODEL_NAME
    assert s.pipeline.mlflow_secret == s.deploy.mlflow_secret == MLFLOW_SECRET
    assert s.pipeline.store_secret == STORE_SECRET
    assert s.champion_uri == f"models:/{MODEL_NAME}@champion"
    assert isinstance(s.deploy, DeploySettings)


# -- the shipped file --------------------------------------------------------------------
def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, name + "."))
        else:
            out[name] = value
    return out


def _documented() -> dict[str, Any]:
    """The README's table of what configs/freightml.yaml sets."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- shipped-config: begin -->")[1].split("<!-- shipped-config: end -->")[0]
    if block.strip() == "nothing":
        return {}
    rows = re.findall(r"^\| `([\w.]+)` \| (.+?) \|$", block, flags=re.M)
    return {key: yaml.safe_load(value) for key, value in rows}


def test_shipped_file_loads_and_sets_what_the_readme_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = yaml.safe_load(SHIPPED.read_text())
    assert isinstance(raw, dict)  # a mapping (empty as shipped), not a YAML null or a list
    documented = _documented()
    assert _leaves(raw) == documented
    s = load_settings(SHIPPED)
    loaded = _leaves(s.model_dump(mode="json"))
    assert {key: loaded[key] for key in documented} == documented
    monkeypatch.chdir(tmp_path)  # no configs/ here: the defaults alone
    defaults = _leaves(load_settings().model_dump(mode="json"))
    differs = {k for k in loaded if loaded[k] != defaults.get(k)}
    assert differs == set(documented)  # the file changes exactly what it documents


def test_shipped_file_repeats_no_default() -> None:
    """Defaults live once: every value in the shipped file differs from the code default."""
    defaults = _leaves(Settings().model_dump(mode="json"))
    repeated = {
        k: v
        for k, v in _leaves(yaml.safe_load(SHIPPED.read_text())).items()
        if k in defaults and defaults[k] == v
    }
    assert repeated == {}, f"configs/freightml.yaml repeats defaults of config.py: {repeated}"


def test_model_params_change_only_the_keys_given(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("model:\n  params:\n    max_iter: 50\n")
    assert load_settings(file).model.params == {**MODEL_PARAMS, "max_iter": 50}
    assert ModelSettings(params={"learning_rate": 0.1}).params["max_leaf_nodes"] == 63
    assert ModelSettings(name="seasonal_naive", params={}).params == {}  # not gbm: as given


# -- the environment is read in one place -------------------------------------------------
ENV_PREFIXES = ("FREIGHTML_", "MLFLOW_")


def string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` (and ``NAME: Final = "text"``) assignments."""
    out = {}
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else ([node.target] if isinstance(node, ast.AnnAssign) else [])
        )
        value = getattr(node, "value", None)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            out.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
    return out


def environment_reads(source: str, constants: dict[str, str] | None = None) -> list[str]:
    """Names of FREIGHTML_*/MLFLOW_* variables ``source`` reads (os.environ / os.getenv),
    by literal or by a module-level constant."""
    tree = ast.parse(source)
    consts = dict(constants or {})
    consts.update(string_constants(tree))
    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args:
            func = ast.unparse(node.func)
            if func in ("os.getenv", "getenv", "os.environ.get", "environ.get", "os.environ.pop"):
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in (
            "os.environ",
            "environ",
        ):
            key = node.slice
        if key is None:
            continue
        name = key.value if isinstance(key, ast.Constant) else consts.get(ast.unparse(key), "")
        if isinstance(name, str) and name.startswith(ENV_PREFIXES):
            found.append(name)
    return found


def test_the_environment_scan_sees_reads() -> None:
    assert environment_reads('import os\nos.environ.get("FREIGHTML_X")\n') == ["FREIGHTML_X"]
    assert environment_reads('import os\nV = "MLFLOW_Y"\nos.environ[V]\n') == ["MLFLOW_Y"]
    assert environment_reads('from os import getenv\ngetenv("FREIGHTML_Z", "")\n') == [
        "FREIGHTML_Z"
    ]
    assert environment_reads('import os\nos.environ.get("HOME")\n') == []
    assert environment_reads("import os\nos.environ[K]\n", {"K": "MLFLOW_K"}) == ["MLFLOW_K"]


def test_only_config_reads_freightml_and_mlflow_variables() -> None:
    src = REPO / "src"
    domain = string_constants(ast.parse((src / "freightml" / "domain.py").read_text()))
    assert domain["STORE_URL_KEY"] == "FREIGHTML_STORE_URL"
    readers = {
        str(path.relative_to(src)): reads
        for path in sorted(src.rglob("*.py"))
        if (reads := environment_reads(path.read_text(), domain))
    }
    assert "freightml/config.py" in readers  # the scan does see config.py's reads
    others = {k: v for k, v in readers.items() if k != "freightml/config.py"}
    assert others == {}, f"read these through freightml.config: {others}"


def test_a_pod_never_falls_back_to_a_sqlite_file_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue "A cluster that accepts it": without the Secret, a KFP task trained into a
    SQLite file in its pod and "succeeded"; the model was lost with the pod."""
    from freightml.config import NotConfiguredInPod, Settings

    for name in ("MLFLOW_TRACKING_URI", "FREIGHTML_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(home=tmp_path)
    assert settings.tracking_uri.startswith("sqlite:///")  # one machine: the default
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(NotConfiguredInPod, match=r"\$MLFLOW_TRACKING_URI"):
        _ = settings.tracking_uri
    with pytest.raises(NotConfiguredInPod, match=r"\$FREIGHTML_STORE_URL"):
        _ = settings.collector_store_url
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.freightml:5000")
    monkeypatch.setenv("FREIGHTML_STORE_URL", "postgresql+psycopg://u:p@db/freightml")
    assert settings.tracking_uri == "http://mlflow.freightml:5000"
    assert settings.collector_store_url.startswith("postgresql")
