"""Deployment: `freightml deploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from freightml.cli.common import (
    ConfigOpt,
    app,
    cli_settings,
    console,
    fail,
    out,
)


# -- deploy ---------------------------------------------------------------------------
@app.command("deploy")
def deploy(
    version: Annotated[str, typer.Option("--version", help="registered model version to serve")],
    canary: Annotated[
        int | None, typer.Option(help="send this % of traffic to the new revision (0-100)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the InferenceService only")
    ] = False,
    gitops: Annotated[
        Path | None,
        typer.Option(
            "--gitops",
            help="write VERSION (and --canary) into this kustomize overlay's "
            "model-version.yaml (e.g. manifests/overlays/prod) instead of the cluster; "
            "commit it and Argo CD syncs it",
            file_okay=False,
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create or patch the KServe InferenceService serving VERSION (kubectl context), or
    with --gitops write it into an overlay for Argo CD."""
    from freightml.deploy import deploy_model
    from freightml.deploy.apply import DeployError
    from freightml.deploy.inference_service import to_yaml

    settings = cli_settings(config)
    if gitops is not None:
        from freightml.deploy.gitops import GitOpsError, write_model_version

        if dry_run:
            fail("--gitops writes a file and --dry-run prints the manifest: pass one of them")
        try:
            change = write_model_version(gitops, version, canary)
        except (ValueError, GitOpsError) as exc:
            fail(str(exc))
        state = "updated" if change.changed else "already up to date:"
        console.print(f"{state} {change.path}")
        if change.changed:
            console.print("commit it and Argo CD rolls it out:")
            for line in change.git_commands(settings.tracking.registered_model):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    try:
        manifest = deploy_model(
            settings, version, canary_percent=canary, dry_run=dry_run, wait=not dry_run
        )
    except (ValueError, DeployError, TimeoutError) as exc:
        fail(str(exc))
    out.print(to_yaml(manifest), markup=False, highlight=False)
    if not dry_run:
        console.print(
            f"InferenceService {settings.deploy.namespace}/{settings.deploy.name} serves v{version}"
        )
