"""The tests' name for :mod:`freightml.cluster.schemas` (one implementation for the tests and
``make lint-k8s``)."""

from freightml.cluster.schemas import (
    CRDS,
    K8S_VERSION,
    REPO,
    ManifestError,
    crd_schemas,
    crd_validator,
    require_crds,
    to_jsonschema,
    validate_object,
    validate_objects,
)

__all__ = [
    "CRDS",
    "K8S_VERSION",
    "REPO",
    "ManifestError",
    "crd_schemas",
    "crd_validator",
    "require_crds",
    "to_jsonschema",
    "validate_object",
    "validate_objects",
]
