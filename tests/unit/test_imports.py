"""Static checks over src/freightml: kserve only behind its argv guard."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]

SRC = Path(__file__).resolve().parents[2] / "src"
GUARD = "freightml._kserve"


def _modules() -> dict[str, Path]:
    """Every module under src/ by dotted name."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative imports never reach kserve
        return []
    base = node.module or ""
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def unguarded_kserve_imports(source: str) -> list[int]:
    """Lines importing kserve that no earlier module-level ``import freightml._kserve``
    guards (the guard must run before the first kserve import, wherever that is)."""
    tree = ast.parse(source)
    skip = _type_checking_only(tree)
    guard_lines = [
        node.lineno
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom) and GUARD in _imported(node)
    ]
    first_guard = min(guard_lines, default=None)
    bad = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if any(n == "kserve" or n.startswith("kserve.") for n in _imported(node)):
            if first_guard is None or node.lineno < first_guard:
                bad.append(node.lineno)
    return sorted(bad)


def test_the_scan_catches_an_unguarded_import() -> None:
    assert unguarded_kserve_imports("import kserve\n") == [1]
    assert unguarded_kserve_imports("def f():\n    from kserve import Model\n") == [2]
    assert unguarded_kserve_imports("from kserve import Model\nimport freightml._kserve\n") == [1]
    # a guard inside a function does not protect the module's other imports
    assert unguarded_kserve_imports(
        "def f():\n    import freightml._kserve\nfrom kserve.errors import InvalidInput\n"
    ) == [3]
    assert unguarded_kserve_imports("import freightml._kserve\nfrom kserve import Model\n") == []
    assert unguarded_kserve_imports(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kserve import KServeClient\n"
    ) == []


def test_every_kserve_import_in_src_is_behind_the_guard() -> None:
    modules = _modules()
    assert GUARD in modules and "freightml.deploy.apply" in modules  # the scan sees src/
    offenders = {
        name: lines
        for name, path in modules.items()
        if name != GUARD and (lines := unguarded_kserve_imports(path.read_text()))
    }
    assert offenders == {}, f"import {GUARD} before kserve in: {offenders}"
