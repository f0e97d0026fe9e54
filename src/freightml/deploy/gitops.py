"""Promotion through Git: write the model version into an overlay instead of the cluster.

``freightml deploy --version 7 --gitops manifests/overlays/prod`` rewrites that overlay's
``model-version.yaml``, a JSON 6902 patch of the base's InferenceService, so that kustomize
renders exactly what ``freightml deploy --version 7`` would apply; Argo CD syncs it once
the change is committed. The operations on the fields that carry the version (labels,
model URI annotation, the predictor's arguments and environment) and on the canary share
are found by comparing two builds of the InferenceService, so they follow the builder;
any other operation in the file is kept, in its order, after them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from freightml.config import DeploySettings

MODEL_PATCH = "model-version.yaml"
CANARY_PATH = "/spec/predictor/canaryTrafficPercent"
HEADER = """\
# The model version (and canary share) this environment serves: a JSON 6902 patch of the
# base's InferenceService. Written by `freightml deploy --version V [--canary N] --gitops
# <this overlay's directory>`; commit it and Argo CD rolls the change out. Operations on
# other paths are kept as they are.
"""


class GitOpsError(ValueError):
    """The overlay cannot take a model version (missing, or its kustomization lacks the patch)."""


@dataclass(frozen=True)
class GitOpsChange:
    """What ``write_model_version`` did: the patch file, whether it changed, the git commands."""

    path: Path
    changed: bool
    version: str
    canary_percent: int | None

    def git_commands(self, model_name: str) -> list[str]:
        env = self.path.parent.name
        share = "" if self.canary_percent is None else f" ({self.canary_percent}% canary)"
        message = f"Serve {model_name} v{self.version}{share} in {env}"
        return [
            f"git add {self.path.as_posix()}",
            f'git commit -m "{message}"',
            "git push",
        ]


def _pointer(parts: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _changed(a: Any, b: Any, parts: list[str | int]) -> list[list[str | int]]:
    """Paths of the scalars that differ between two manifests of the same shape."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return [p for k in a for p in _changed(a[k], b[k], [*parts, k])]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            p
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for p in _changed(x, y, [*parts, i])
        ]
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        raise RuntimeError(
            f"the InferenceService changes shape at {_pointer(parts)} between model versions: "
            "a version patch cannot express that"
        )
    return [] if a == b else [parts]


# The version manifests/base names; every overlay's model-version.yaml patch replaces it.
BASE_VERSION = "1"


def base_settings() -> DeploySettings:
    """The deploy settings manifests/base is generated with: the defaults (namespace
    freightml)."""
    return DeploySettings()


def _at(obj: Any, parts: list[str | int]) -> Any:
    for p in parts:
        obj = obj[p]
    return obj


def model_version_ops(version: str, canary_percent: int | None = None) -> list[dict[str, Any]]:
    """The JSON 6902 operations that turn the base's InferenceService into ``version``'s."""
    from freightml.deploy.inference_service import (  # noqa: PLC0415
        build_inference_service,
        check_canary,
        check_version,
        to_manifest,
    )

    version = check_version(version)
    canary_percent = check_canary(canary_percent)
    deploy = base_settings()
    base = to_manifest(build_inference_service(deploy, BASE_VERSION))
    other = to_manifest(build_inference_service(deploy, BASE_VERSION + "0"))
    target = to_manifest(build_inference_service(deploy, version))
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": _pointer(parts), "value": _at(target, parts)}
        for parts in _changed(base, other, [])
    ]
    if canary_percent is not None:
        ops.append({"op": "add", "path": CANARY_PATH, "value": canary_percent})
    return ops


def managed_paths() -> set[str]:
    """The paths ``write_model_version`` owns in a model-version patch."""
    return {op["path"] for op in model_version_ops("1")} | {CANARY_PATH}


def _check_overlay(overlay: Path) -> Path:
    kustomization = overlay / "kustomization.yaml"
    if not kustomization.is_file():
        raise GitOpsError(
            f"{overlay} is not a kustomize overlay (no kustomization.yaml): pass an overlay "
            "directory such as manifests/overlays/prod"
        )
    spec = yaml.safe_load(kustomization.read_text()) or {}
    paths = [p.get("path") for p in spec.get("patches") or [] if isinstance(p, dict)]
    if MODEL_PATCH not in paths:
        raise GitOpsError(
            f"{kustomization} does not apply {MODEL_PATCH}: add it under `patches:` with "
            "target {group: serving.kserve.io, kind: InferenceService}"
        )
    return overlay / MODEL_PATCH


def write_model_version(
    overlay: Path, version: str, canary_percent: int | None = None
) -> GitOpsChange:
    """Write ``version`` (and the canary share; None = all traffic) into ``overlay``'s patch."""
    ops = model_version_ops(version, canary_percent)  # bad input fails before any file is read
    path = _check_overlay(overlay)
    owned = managed_paths()
    kept: list[Any] = []
    old_text = path.read_text() if path.is_file() else ""
    if old_text:
        try:
            old = yaml.safe_load(old_text) or []
        except yaml.YAMLError as exc:
            raise GitOpsError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(old, list):
            raise GitOpsError(
                f"{path} must be a list of JSON 6902 operations, not {type(old).__name__}"
            )
        kept = [op for op in old if not (isinstance(op, dict) and op.get("path") in owned)]
    text = HEADER + yaml.safe_dump(ops + kept, sort_keys=False, default_flow_style=False)
    changed = text != old_text
    if changed:
        path.write_text(text)
    return GitOpsChange(path=path, changed=changed, version=version, canary_percent=canary_percent)
