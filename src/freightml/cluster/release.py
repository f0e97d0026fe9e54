"""The release path: one immutable image, pinned by digest everywhere it is named.

``python -m freightml.cluster release`` (``make release``):

1. names the image ``<repository>:<version>-<git short sha>`` (an immutable tag: a new
   commit is a new tag; a dirty working tree is refused, so the tag names its source);
2. builds it from components/Dockerfile with docker, podman or buildah and pushes it, and
   reads the digest the registry answered;
3. pins ``<repository>:<tag>@<digest>`` into every place the image is named:
   the GitOps overlays (``images:``), the monitoring chart's values (``image.tag`` and
   ``image.digest``) and :mod:`freightml.image` (the default of ``pipeline.base_image``, which
   the compiled pipelines carry, and of ``deploy.image``). An overlay's ``newName`` (a
   kind.local image, say) is replaced: a release runs the released image everywhere.

``--digest sha256:...`` skips the build and only pins (a hosted CI that built and pushed the
image itself passes its digest: .github/workflows/release.yml). Knative resolves tags to
digests anyway; pinning makes the Git state name exactly what runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

from freightml.cluster import render
from freightml.image import REPOSITORY

DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
OVERLAYS = "manifests/overlays"
CHART_VALUES = "helm/freightml-monitoring/values.yaml"
IMAGE_MODULE = "src/freightml/image.py"
ENGINES = ("docker", "podman", "buildah")


class ReleaseError(RuntimeError):
    """The release cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Release:
    repository: str
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def immutable_tag(repo: Path, version: str | None = None) -> str:
    """``<version>-<short sha>`` of a clean checkout; a dirty tree has no such tag."""
    if _git(repo, "status", "--porcelain", "--untracked-files=no"):
        raise ReleaseError(
            "the working tree has uncommitted changes: commit them first, so the image's tag "
            "names the commit it was built from"
        )
    version = version or installed_version("freightml")
    return f"{version}-{_git(repo, 'rev-parse', '--short=12', 'HEAD')}"


def check_digest(digest: str) -> str:
    if not DIGEST.fullmatch(digest):
        raise ReleaseError(f"not an image digest: {digest!r} (expected sha256: and 64 hex digits)")
    return digest


def _replace_one(text: str, pattern: str, replacement: str, where: str) -> str:
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
    if n != 1:
        raise ReleaseError(f"{where}: found no {pattern!r} to pin")
    return new


def _pin_overlay(text: str, release: Release, where: str) -> str:
    """The overlay's ``images:`` entry for the repository gets the tag and the digest."""
    entry = re.compile(
        rf"^(?P<indent>\s*)- name: {re.escape(release.repository)}\n"
        r"(?:(?P=indent)  (?:newName|newTag|digest): .*\n)*",
        re.M,
    )
    match = entry.search(text)
    if match is None:
        raise ReleaseError(f"{where}: no `images:` entry named {release.repository}")
    pad = match.group("indent") + "  "
    block = (
        f"{match.group('indent')}- name: {release.repository}\n"
        f"{pad}newTag: {release.tag}\n{pad}digest: {release.digest}\n"
    )
    return text[: match.start()] + block + text[match.end() :]


def pin(repo: Path, release: Release) -> list[Path]:
    """Write ``release`` into the overlays, the chart's values and freightml/image.py;
    return the files that changed (pinning the same release again changes nothing)."""
    check_digest(release.digest)
    edits: dict[Path, str] = {}
    overlays = sorted((repo / OVERLAYS).glob("*/kustomization.yaml"))
    if not overlays:
        raise ReleaseError(f"no overlay under {repo / OVERLAYS}")
    for path in overlays:
        edits[path] = _pin_overlay(path.read_text(), release, str(path.relative_to(repo)))
    values = repo / CHART_VALUES
    text = values.read_text()
    text = _replace_one(text, r"^(  tag: ).*$", rf'\g<1>"{release.tag}"', CHART_VALUES)
    text = _replace_one(text, r"^(  digest: ).*$", rf'\g<1>"{release.digest}"', CHART_VALUES)
    edits[values] = text
    module = repo / IMAGE_MODULE
    edits[module] = _replace_one(
        module.read_text(), r'^IMAGE = ".*"$', f'IMAGE = "{release.reference}"', IMAGE_MODULE
    )
    changed = []
    for path, new in edits.items():
        if path.read_text() != new:
            path.write_text(new)
            changed.append(path)
    return changed


def find_engine() -> str:
    for engine in ENGINES:
        found = shutil.which(engine)
        if found is None:
            continue
        if engine == "docker":
            alive = subprocess.run([found, "info"], capture_output=True, check=False)
            if alive.returncode != 0:
                continue
        return found
    raise ReleaseError(
        "no container build tool found: none of docker (with a reachable daemon), podman or "
        "buildah; install one, or let a hosted CI build and push the image and run "
        "`python -m freightml.cluster release --digest sha256:...` with the digest it printed"
    )


def _run(cmd: list[str], repo: Path) -> str:
    print("+ " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, cwd=repo, text=True, capture_output=True, check=False)
    if result.returncode != 0:
        raise ReleaseError(f"{Path(cmd[0]).name} {cmd[1]} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def build_and_push(repo: Path, repository: str, tag: str, engine: str | None = None) -> str:
    """Build components/Dockerfile as ``repository:tag``, push it, return the pushed digest."""
    engine = engine or find_engine()
    ref = f"{repository}:{tag}"
    sha = _git(repo, "rev-parse", "HEAD")
    build = [engine, "build", "-f", "components/Dockerfile", "-t", ref]
    build += ["--build-arg", f"GIT_COMMIT={sha}", "."]
    _run(build, repo)
    with tempfile.TemporaryDirectory() as tmp:
        digest_file = Path(tmp) / "digest"
        if Path(engine).name == "docker":
            _run([engine, "push", ref], repo)
            out = _run([engine, "image", "inspect", "--format", "{{json .RepoDigests}}", ref], repo)
            found = re.findall(r"@(sha256:[a-f0-9]{64})", out)
            digest = found[0] if found else ""
        else:
            _run([engine, "push", "--digestfile", str(digest_file), ref], repo)
            digest = digest_file.read_text().strip() if digest_file.is_file() else ""
    if not DIGEST.fullmatch(digest):
        raise ReleaseError(f"{Path(engine).name} pushed {ref} but reported no digest ({digest!r})")
    return digest


def release(
    repo: Path, *, digest: str | None = None, repository: str = REPOSITORY
) -> tuple[Release, list[Path]]:
    """Tag (and build and push, unless ``digest`` is given), then pin everywhere."""
    tag = immutable_tag(repo)
    if digest is None:
        digest = build_and_push(repo, repository, tag)
    made = Release(repository, tag, check_digest(digest))
    return made, pin(repo, made)


# -- make lint-k8s: a release pins every reference ------------------------------------------
FAKE_DIGEST = "sha256:" + "0123456789abcdef" * 4  # pins a copy of the repository, never pushed


def image_references(node: object, repository: str = REPOSITORY) -> list[str]:
    """Every ``image:`` value of a manifest that names ``repository``."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str) and value.startswith(repository):
                found.append(value)
            else:
                found += image_references(value, repository)
    elif isinstance(node, list):
        for item in node:
            found += image_references(item, repository)
    return found


def unpinned_after_release(repo: Path) -> list[str]:
    """Pin a fake release into a copy of ``repo``'s overlays, chart and image module, render
    them, and name every FreightML image reference that does not carry the digest (empty:
    a release pins everything). The pipelines' ``base_image`` and ``deploy.image`` default to
    :data:`freightml.image.IMAGE`; checked here too."""
    from freightml.config import DeploySettings, PipelineSettings  # noqa: PLC0415
    from freightml.image import IMAGE  # noqa: PLC0415

    problems = []
    for what, value in (
        ("pipeline.base_image", PipelineSettings().base_image),
        ("deploy.image", DeploySettings().image),
    ):
        if value != IMAGE:
            problems.append(f"{what} defaults to {value!r}, not freightml.image.IMAGE")
    if not (repo / IMAGE_MODULE).is_file():
        return [*problems, f"no {IMAGE_MODULE}: nothing pins the pipelines' and deploy's image"]
    made = Release(REPOSITORY, "0.0.0-release-check", FAKE_DIGEST)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        for part in ("manifests", "helm/freightml-monitoring"):
            shutil.copytree(repo / part, copy / part)
        (copy / IMAGE_MODULE).parent.mkdir(parents=True)
        shutil.copy(repo / IMAGE_MODULE, copy / IMAGE_MODULE)
        try:
            pin(copy, made)
        except ReleaseError as exc:
            return [*problems, f"the release cannot pin: {exc}"]
        if f'IMAGE = "{made.reference}"' not in (copy / IMAGE_MODULE).read_text():
            problems.append(f"{IMAGE_MODULE}: IMAGE not pinned")
        rendered = {
            f"overlay-{d.name}": render.render_kustomize(d)
            for d in sorted((copy / OVERLAYS).iterdir())
            if (d / "kustomization.yaml").is_file()
        }
        rendered["freightml-monitoring"] = render.render_chart(
            copy / "helm" / "freightml-monitoring"
        )
        for name, docs in rendered.items():
            refs = [ref for doc in docs for ref in image_references(doc)]
            if not refs:
                problems.append(f"{name}: names no {REPOSITORY} image")
            problems += [
                f"{name}: {ref} is not pinned by the release's digest"
                for ref in refs
                if not ref.endswith(f"@{made.digest}")
            ]
    return problems


def _tool(name: str) -> str:
    try:
        missing = f"{name} not found: run `make install` (the tools extra installs it)"
        return render.find_tool(name, missing)
    except render.RenderError as exc:
        raise ReleaseError(str(exc)) from exc


def workflow_problems(repo: Path) -> list[str]:
    """Every hosted-CI workflow under .github/workflows against GitHub's workflow schema
    (check-jsonschema's vendored SchemaStore copy) and zizmor's offline audits (unpinned
    actions, template injection, over-broad permissions, persisted credentials...)."""
    workflows = sorted((repo / ".github" / "workflows").glob("*.y*ml"))
    if not workflows:
        return [".github/workflows: no workflow (the release workflow is missing)"]
    problems = []
    for wf in workflows:
        rel = wf.relative_to(repo)
        schema = subprocess.run(
            [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(wf)],
            capture_output=True,
            text=True,
            check=False,
        )
        if schema.returncode != 0:
            problems.append(f"{rel}: not a valid GitHub workflow: {schema.stdout.strip()[-1500:]}")
        audit = subprocess.run(
            [_tool("zizmor"), "--offline", "--no-progress", "--format", "json", str(wf)],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            findings = json.loads(audit.stdout or "null")
        except json.JSONDecodeError:
            findings = None
        if not isinstance(findings, list):
            problems.append(f"{rel}: zizmor did not run: {audit.stderr.strip()[-1500:]}")
            continue
        for f in findings:
            where = (f.get("locations") or [{}])[0].get("symbolic", {}).get("annotation", "")
            problems.append(f"{rel}: zizmor {f.get('ident')}: {f.get('desc')} {where}".strip())
    return problems
