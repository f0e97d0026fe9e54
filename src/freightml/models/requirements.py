"""The pip requirements a saved FreightML model declares."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement


def model_requirements() -> list[str]:
    """freightml's own dependencies pinned at the installed versions: what loading one of
    its models needs (the model classes live in freightml). Given to MLflow explicitly,
    because its inference loads the model in a subprocess for seconds per save and finds
    this same environment."""
    return list(_pinned())


@cache
def _pinned() -> tuple[str, ...]:
    pinned: list[str] = []
    for line in requires("freightml") or []:
        requirement = Requirement(line)
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            continue
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        pinned.append(f"{requirement.name}{extras}=={installed}")
    return tuple(sorted(pinned))
