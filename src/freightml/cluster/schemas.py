"""Schema validation of Kubernetes objects without a cluster.

Custom kinds (KServe, Argo CD, Prometheus Operator) are checked with jsonschema against
the ``openAPIV3Schema`` of the CRDs vendored in the repository's ``crds/`` (see its
README for versions and how to refresh them); built-in kinds with ``kubernetes_validate``.
A kind that is neither, or a missing CRD folder, is an error, never a skip or a silent
pass. CEL rules (``x-kubernetes-validations``) are not evaluated: only the structural
schema is.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[3]  # src/freightml/cluster/ -> the checkout
CRDS = REPO / "crds"
K8S_VERSION = "1.31"

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


class ManifestError(ValueError):
    """An object does not match the schema of its kind."""


def require_crds(directory: Path = CRDS) -> Path:
    """The CRD directory; a ManifestError if it holds no CRD (a clone must carry them)."""
    if not directory.is_dir() or not any(directory.rglob("*.yaml")):
        raise ManifestError(
            f"CRDs not found at {directory}: custom kinds cannot be validated "
            "(the repository's crds/ folder is missing or empty; see crds/README.md)"
        )
    return directory


@cache
def crd_schemas(directory: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every served version's openAPIV3Schema, keyed by (apiVersion, kind)."""
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(Path(directory).rglob("*.yaml")):
        with path.open("rb") as fh:
            docs = list(yaml.load_all(fh, Loader=yaml.CSafeLoader))
        for crd in docs:
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema is not None:
                    index[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return index


def to_jsonschema(schema: dict[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """A CRD's structural schema as JSON Schema (the Kubernetes extensions translated).

    ``strict`` forbids unknown fields on every object that lists its properties and does
    not say ``x-kubernetes-preserve-unknown-fields``, as the API server prunes them.
    """

    def walk(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        if node.pop("nullable", False) and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        for key in ("properties", "patternProperties"):
            for sub in node.get(key, {}).values():
                walk(sub)
        for key in ("items", "additionalProperties", "not"):
            if isinstance(node.get(key), dict):
                walk(node[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key, []):
                walk(sub)
        if (
            strict
            and node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node

    return walk(copy.deepcopy(schema))


@cache
def crd_validator(
    directory: str, api_version: str, kind: str, strict: bool
) -> jsonschema.Draft202012Validator | None:
    """The compiled validator of one custom kind, or None if no CRD defines it."""
    schema = crd_schemas(directory).get((api_version, kind))
    if schema is None:
        return None
    return jsonschema.Draft202012Validator(to_jsonschema(schema, strict=strict))


def _where(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    name = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if p) or "<unnamed>"
    return f"{obj.get('kind', '<no kind>')} {name}"


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _metadata_errors(obj: dict[str, Any]) -> list[str]:
    # CRD schemas leave metadata as a bare object; check what the API server would.
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return ["metadata.name: is required"]
    errors = []
    name = meta["name"]
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        errors.append(
            f"metadata.name: {name!r} is not a DNS subdomain (lowercase a-z, 0-9, '-', '.')"
        )
    for field in ("labels", "annotations"):
        for key, value in (meta.get(field) or {}).items():
            prefix, _, short = key.rpartition("/")
            if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix))) or not (
                len(short) <= 63 and _LABEL_NAME.fullmatch(short)
            ):
                errors.append(f"metadata.{field}: key {key!r} is not a valid qualified name")
            if not isinstance(value, str):
                errors.append(f"metadata.{field}.{key}: {value!r} is not a string")
            elif (
                field == "labels"
                and value
                and not (len(value) <= 63 and _LABEL_NAME.fullmatch(value))
            ):
                errors.append(f"metadata.labels.{key}: {value!r} is not a valid label value")
    return errors


def validate_object(
    obj: dict[str, Any],
    *,
    strict: bool = True,
    k8s_version: str = K8S_VERSION,
    crds: Path = CRDS,
) -> None:
    """Raise ManifestError naming every field of ``obj`` its kind's schema rejects."""
    if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
        raise ManifestError(f"not a Kubernetes object (no apiVersion/kind): {str(obj)[:80]}")
    where = _where(obj)
    errors = _metadata_errors(obj)
    directory = require_crds(crds)
    validator = crd_validator(str(directory), obj["apiVersion"], obj["kind"], strict)
    if validator is not None:
        errors += [
            f"{_path(e.absolute_path)}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
        ]
    else:
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=strict)
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise ManifestError(
                f"{where}: no schema for {obj['apiVersion']} {obj['kind']}: not a built-in kind "
                f"of Kubernetes {k8s_version} and no CRD for it in {directory}"
            ) from exc
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{_path(exc.path)}: {exc.message}")
    if errors:
        raise ManifestError(f"{where} is invalid:\n  " + "\n  ".join(errors))


def validate_objects(objs: Iterable[dict[str, Any]], **kwargs: Any) -> int:
    """Validate several objects (e.g. the documents of a rendered YAML); return how many."""
    count = 0
    for obj in objs:
        if obj is not None:
            validate_object(obj, **kwargs)
            count += 1
    return count
