from kfp.dsl import HTML, Artifact, Output


def monitor_model(
    config: str, as_of: str, window_days: int, snapshot: Output[Artifact], report: Output[HTML]
):
    """Monitor the champion: drift, realised quality and freshness, stored as a snapshot.

    Args:
        config: FreightML settings as JSON.
        as_of: last day of the window (YYYY-MM-DD), empty for today (UTC).
        window_days: days in the window, 0 for the monitoring config's default.
        snapshot: the snapshot as JSON (also stored in the collector's store).
        report: the HTML report.
    """
    from freightml.config import settings_from_json
    from freightml.stages.monitor import monitor_model as run

    info = run(
        settings_from_json(config),
        as_of=as_of,
        window_days=window_days,
        snapshot_path=snapshot.path,
        report_path=report.path,
    )
    snapshot.metadata.update(info.to_metadata())
