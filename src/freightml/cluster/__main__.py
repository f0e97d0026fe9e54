"""``python -m freightml.cluster {render,check}``: what ``make manifests`` and
``make lint-k8s`` run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from freightml.cluster import render
from freightml.cluster.base import write_base
from freightml.cluster.check import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m freightml.cluster", description=__doc__)
    parser.add_argument("command", choices=["render", "check"])
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the checkout (default: .)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: REPO/build/manifests)"
    )
    parser.add_argument("--no-checkov", action="store_true", help="check: skip the checkov scan")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    out = args.out or repo / "build" / "manifests"
    try:
        if args.command == "render":
            for path in write_base(repo):
                print(f"regenerated {path.relative_to(repo)}")
            paths = render.write(render.render_all(repo), out)
            for path in paths:
                print(f"rendered {path.relative_to(repo) if path.is_relative_to(repo) else path}")
            return 0

        report = check(repo, out, checkov=not args.no_checkov)
    except (render.RenderError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
