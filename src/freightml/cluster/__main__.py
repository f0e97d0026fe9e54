"""``python -m freightml.cluster {render,check,release}``: what ``make manifests``,
``make lint-k8s`` and ``make release`` run."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from freightml.cluster import release, render
from freightml.cluster.base import write_base
from freightml.cluster.check import check


def regenerate_base(repo: Path | None = None) -> None:
    """Write the generated base files (``make manifests``' first step) and say which."""
    repo = (repo or Path.cwd()).resolve()
    for path in write_base(repo):
        print(f"regenerated {path.relative_to(repo)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m freightml.cluster", description=__doc__)
    parser.add_argument("command", choices=["render", "check", "release"])
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the checkout (default: .)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: REPO/build/manifests)"
    )
    parser.add_argument("--no-checkov", action="store_true", help="check: skip the checkov scan")
    parser.add_argument(
        "--digest",
        default=None,
        help="release: the digest of an image already built and pushed (pin only, no build)",
    )
    parser.add_argument(
        "--print-tag", action="store_true", help="release: print the immutable tag and stop"
    )
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    out = args.out or repo / "build" / "manifests"
    try:
        if args.command == "render":
            regenerate_base(repo)
            paths = render.write(render.render_all(repo), out)
            for path in paths:
                print(f"rendered {path.relative_to(repo) if path.is_relative_to(repo) else path}")
            return 0

        if args.command == "release" and args.print_tag:
            print(release.immutable_tag(repo))
            return 0
        if args.command == "release":
            made, changed = release.release(repo, digest=args.digest)
            print(f"pinned {made.reference}")
            for path in changed:
                print(f"updated {path.relative_to(repo)}")
            # a new process: this one imported freightml.image before the pin rewrote it
            regenerate = "from freightml.cluster.__main__ import regenerate_base; regenerate_base()"
            subprocess.run([sys.executable, "-c", regenerate], cwd=repo, check=True)
            print("commit these files; Argo CD and the next pipeline compile use this image")
            return 0

        report = check(repo, out, checkov=not args.no_checkov)
    except (render.RenderError, release.ReleaseError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
