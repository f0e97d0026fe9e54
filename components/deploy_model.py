from kfp.dsl import Artifact, Output


def deploy_model(
    config: str,
    model_version: str,
    manifest: Output[Artifact],
    canary_percent: int = 100,
    dry_run: bool = False,
):
    """Serve a registered model version as a KServe InferenceService and wait until Ready.

    Args:
        config: FreightML settings as JSON.
        model_version: the registered model version to serve.
        manifest: the InferenceService manifest applied (YAML).
        canary_percent: share of traffic on the new version; 100 = all of it (no canary),
            0 = roll a canary back to the previous revision.
        dry_run: only build the manifest; touch no cluster.
    """
    from pathlib import Path

    import yaml

    from freightml.config import settings_from_json
    from freightml.deploy import deploy_model as run

    applied = run(
        settings_from_json(config),
        model_version,
        canary_percent=None if canary_percent == 100 else canary_percent,
        dry_run=dry_run,
        wait=not dry_run,
    )
    Path(manifest.path).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest.path).write_text(yaml.safe_dump(applied, sort_keys=False))
    meta = applied["metadata"]
    manifest.metadata.update(
        name=meta["name"],
        namespace=meta["namespace"],
        model_version=model_version,
        canary_percent=canary_percent,
        dry_run=dry_run,
    )
