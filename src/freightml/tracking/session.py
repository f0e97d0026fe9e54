"""Point MLflow at the configured store and describe the environment of a run."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from freightml.config import Settings, baked_git_commit, baked_lock_sha256, in_kubernetes_pod

TOOL_PACKAGES = ("freightml", "kfp", "mlflow", "scikit-learn", "pandas", "numpy", "pandera")


def configure_mlflow(settings: Settings, experiment: str | None = None) -> MlflowClient:
    """Set the tracking URI and the experiment; create both locally when missing.

    On the embedded default the SQLite file and the artifact folder live under
    ``settings.home``; nothing has to be started by hand.
    """
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = experiment or settings.tracking.experiment
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if client.get_experiment_by_name(name) is None:
        location = settings.artifact_root if uri.startswith("sqlite:") else None
        client.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    return client


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def file_sha256(path: Path) -> str | None:
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Set by the kubelet in every container of every Kubernetes pod.


def pipeline_image(settings: Settings) -> str:
    """The image a pipeline step runs in: ``pipeline.base_image`` inside a Kubernetes pod
    (the components run in that image on the cluster), else ``"local"`` (kfp.local runs the
    steps in the current Python environment, whose packages the tool versions record)."""
    return settings.pipeline.base_image if in_kubernetes_pod() else "local"


def environment_info(lock_file: Path = Path("uv.lock"), image: str | None = None) -> dict[str, str]:
    """Git commit, lock-file hash, Python and tool versions, and the image when known:
    what reproduces a run.

    In a cluster image there is no git checkout; the image build passes the commit in
    ``FREIGHTML_GIT_COMMIT`` (and the lock file's hash in ``FREIGHTML_LOCK_SHA256``).
    ``image`` is recorded only when given (see :func:`pipeline_image`).
    """
    info: dict[str, str] = {
        "git_commit": baked_git_commit() or _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": "unknown",
        "lock_sha256": file_sha256(lock_file) or baked_lock_sha256() or "unknown",
        "python": platform.python_version(),
    }
    if image is not None:
        info["image"] = image
    status = _git("status", "--porcelain", "--untracked-files=no")
    if info["git_commit"] != "unknown" and not baked_git_commit():
        info["git_dirty"] = "true" if status else "false"
    for pkg in TOOL_PACKAGES:
        try:
            info[f"version_{pkg.replace('-', '_')}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            info[f"version_{pkg.replace('-', '_')}"] = "not installed"
    return info
