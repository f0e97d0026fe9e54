"""Write the values table of each chart's README.md from its values.yaml `# --` comments.

Every key of values.yaml carries a ``# -- description`` comment on the line(s) above it, or
is a mapping whose keys all do. The table goes between the README's
``<!-- values:start -->`` and ``<!-- values:end -->`` markers.

    python tools/helm_docs.py            # rewrite helm/*/README.md
    python tools/helm_docs.py --check    # exit 1: a README out of date or a key undocumented
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- values:start -->", "<!-- values:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\"/-]+):(?:\s|$)")
_DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")


@dataclass(frozen=True)
class Value:
    """One documented key of values.yaml."""

    path: str
    description: str
    default: Any


class UndocumentedValues(ValueError):
    """Keys of values.yaml without a `# --` comment."""


def _lookup(values: Any, parts: list[str]) -> Any:
    for part in parts:
        values = values[part]
    return values


def documented_values(values_file: Path) -> list[Value]:
    """The documented keys of ``values_file`` in file order; UndocumentedValues names the
    keys that have no ``# --`` comment and are not inside a documented key."""
    text = values_file.read_text()
    values = yaml.safe_load(text) or {}
    stack: list[tuple[int, str]] = []
    pending: str | None = None
    found: list[Value] = []
    missing: list[str] = []
    documented_prefixes: list[str] = []
    for line in text.splitlines():
        doc = _DOC.match(line)
        if doc:
            pending = doc.group("text").strip()
            continue
        match = _KEY.match(line)
        if not match or line.lstrip().startswith("#"):
            if line.strip() and not line.lstrip().startswith("#"):
                pending = None  # a list item or a continuation: the comment is spent
            continue
        indent = len(match.group("indent"))
        key = match.group("key").strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        path = ".".join(k for _, k in stack)
        if any(path.startswith(prefix + ".") for prefix in documented_prefixes):
            pending = None
            continue
        try:
            default = _lookup(values, [k for _, k in stack])
        except (KeyError, TypeError):
            pending = None
            continue  # a key inside a block scalar
        if pending is not None:
            found.append(Value(path, pending, default))
            documented_prefixes.append(path)
        elif not isinstance(default, dict) or not default:
            missing.append(path)
        pending = None
    if missing:
        raise UndocumentedValues(
            f"{values_file}: keys without a `# --` comment: {', '.join(missing)}"
        )
    return found


def _cell(value: Any) -> str:
    text = json.dumps(value, sort_keys=False)
    return "`" + text.replace("|", "\\|") + "`"


def values_table(values_file: Path) -> str:
    """The Markdown table of the documented values."""
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for v in documented_values(values_file):
        kind = type(v.default).__name__.replace("NoneType", "null")
        kind = {"dict": "object", "list": "list", "str": "string", "int": "int"}.get(kind, kind)
        description = v.description.replace("|", "\\|").replace("<", "\\<")
        rows.append(f"| `{v.path}` | {kind} | {_cell(v.default)} | {description} |")
    return "\n".join(rows) + "\n"


def render_readme(readme: Path, values_file: Path) -> str:
    """README text with the table between the markers replaced."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: no {START} ... {END} markers for the values table")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{values_table(values_file)}{END}{tail}"


def charts(root: Path = REPO / "helm") -> list[Path]:
    return sorted(p.parent for p in root.glob("*/Chart.yaml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a README is stale")
    args = parser.parse_args(argv)
    stale = []
    for chart in charts():
        readme, values = chart / "README.md", chart / "values.yaml"
        try:
            wanted = render_readme(readme, values)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 1
        if wanted != readme.read_text():
            if args.check:
                stale.append(str(readme.relative_to(REPO)))
            else:
                readme.write_text(wanted)
                print(f"wrote {readme.relative_to(REPO)}")
    if stale:
        print(f"out of date (run `make helm-docs`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
