"""Monitoring: `freightml monitor ...`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from freightml.cli.common import (
    ConfigOpt,
    cli_settings,
    console,
    fail,
    out,
    setup_logging,
    store_url,
)

monitor_app = typer.Typer(
    help="Monitoring: drift, realised quality and freshness of the champion.",
    no_args_is_help=True,
)

# -- monitor --------------------------------------------------------------------------
ALERT_EXIT_CODE = 3  # `monitor run --fail-on-alert` when an alert condition holds
_STATUS_STYLE = {"green": "green", "amber": "yellow", "red": "red"}


@monitor_app.command("run")
def monitor_run(
    window_days: Annotated[
        int | None,
        typer.Option(min=1, max=366, help="days in the window (default: configs/monitoring.yaml)"),
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="last day of the window (default: today, UTC)"),
    ] = None,
    fail_on_alert: Annotated[
        bool,
        typer.Option(
            "--fail-on-alert", help=f"exit {ALERT_EXIT_CODE} when an alert condition holds"
        ),
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder for snapshot.json and report.html")
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option(
            help="judge one serving environment's requests and forecasts (the predictor's "
            "namespace, e.g. freightml-prod); default: every environment's together"
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Compute one monitoring snapshot (drift, realised quality, freshness), store it in the
    collector's store, write the JSON and the HTML report and print a summary."""
    from mlflow.exceptions import MlflowException

    from freightml.monitoring.report import summary_lines
    from freightml.monitoring.run import run_monitoring

    settings = cli_settings(config)
    store_url(settings)
    setup_logging()
    try:
        result = run_monitoring(
            settings,
            as_of=as_of.date() if as_of else None,
            window_days=window_days,
            out_dir=out_dir,
            environment=environment,
        )
    except (RuntimeError, ValueError, FileNotFoundError, MlflowException) as exc:
        fail(f"monitoring failed: {exc}")
    snapshot = result.snapshot
    style = _STATUS_STYLE[snapshot.status]
    console.rule(f"[bold {style}]monitoring {snapshot.as_of}: {snapshot.status}")
    for line in summary_lines(snapshot):
        out.print(escape(line))
    out.print(f"report: {result.report_path}")
    out.print(f"snapshot: {result.json_path} (id {snapshot.id})")
    if fail_on_alert and snapshot.alerts:
        raise typer.Exit(ALERT_EXIT_CODE)


@monitor_app.command("list")
def monitor_list(
    limit: Annotated[int, typer.Option(min=1, help="how many snapshots")] = 20,
    config: ConfigOpt = None,
) -> None:
    """List the stored monitoring snapshots, newest first."""
    from freightml.monitoring.snapshots import SnapshotStore
    from freightml.store import Store

    settings = cli_settings(config)
    store = Store(store_url(settings))
    try:
        rows = SnapshotStore(store).list(limit=limit)
    finally:
        store.close()
    table = Table(title="monitoring snapshots, newest first")
    for column in ("as of", "status", "alerts", "model"):
        table.add_column(column, no_wrap=True)
    table.add_column("id", overflow="fold")
    for row in rows:
        table.add_row(
            str(row["as_of"]),
            f"[{_STATUS_STYLE[row['status']]}]{row['status']}[/]",
            str(row["n_alerts"]),
            f"{row['model_name']} v{row['model_version']}",
            str(row["id"]),
        )
    out.print(table)
