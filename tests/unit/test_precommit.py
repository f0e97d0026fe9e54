"""The pre-commit hooks run what `make lint` runs (and CI runs `make lint`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.unit]

REPO = Path(__file__).resolve().parents[2]


def _lint_recipe() -> list[str]:
    text = (REPO / "Makefile").read_text()
    block = re.search(r"^lint:.*?\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert block, "the Makefile has no lint target"
    return [line.strip().removeprefix("$(RUN) ") for line in block.group(1).splitlines()]


def test_the_hooks_run_the_lint_targets_commands_in_its_order() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    entries = [h["entry"].removeprefix("uv run --frozen ") for h in hooks]
    assert entries == _lint_recipe()
    assert all(h["language"] == "system" and h["pass_filenames"] is False for h in hooks)
