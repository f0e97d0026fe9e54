"""The YAML files a business edits (the methodology, the monitoring thresholds, the
retraining policy), read as typed models with errors that name the file and the keys."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

_Model = TypeVar("_Model", bound=BaseModel)


def load_yaml_model(path: str | Path, model: type[_Model], what: str) -> _Model:
    """Read the YAML file ``path`` and validate it as ``model``; every error names the
    file (``what`` says what it is, e.g. "methodology") and, when invalid, the bad keys."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what} file {file} does not exist")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{file}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"{file}: invalid {what}: {problems}") from exc
