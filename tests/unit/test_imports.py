"""Static checks over src/freightml: kserve only behind its argv guard; no import cycles;
the runtime modules import only what the image installs."""

from __future__ import annotations

import ast
from functools import cache
from graphlib import CycleError, TopologicalSorter
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
        kserve = any(n == "kserve" or n.startswith("kserve.") for n in _imported(node))
        if kserve and (first_guard is None or node.lineno < first_guard):
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
    assert (
        unguarded_kserve_imports(
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from kserve import KServeClient\n"
        )
        == []
    )


def test_every_kserve_import_in_src_is_behind_the_guard() -> None:
    modules = _modules()
    assert GUARD in modules and "freightml.deploy.apply" in modules  # the scan sees src/
    offenders = {
        name: lines
        for name, path in modules.items()
        if name != GUARD and (lines := unguarded_kserve_imports(path.read_text()))
    }
    assert offenders == {}, f"import {GUARD} before kserve in: {offenders}"


# -- import cycles --------------------------------------------------------------------
def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported, plus ``if TYPE_CHECKING:`` ones (a
    static cycle is still a cycle); imports inside functions are lazy and not counted."""
    found, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return found


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` it imports; ``sources`` maps a dotted name to
    (source text, is a package)."""
    graph: dict[str, set[str]] = {}
    for name, (text, is_package) in sources.items():
        edges = set()
        for node in _module_level_imports(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], node.module or ""])
                targets = [base.rstrip("."), *(f"{base.rstrip('.')}.{a.name}" for a in node.names)]
            else:
                targets = _imported(node)
            for target in targets:
                while target and target not in sources:  # `from a.b import name` -> a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def first_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return None


def test_the_cycle_check_finds_a_cycle() -> None:
    sources = {
        "p": ("", True),
        "p.config": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.deploy import D\n",
            False,
        ),
        "p.deploy": ("from p.config import Settings\n", True),
        "p.deploy.apply": ("from . import D\ndef f():\n    import p.config\n", False),
    }
    graph = import_graph(sources)
    assert graph["p.deploy.apply"] == {"p.deploy"}  # relative import resolved, lazy one not
    assert set(first_cycle(graph) or []) == {"p.config", "p.deploy"}
    sources["p.config"] = ("import json\n", False)
    assert first_cycle(import_graph(sources)) is None


def test_no_import_cycle_in_src() -> None:
    modules = _modules()
    graph = import_graph(
        {name: (path.read_text(), path.name == "__init__.py") for name, path in modules.items()}
    )
    assert "freightml.config" in graph["freightml.deploy"]  # the graph has real edges
    assert first_cycle(graph) is None, f"import cycle: {' -> '.join(first_cycle(graph) or [])}"


# -- the runtime package needs no dev or tools dependency ---------------------------------
TOOLS_PACKAGE = "freightml.cluster"  # the offline cluster tools: the ``tools`` extra


def _requirement_names(requirements: list[str]) -> set[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return {canonicalize_name(Requirement(r).name) for r in requirements}


def not_in_the_image() -> set[str]:
    """Distributions the image's ``uv sync --no-dev`` does not install: the dev group and
    the tools extra, less what the runtime dependencies name themselves."""
    import tomllib

    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text())
    runtime = _requirement_names(project["project"]["dependencies"])
    extra = _requirement_names(project["project"]["optional-dependencies"]["tools"])
    dev = _requirement_names(project["dependency-groups"]["dev"])
    return (extra | dev) - runtime


@cache
def _owners() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return dict(packages_distributions())


def imports_outside_the_image(source: str, forbidden: set[str]) -> list[str]:
    """Top-level names ``source`` imports (anywhere, TYPE_CHECKING blocks aside) whose
    installed distribution is one of ``forbidden``."""
    from packaging.utils import canonicalize_name

    owners = _owners()
    tree = ast.parse(source)
    skip = _type_checking_only(tree)
    bad = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            continue
        for name in _imported(node)[:1] if isinstance(node, ast.ImportFrom) else _imported(node):
            top = name.split(".")[0]
            if {canonicalize_name(d) for d in owners.get(top, [])} & forbidden:
                bad.append(top)
    return bad


def test_the_image_check_knows_the_tools() -> None:
    forbidden = not_in_the_image()
    assert {"jsonschema", "kubernetes-validate", "grafana-foundation-sdk", "pytest"} <= forbidden
    assert "kfp" not in forbidden and "sqlalchemy" not in forbidden
    assert imports_outside_the_image("import jsonschema\nimport yaml\n", forbidden) == [
        "jsonschema"
    ]
    source = "def f():\n    from grafana_foundation_sdk.builders import dashboard\n"
    assert imports_outside_the_image(source, forbidden) == ["grafana_foundation_sdk"]


def test_every_runtime_module_imports_only_what_the_image_installs() -> None:
    """The image installs the runtime dependencies alone (``uv sync --no-dev``): every module
    but the cluster tools must import with nothing else."""
    forbidden = not_in_the_image()
    bad = {
        name: found
        for name, path in _modules().items()
        if not (name == TOOLS_PACKAGE or name.startswith(f"{TOOLS_PACKAGE}."))
        and (found := imports_outside_the_image(path.read_text(), forbidden))
    }
    assert not bad, f"runtime modules importing dev or tools dependencies: {bad}"


# -- module size (issue "One renovation": no module in src/ over 600 lines) ---------------
MAX_MODULE_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    """A module past 600 lines holds more than one idea: split it (docs/architecture.md)."""
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")
    }
    assert len(sizes) > 100  # every module was read
    over = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines: {over}"
