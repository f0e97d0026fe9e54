"""The model registry: `freightml models ...`."""

from __future__ import annotations

import json
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
    print_registry,
    registry_client,
)

models_app = typer.Typer(
    help="The model registry: versions, promotion, rollback.", no_args_is_help=True
)


@models_app.command("list")
def models_list(config: ConfigOpt = None) -> None:
    """List registered versions with their aliases and backtest WAPE."""
    print_registry(cli_settings(config))


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="version to show")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")] = False,
    config: ConfigOpt = None,
) -> None:
    """A version's backtest: WAPE vs seasonal naive, segments, gates, interval coverage and
    the chosen candidate among the portfolio."""
    from freightml.stages.evaluate import version_summary
    from freightml.tracking import RegistryError

    settings = cli_settings(config)
    try:
        summary = version_summary(
            registry_client(settings), settings.tracking.registered_model, version
        )
    except RegistryError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    b = summary["backtest"]
    out.print(
        f"{summary['model']} v{summary['version']} ({', '.join(summary['aliases']) or 'no alias'})"
        f": WAPE {b['wape']:.4f} vs seasonal naive {b['wape_baseline']:.4f} "
        f"(ratio {b['wape_ratio']:.3f}), bias {b['bias']:+.2%}; gates "
        f"{'passed' if summary['gates']['passed'] else 'FAILED'}"
    )
    for name, value in summary["coverage"].items():
        out.print(f"{name.replace('_', ' ')}%: {value:.1%}")
    if summary["chosen"]:
        out.print(f"chosen candidate: {summary['chosen']}")
    table = Table(title="candidates (validation folds)")
    for column in ("candidate", "kind", "wape", "ratio", "bias", "segments over", "chosen"):
        table.add_column(column)
    for c in summary["candidates"]:
        table.add_row(
            c["label"],
            c["kind"],
            f"{c['wape']:.4f}",
            f"{c['wape_ratio']:.3f}",
            f"{c['bias']:+.1%}",
            f"{c['segments_over']} of {c['segments']}",
            "yes" if c["chosen"] else "",
        )
    if summary["candidates"]:
        out.print(table)


def _print_move(event) -> None:
    before = f"v{event.previous_version}" if event.previous_version else "none"
    console.print(
        f"champion: {before} -> v{event.version} by {event.actor}: {escape(event.reason)}"
    )


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="version to make champion")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit log)")],
    actor: Annotated[str | None, typer.Option(help="who (default: the OS user)")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="promote even without passed gate results or a load-and-score smoke test "
            "(recorded on the version as freightml.promote_forced)",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Give a version the champion alias, recording who and why. The version must have
    passed its gates and load and score its input example, unless --force."""
    from freightml.tracking import RegistryError, promote

    settings = cli_settings(config)
    try:
        event = promote(
            registry_client(settings),
            settings.tracking.registered_model,
            version,
            reason=reason,
            actor=actor,
            force=force,
        )
    except RegistryError as exc:
        fail(str(exc))
    _print_move(event)


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="why (recorded in the audit log)")],
    to: Annotated[
        str | None, typer.Option(help="version to return to (default: the previous champion)")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="who (default: the OS user)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Move the champion alias back to the previous champion (or --to VERSION)."""
    from freightml.tracking import RegistryError, rollback

    settings = cli_settings(config)
    try:
        event = rollback(
            registry_client(settings),
            settings.tracking.registered_model,
            reason=reason,
            to=to,
            actor=actor,
        )
    except RegistryError as exc:
        fail(str(exc))
    _print_move(event)


@models_app.command("history")
def models_history(config: ConfigOpt = None) -> None:
    """Show every champion change (promotions and rollbacks) with who and why."""
    from freightml.tracking.registry import audit_log

    settings = cli_settings(config)
    table = Table(title="champion history")
    for column in ("at", "action", "version", "previous", "actor", "reason"):
        table.add_column(column)
    for e in audit_log(registry_client(settings), settings.tracking.registered_model):
        table.add_row(e.at, e.action, e.version, e.previous_version or "", e.actor, e.reason)
    out.print(table)
