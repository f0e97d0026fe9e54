"""Where the served model comes from: a registry alias, a fixed URI, or a local directory.

``RegistryModel`` follows an alias (``models:/freight-volume@champion``): ``current_version``
is the cheap poll, ``load(version)`` loads exactly that version, so the version reported is
the one served. ``LocalModel`` is an MLflow sklearn model directory, e.g. what KServe's
storage initializer mounts at /mnt/models; it never changes underneath the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

MODEL_URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


class ModelNotAvailable(RuntimeError):
    """The model to serve is missing or cannot be loaded; the message says where and why."""


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    version: str
    uri: str


class ModelSource(Protocol):
    follows: bool  # True when the version can change (an alias worth polling)

    def describe(self) -> str: ...

    def current_version(self) -> str: ...

    def load(self, version: str | None = None) -> LoadedModel: ...


def _load_sklearn(uri: str) -> Any:
    import mlflow.sklearn

    return mlflow.sklearn.load_model(uri)


class RegistryModel:
    """A registered model by alias (followed) or by version (fixed)."""

    def __init__(
        self,
        tracking_uri: str,
        name: str,
        alias: str | None = "champion",
        version: str | None = None,
    ) -> None:
        if (alias is None) == (version is None):
            raise ValueError("give exactly one of alias or version")
        self.tracking_uri = tracking_uri
        self.name = name
        self.alias = alias
        self.version = version
        self.follows = alias is not None

    @classmethod
    def from_uri(cls, uri: str, tracking_uri: str) -> RegistryModel:
        match = MODEL_URI_RE.match(uri)
        if not match:
            raise ValueError(f"{uri!r} is not models:/<name>@<alias> or models:/<name>/<version>")
        return cls(tracking_uri, match["name"], match["alias"], match["version"])

    def describe(self) -> str:
        ref = f"@{self.alias}" if self.alias else f"/{self.version}"
        return f"models:/{self.name}{ref} in {self.tracking_uri}"

    def _client(self) -> Any:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def current_version(self) -> str:
        if self.version is not None:
            return self.version
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client().get_model_version_by_alias(self.name, self.alias).version)
        except MlflowException as exc:
            raise ModelNotAvailable(
                f"no version of registered model {self.name!r} has the alias {self.alias!r} in "
                f"{self.tracking_uri} ({exc.message if hasattr(exc, 'message') else exc}); "
                "train and promote one first (the training pipeline, or freightml promote)"
            ) from exc

    def load(self, version: str | None = None) -> LoadedModel:
        version = version or self.current_version()
        self._client()
        uri = f"models:/{self.name}/{version}"
        try:
            return LoadedModel(_load_sklearn(uri), version, uri)
        except Exception as exc:
            raise ModelNotAvailable(
                f"could not load {uri} from {self.tracking_uri}: {type(exc).__name__}: {exc}"
            ) from exc


class LocalModel:
    """An MLflow sklearn model directory (or any URI mlflow.sklearn.load_model reads)."""

    follows = False

    def __init__(self, path: str | Path, version: str | None = None) -> None:
        self.path = str(path)
        self.version = version

    def describe(self) -> str:
        return self.path

    def current_version(self) -> str:
        return self.version or "local"

    def load(self, version: str | None = None) -> LoadedModel:
        local = Path(self.path)
        if "://" not in self.path and not (local / "MLmodel").is_file():
            what = "does not exist" if not local.exists() else "has no MLmodel file"
            raise ModelNotAvailable(
                f"no MLflow model at {self.path}: the directory {what}. Point model_dir at an "
                "MLflow sklearn model (KServe's storage initializer mounts it at /mnt/models)"
            )
        try:
            model = _load_sklearn(self.path)
        except Exception as exc:
            raise ModelNotAvailable(
                f"could not load the MLflow model at {self.path}: {type(exc).__name__}: {exc}"
            ) from exc
        return LoadedModel(model, self.current_version(), self.path)
