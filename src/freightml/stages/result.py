"""The base of every stage result: a frozen, strict pydantic model saved as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class StageResult(BaseModel):
    """A stage's typed output. ``save`` writes JSON; ``load`` reads and validates it, so a
    missing or malformed field fails at the stage that reads it, naming the field."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.model_dump_json(indent=2))
        return target

    @classmethod
    def load(cls, path: str | Path) -> Self:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"{cls.__name__}: {source} does not exist (did the stage run?)")
        return cls.model_validate_json(source.read_text())

    def to_metadata(self) -> dict[str, Any]:
        """JSON-able fields, for KFP artifact metadata and logs."""
        return self.model_dump(mode="json")
