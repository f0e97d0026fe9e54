"""Serving and collection: `freightml serve`, `freightml collector serve`, `freightml facts
ingest`."""

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
    setup_logging,
    store_history,
    store_url,
)
from freightml.config import COLLECTOR_TOKEN_FILE

collector_app = typer.Typer(
    help="The collector: inference events, forecasts, facts.", no_args_is_help=True
)

facts_app = typer.Typer(
    help="Actual volumes (facts) in the collector's store.", no_args_is_help=True
)


@app.command("serve")
def serve(
    model_uri: Annotated[
        str | None, typer.Option(help="models:/name@alias, models:/name/N (default: the champion)")
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="a local MLflow model directory instead")
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(help="facts file/URI for features (default: the collector's store)"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: serving.http_port)")] = None,
    events: Annotated[
        bool, typer.Option("--events/--no-events", help="post CloudEvents to the collector")
    ] = True,
    config: ConfigOpt = None,
) -> None:
    """Serve forecasts with kserve.ModelServer (V1 and V2 protocols) on 127.0.0.1."""
    from freightml.features.window import HistoryUnavailable
    from freightml.serving.model_source import ModelNotAvailable
    from freightml.serving.server import serve as run

    settings = cli_settings(config)
    setup_logging()
    sv = settings.serving
    source = history or sv.history_uri or store_history(settings.collector_store_url)
    try:
        run(
            settings,
            model_uri=None if model_dir else (model_uri or sv.model_uri or settings.champion_uri),
            model_dir=model_dir,
            history=source,
            http_port=port or sv.http_port,
            host=sv.host,
            collector_url=settings.collector_events_url if (events and sv.send_events) else None,
            reload_seconds=sv.reload_seconds,
            history_seconds=sv.history_seconds,
        )
    except (ModelNotAvailable, HistoryUnavailable) as exc:
        fail(f"cannot serve: {exc}")


@collector_app.command("serve")
def collector_serve(
    port: Annotated[int | None, typer.Option(help="port (default: collector.port)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the collector (CloudEvents sink, facts endpoint, metrics) on 127.0.0.1."""
    from freightml.collector.service import serve_collector

    settings = cli_settings(config)
    url = store_url(settings)
    port = port or settings.collector.port
    where = url.split("@")[-1]  # no credentials on the screen
    console.print(f"collector on http://{settings.collector.host}:{port} (store {where})")
    if not settings.collector.auth:
        console.print("[yellow]collector.auth is off: writes and payload reads are open[/]")
    elif settings.collector.tokens_dir is None:
        console.print(f"bearer token: {settings.home / COLLECTOR_TOKEN_FILE} (created if missing)")
    serve_collector(
        url,
        host=settings.collector.host,
        port=port,
        data_settings=settings.data,
        collector_settings=settings.collector,
        home=settings.home,
    )


@facts_app.command("ingest")
def facts_ingest(
    path: Annotated[str, typer.Argument(help="CSV/Parquet file or URI of actual volumes")],
    config: ConfigOpt = None,
) -> None:
    """Validate a facts file and add it to the store: duplicates ignored, revisions kept."""
    from freightml.collector.service import ingest_facts_file

    settings = cli_settings(config)
    url = store_url(settings)
    try:
        result = ingest_facts_file(
            path,
            url,
            column_mapping=settings.data.column_mapping or None,
            data_settings=settings.data,
        )
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    console.print(
        f"facts from {path}: {result.inserted} new, {result.revised} revised, "
        f"{result.duplicates} duplicates ignored"
    )


@facts_app.command("withdraw")
def facts_withdraw(
    origin: Annotated[str, typer.Option(help="origin station of the series")],
    destination: Annotated[str, typer.Option(help="destination station of the series")],
    cargo: Annotated[str, typer.Option(help="cargo type of the series")],
    dates: Annotated[
        list[str], typer.Option("--date", help="a day to withdraw (YYYY-MM-DD); repeatable")
    ],
    reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")],
    by: Annotated[str | None, typer.Option(help="who asks; default: the login name")] = None,
    config: ConfigOpt = None,
) -> None:
    """Withdraw facts of one series: no longer current, kept as revisions and audited.

    Over HTTP: POST /facts/withdrawals (docs/collector.md)."""
    import getpass

    import pandas as pd

    from freightml.store import Store
    from freightml.store.facts import UnknownFacts

    settings = cli_settings(config)
    keys = pd.DataFrame(
        {
            "origin_station": origin,
            "destination_station": destination,
            "cargo_type": cargo,
            "date": dates,
        }
    )
    store = Store(store_url(settings))
    try:
        result = store.facts.withdraw(
            keys, by=by or getpass.getuser(), reason=reason, credential="cli"
        )
    except (UnknownFacts, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()
    console.print(
        f"{origin} -> {destination} {cargo}: {result.withdrawn} fact(s) withdrawn, "
        f"{result.already} withdrawn before"
    )


@facts_app.command("export")
def facts_export(
    to: Annotated[str, typer.Argument(help="directory of the facts dataset (created if new)")],
    full: Annotated[
        bool, typer.Option("--full", help="rewrite every month, not only the latest ones")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Export the store's current facts as Parquet partitioned by month and origin region
    (docs/scale.md): the months from the dataset's latest one on are rewritten, earlier
    months are kept; the first export writes them all."""
    import pandas as pd

    from freightml.compute.layout import export_facts, months
    from freightml.store import Store

    settings = cli_settings(config)
    held = [] if full else months(to)
    start = pd.Timestamp(f"{held[-1]}-01").date() if held else None
    facts = Store(store_url(settings)).facts.frame(start=start)
    first = export_facts(facts, to, full=full)
    if first is None:
        console.print(f"no facts in the store from {start or 'the start'}: {to} unchanged")
        return
    console.print(f"{len(facts):,} facts exported to {to} from month {first} on")
