"""Automatic retraining: `freightml retrain ...`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from freightml.cli.common import (
    ConfigOpt,
    cli_settings,
    console,
    fail,
    iso_day,
    kfp_errors,
    out,
    print_registry,
    setup_logging,
    store_url,
)
from freightml.config import Settings

retrain_app = typer.Typer(
    help="Automatic retraining: decide by the policy, retrain, gate and promote; schedule "
    "it on Kubeflow Pipelines.",
    no_args_is_help=True,
)

# -- retrain --------------------------------------------------------------------------
RETRAIN_EXIT_CODE = 10  # `retrain check`: a retrain is needed

AsOfOpt = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="the day to decide for (default: today, UTC)"),
]


def _decide(settings: Settings, store, as_of: datetime | None, force: bool, reason: str | None):
    from datetime import UTC

    from mlflow.exceptions import MlflowException

    from freightml.retraining.evidence import decide_now
    from freightml.retraining.policy import load_policy

    try:
        policy = load_policy(settings.retraining_path)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), 2)
    day = as_of.date() if as_of else datetime.now(UTC).date()
    try:
        decision = decide_now(settings, store, policy, as_of=day, force=force, reason=reason)
    except (ValueError, MlflowException) as exc:
        fail(f"cannot decide: {exc}")
    return policy, decision


def _print_decision(decision) -> None:
    def num(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    table = Table(title=f"retraining triggers, {decision.model_name} as of {decision.as_of}")
    for column in ("trigger", "enabled", "value", "threshold", "fired"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for t in decision.triggers:
        table.add_row(
            t.name,
            "yes" if t.enabled else "no",
            num(t.value),
            num(t.threshold),
            "[bold red]FIRED[/]" if t.fired else "no",
            escape(t.detail),
        )
    out.print(table)
    table = Table(title="guards")
    for column in ("guard", "value", "limit", "would block"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for g in decision.guards:
        table.add_row(
            g.name,
            num(g.value),
            num(g.limit),
            "[bold red]BLOCKS[/]" if g.blocked else "no",
            escape(g.detail),
        )
    out.print(table)
    verdict = "RETRAIN" if decision.retrain else "no retrain"
    out.print(f"decision: {verdict}: {escape(decision.reason)}")
    out.print(f"key: {decision.key}")


@retrain_app.command("check")
def retrain_check(as_of: AsOfOpt = None, config: ConfigOpt = None) -> None:
    """Print the retraining decision with every trigger and guard; records nothing.
    Exit 0: no action; exit 10: a retrain is needed."""
    from freightml.store import Store

    settings = cli_settings(config)
    store = Store(store_url(settings))
    try:
        _policy, decision = _decide(settings, store, as_of, False, None)
    finally:
        store.close()
    _print_decision(decision)
    if decision.retrain:
        raise typer.Exit(RETRAIN_EXIT_CODE)


def _launcher(host: str | None, decision_id: str):
    """Start the training pipeline: kfp.local here, or a KFP run at ``host``."""
    from pipelines.run import training_launcher

    return training_launcher(
        host, decision_id, say=lambda text: console.print(f"[bold]{escape(text)}")
    )


@retrain_app.command("run")
def retrain_run(
    as_of: AsOfOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="retrain even when no trigger fired (needs --reason)")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="why a forced retrain is needed (recorded with it)")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="KFP API URL; submits the training run instead of kfp.local"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Decide, record the decision and, when a trigger fired (or --force --reason), run
    the training pipeline with the decision recorded on it; its register step applies the
    gates and the champion/challenger promotion."""
    from freightml.retraining.act import act_on_decision, shift_aware_window
    from freightml.store import Store

    if force and not (reason and reason.strip()):
        fail("--force needs --reason: say why the model must be retrained", 2)
    if reason and not force:
        fail("--reason goes with --force", 2)
    settings = cli_settings(config)
    setup_logging()
    store = Store(store_url(settings))
    try:
        policy, decision = _decide(settings, store, as_of, force, reason)
        _print_decision(decision)
        launch = _launcher(host, decision.id)
        if decision.retrain:
            console.rule(f"[bold]retraining ({decision.trigger}), decision {decision.id}")
        try:
            outcome = act_on_decision(
                settings, store, policy, decision, launch, adjust=shift_aware_window(policy)
            )
        except Exception as exc:
            if host:
                from kfp_server_api import ApiException
                from urllib3.exceptions import HTTPError

                if isinstance(exc, HTTPError | ApiException):
                    fail(f"cannot submit to the Kubeflow Pipelines API at {host}: {exc}")
            if isinstance(exc, RuntimeError | ValueError):
                fail(f"retraining failed (recorded as failed): {exc}")
            raise
    finally:
        store.close()
    if outcome.status == "skipped" and decision.retrain:  # another process was first
        console.print(f"nothing started: {escape(outcome.message or '')}")
    elif outcome.status == "skipped" and (decision.fired or decision.forced):
        blocked = ", ".join(g.name for g in decision.blocked_by)
        console.print(f"nothing started: blocked by {blocked}")
    elif outcome.status == "skipped":
        console.print("nothing started (use --force --reason to retrain anyway)")
    elif outcome.status == "started":
        console.print(f"submitted: run {outcome.run_id} ({escape(outcome.message or '')})")
    else:
        console.print(
            f"retrained: version {outcome.version} (run {outcome.run_id}): "
            f"{escape(outcome.message or '')}"
        )
        print_registry(settings)


@retrain_app.command("schedule")
def retrain_schedule(
    host: Annotated[str, typer.Option(help="KFP API URL (Kubeflow Pipelines)")],
    cron: Annotated[
        str | None,
        typer.Option(
            help="6-field cron, seconds first (KFP), e.g. '0 0 3 * * 1' = Mondays 03:00; "
            "default: the retraining policy's schedule"
        ),
    ] = None,
    pipeline: Annotated[
        str, typer.Option(help="pipeline the schedule starts: retraining or training")
    ] = "retraining",
    as_of: Annotated[
        str | None,
        typer.Option(
            help="fixed as-of date (YYYY-MM-DD) for every run; default: the day each run starts"
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create or update (never duplicate) the KFP recurring run: one run at a time, no
    catch-up after a pause, the as-of date as an explicit parameter."""
    from freightml.retraining.policy import load_policy, validate_cron
    from pipelines.run import KfpClientBackend, schedule

    if pipeline not in ("retraining", "training"):
        fail(f"--pipeline must be retraining or training, not {pipeline!r}", 2)
    settings = cli_settings(config)
    if cron is None:
        try:
            cron = load_policy(settings.retraining_path).schedule.cron
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc), 2)
    try:
        expression = validate_cron(str(cron))
    except ValueError as exc:
        fail(f"--cron: {exc}", 2)
    arguments: dict[str, str] = {}
    if pipeline == "retraining":
        arguments["as_of"] = iso_day(as_of)
    elif as_of:
        fail("--as-of applies to the retraining pipeline only (training takes no date)", 2)
    with kfp_errors(host, "the recurring run"):
        backend = KfpClientBackend(host)
        outcome = schedule(settings, backend, pipeline, expression, arguments=arguments)
        in_flight = backend.runs_in_flight()
    what = {
        "created": "created",
        "unchanged": "already up to date:",
        "enabled": "re-enabled",
        "replaced": f"replaced ({', '.join(outcome.changed)} changed)",
    }[outcome.action]
    console.print(f"recurring run {what} {outcome.recurring_run_id} on {host}: cron {expression!r}")
    for run in in_flight:
        console.print(f"in flight: {run.name} ({run.id}, {run.state}, {run.pipeline_name})")
