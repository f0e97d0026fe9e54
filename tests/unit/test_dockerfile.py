"""components/Dockerfile, parsed with dockerfile-parse: the properties the image promises
(pinned bases, uv from its image, a locked sync without dev tools, a numeric non-root user,
no build tools in the final stage, OCI labels, the configs and templates inside)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "components" / "Dockerfile"
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|gcc|g\+\+|cc|clang|make|build-essential|pip install|uv sync|uv pip)\b"
)
PINNED_PYTHON = re.compile(r"^python:(\d+)\.(\d+)\.(\d+)-slim(-[a-z]+)?$")
PINNED_UV = re.compile(r"^ghcr\.io/astral-sh/uv:(\d+)\.(\d+)\.(\d+)$")
PINNED_JRE = re.compile(r"^eclipse-temurin:17\.(\d+)\.(\d+)_(\d+)-jre(-[a-z]+)?$")


def _parser() -> DockerfileParser:
    parser = DockerfileParser(fileobj=DOCKERFILE.open("rb"))
    return parser


def _stages(instructions: list[dict]) -> list[list[dict]]:
    stages: list[list[dict]] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _from(stage: list[dict]) -> tuple[str, str | None]:
    words = stage[0]["value"].split()
    return words[0], (words[2] if len(words) == 3 and words[1].upper() == "AS" else None)


def _run_lines(stage: list[dict]) -> str:
    return "\n".join(i["value"] for i in stage if i["instruction"] == "RUN")


@pytest.fixture(scope="module")
def stages() -> list[list[dict]]:
    return _stages(_parser().structure)


def test_is_multi_stage_with_a_runtime_stage_last(stages):
    names = [_from(s)[1] for s in stages]
    assert len(stages) >= 3, names
    assert names[-1] == "runtime"
    assert "builder" in names


def test_every_base_is_pinned_to_a_version_not_latest(stages):
    for stage in stages:
        image, _ = _from(stage)
        assert "latest" not in image, f"{image}: a floating tag"
        assert ":" in image, f"{image}: no tag"
        assert PINNED_PYTHON.match(image) or PINNED_UV.match(image) or PINNED_JRE.match(image), (
            f"{image}: not python:X.Y.Z-slim[-distro], ghcr.io/astral-sh/uv:X.Y.Z or "
            "eclipse-temurin:17.Y.Z_B-jre[-distro]"
        )


def test_python_bases_match_requires_python(stages):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    minor = re.search(r">=\s*(\d+\.\d+)", project["requires-python"]).group(1)
    pythons = [_from(s)[0] for s in stages if _from(s)[0].startswith("python:")]
    assert len(pythons) >= 2  # builder and runtime
    assert len(set(pythons)) == 1, f"builder and runtime differ: {pythons}"
    major, mnr, _patch, _distro = PINNED_PYTHON.match(pythons[0]).groups()
    assert f"{major}.{mnr}" == minor, f"{pythons[0]} vs requires-python {minor}"


def test_uv_comes_from_its_pinned_image(stages):
    uv_images = [_from(s)[0] for s in stages if PINNED_UV.match(_from(s)[0])]
    assert len(uv_images) == 1
    major, minor, patch = PINNED_UV.match(uv_images[0]).groups()
    assert (int(major), int(minor)) >= (0, 5), f"uv {major}.{minor}.{patch} is too old"
    builder = next(s for s in stages if _from(s)[1] == "builder")
    copies = [i["value"] for i in builder if i["instruction"] == "COPY"]
    assert any(c.startswith("--from=uv ") and "/uv" in c for c in copies), copies
    # pip is never used to get uv (or anything else)
    assert "pip install" not in _run_lines(builder)


def test_uv_pin_is_one_exact_release():
    text = DOCKERFILE.read_text()
    pins = re.findall(r"ghcr\.io/astral-sh/uv:(\S+)", text)
    assert pins, "uv does not come from ghcr.io/astral-sh/uv"
    for pin in pins:  # X.Y.Z exactly: not latest, not 0.13, not a range
        assert re.fullmatch(r"\d+\.\d+\.\d+", pin.split()[0]), pin
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    assert lock["version"] == 1  # the lock format every uv since 0.5 reads


def test_builder_syncs_the_lock_without_dev_and_compiles_bytecode(stages):
    builder = next(s for s in stages if _from(s)[1] == "builder")
    runs = _run_lines(builder)
    syncs = re.findall(r"uv sync[^\n&|]*", runs)
    assert syncs, runs
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync, sync
    env = " ".join(i["value"] for i in builder if i["instruction"] == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in env


def test_runtime_runs_as_a_numeric_non_root_user(stages):
    runtime = stages[-1]
    users = [i["value"] for i in runtime if i["instruction"] == "USER"]
    assert users, "the runtime stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000, users[-1]
    assert not gid or (gid.isdigit() and int(gid) > 0), users[-1]


def test_runtime_has_no_build_tools(stages):
    runtime = stages[-1]
    runs = _run_lines(runtime)
    assert not BUILD_TOOLS.search(runs), BUILD_TOOLS.search(runs)
    for ins in runtime:
        if ins["instruction"] == "COPY" and "--from=" in ins["value"]:
            assert ins["value"].split()[0] == "--from=builder", ins["value"]
            assert "/uv" not in ins["value"], "uv must not reach the runtime stage"


def test_runtime_carries_oci_labels():
    labels = _parser().labels
    for key in ("title", "description", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels, key
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    text = DOCKERFILE.read_text()
    assert f"ARG VERSION={version}" in text, "the image version label default != pyproject"


def test_configs_templates_and_venv_are_in_the_runtime(stages):
    runtime = stages[-1]
    copies = [i["value"].split() for i in runtime if i["instruction"] == "COPY"]
    sources = {c[-2] for c in copies}
    assert "configs" in sources
    assert "docs/templates" in sources
    assert any(c[0] == "--from=builder" and c[1] == "/app" for c in copies), copies
    for src in ("configs", "docs/templates"):
        assert (REPO / src).is_dir()
    env = " ".join(i["value"] for i in runtime if i["instruction"] == "ENV")
    assert "PATH=/app/.venv/bin" in env
    # the one writable place with a read-only root filesystem (charts mount an emptyDir)
    assert "FREIGHTML_HOME=/var/lib/freightml" in env


def test_dockerignore_keeps_local_state_and_venv_out():
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", ".freightml", "build"):
        assert entry in ignored
    for needed in ("src", "configs", "components", "pipelines", "uv.lock", "docs"):
        assert needed not in ignored


def test_image_settings_default_names_the_same_tag():
    """`make image` builds the repository freightml.image names, with the immutable tag
    `make release` pushes; the pipelines and `freightml deploy` default to that image."""
    from freightml.config import DeploySettings, PipelineSettings
    from freightml.image import IMAGE, REPOSITORY

    makefile = (REPO / "Makefile").read_text()
    image = re.search(r"^IMAGE \?= (\S+)$", makefile, re.M).group(1)
    assert image == f"{REPOSITORY}:$(VERSION)-$(GIT_SHA)"
    assert IMAGE.startswith(REPOSITORY + ":")
    assert PipelineSettings().base_image == DeploySettings().image == IMAGE


def test_spark_runs_in_the_image(stages):
    """compute.engine spark: pyspark is synced, Java 17 reaches the runtime through the
    builder, and the entrypoint serves Spark's driver and executor pods."""
    builder = next(s for s in stages if _from(s)[1] == "builder")
    for sync in re.findall(r"uv sync[^\n&|]*", _run_lines(builder)):
        assert "--extra spark" in sync, sync
    runtime = stages[-1]
    copies = [i["value"] for i in runtime if i["instruction"] == "COPY"]
    assert "--from=builder /opt/java/openjdk /opt/java/openjdk" in copies
    env = " ".join(i["value"] for i in runtime if i["instruction"] == "ENV")
    assert "JAVA_HOME=/opt/java/openjdk" in env and "/opt/java/openjdk/bin" in env
    entrypoint = [i["value"] for i in runtime if i["instruction"] == "ENTRYPOINT"]
    assert entrypoint == ['["/app/components/spark-entrypoint.sh"]']
    assert (REPO / "components" / "spark-entrypoint.sh").stat().st_mode & 0o111
