"""The demos: `freightml demo` (training, `--monitor`, `--loop`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from freightml.cli.common import (
    ConfigOpt,
    app,
    cli_settings,
    console,
    fail,
    out,
    registry_client,
    setup_logging,
)
from freightml.config import Settings


# -- demo -----------------------------------------------------------------------------
def _invoke(ctx: typer.Context, *args: str) -> None:
    """Run another freightml command through the parser, as if typed on the command line."""
    root = ctx.find_root()
    console.print(f"[bold]$ freightml {escape(' '.join(args))}")
    try:  # standalone: usage errors are reported as on a real command line, then exit
        root.command.main(list(args), prog_name=root.info_name, standalone_mode=True)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise typer.Exit(exc.code if isinstance(exc.code, int) else 1) from None


@app.command("demo")
def demo(
    ctx: typer.Context,
    size: Annotated[
        str | None, typer.Option(help="synthetic data size (default: demo; small with --loop)")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="random seed (default: 42; the loop's own with --loop)")
    ] = None,
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor",
            help="then the monitoring demo: requests, later facts with a shift in one "
            "region, batch scoring and `monitor run` (reuses an existing champion)",
        ),
    ] = False,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="instead: the closed loop day by day (serve, collect, monitor, decide, "
            "retrain, promote) in its own home <home>/loop",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Generate data, run the training pipeline locally, register and promote a champion.

    Runs `data generate`, `pipeline compile` and `pipeline run training` as commands; with
    --monitor also the monitoring demo (see README, "Monitoring"); --loop runs the closed
    retraining loop instead (see README, "Automatic retraining")."""
    from freightml.tracking import champion_version

    settings = cli_settings(config)
    if loop:
        if monitor:
            fail("--loop and --monitor are separate demos: choose one", 2)
        _loop_demo(settings, size=size, seed=seed)
        return
    size, seed = size or "demo", 42 if seed is None else seed
    data_file = settings.home / "data" / f"{size}-seed{seed}.parquet"
    with_config = ["--config", str(config)] if config else []
    started = time.perf_counter()
    model = settings.tracking.registered_model
    champ = champion_version(registry_client(settings), model) if monitor else None
    if champ is not None and data_file.exists():
        console.print(f"using the existing champion {model} v{champ} and {data_file}")
    else:
        if not data_file.exists():
            _invoke(
                ctx,
                "data",
                "generate",
                "--out",
                str(data_file),
                "--size",
                size,
                "--seed",
                str(seed),
            )
        else:
            console.print(f"using existing {data_file}")
        _invoke(ctx, "pipeline", "compile", *with_config)
        _invoke(ctx, "pipeline", "run", "training", "--source", str(data_file), *with_config)
        champ = champion_version(registry_client(settings), model)
        if champ is None:
            fail("no champion after the demo run: the gates failed, see the model card")
    if monitor:
        _monitor_demo(ctx, settings, data_file, size=size, seed=seed, with_config=with_config)
    cards = settings.home / "cards" / f"{model}-v{champ}"
    console.rule(f"[bold green]demo done in {time.perf_counter() - started:.0f}s")
    out.print(f"champion: {model} v{champ}")
    out.print(f"model card: {cards / 'model_card.md'} (and .html)")
    out.print(f"project card: {cards / 'project_card.md'}")
    out.print(f"MLflow UI: uv run mlflow ui --backend-store-uri {settings.tracking_uri}")
    out.print(f"compiled pipelines: {settings.pipeline.compile_dir}")


def _monitor_demo(
    ctx: typer.Context,
    settings: Settings,
    data_file: Path,
    *,
    size: str,
    seed: int,
    with_config: list[str],
) -> None:
    """Requests to a real predictor, batch scoring, later facts with a shift in one region,
    then `monitor run` over the later days."""
    from datetime import timedelta

    from freightml.data.sources import load_facts, save_facts
    from freightml.demo.monitor import (
        LATER_DAYS,
        REQUESTS,
        demo_facts,
        freightml_service,
        request_bodies,
        send_requests,
    )

    console.rule("[bold]monitoring demo")
    facts = demo_facts(load_facts(str(data_file)), size, seed)
    folder = settings.home / "data" / "monitor-demo"
    history_file = save_facts(facts.history, folder / "history.parquet")
    later_file = save_facts(facts.later, folder / "later.parquet")
    console.print(
        f"history until {facts.origin} ({len(facts.history):,} rows) -> the store; later "
        f"facts: {LATER_DAYS} days, series loaded in {facts.shift_region} x{facts.shift_factor}"
    )
    _invoke(ctx, "facts", "ingest", str(history_file), *with_config)

    name = settings.tracking.registered_model
    collector_url = settings.collector_base_url
    serving_url = f"http://{settings.serving.host}:{settings.serving.http_port}"
    logs = settings.home / "logs"
    bodies = request_bodies(facts.history, REQUESTS, seed)
    console.print(f"starting the collector and the predictor; logs in {logs}")
    with (
        freightml_service(
            ["collector", "serve", *with_config],
            f"{collector_url}/healthz",
            logs / "collector.log",
            env={},
        ),
        freightml_service(
            ["serve", *with_config],
            f"{serving_url}/v2/models/{name}/ready",
            logs / "serve.log",
            env={},
        ),
    ):
        rows = send_requests(serving_url, name, bodies)
        console.print(f"{len(bodies)} requests answered with {rows:,} forecast rows")
    _invoke(ctx, "pipeline", "run", "batch_scoring", "--source", str(history_file), *with_config)
    _invoke(ctx, "facts", "ingest", str(later_file), *with_config)
    as_of = facts.origin + timedelta(days=LATER_DAYS)
    _invoke(
        ctx,
        "monitor",
        "run",
        "--as-of",
        as_of.isoformat(),
        "--window-days",
        str(LATER_DAYS),
        *with_config,
    )
    out.print(
        f"injected: series loaded in {facts.shift_region} x{facts.shift_factor} from "
        f"{facts.origin + timedelta(days=1)}; the gauges: `uv run freightml collector serve`, "
        f"then `curl {collector_url}/metrics`"
    )


def _loop_demo(settings: Settings, *, size: str | None, seed: int | None) -> None:
    """`demo --loop`: the closed loop, a line per simulated day, then the timeline."""
    from dataclasses import replace

    from freightml.demo.loop import LoopScenario, run_loop, summary

    try:
        scenario = LoopScenario()
        scenario = replace(
            scenario,
            size=size or scenario.size,
            seed=scenario.seed if seed is None else seed,
        )
    except ValueError as exc:
        fail(str(exc), 2)
    setup_logging()
    console.rule("[bold]the closed loop: serve, collect, monitor, decide, retrain, promote")
    console.print(
        f"{scenario.days} simulated days after the champion's training window; from day "
        f"{scenario.shift_day}: {scenario.shift_cargo} x{scenario.shift_factor} and a new "
        f"region, {scenario.new_region}"
    )

    def on_day(r) -> None:
        wape = "-" if r.realised_wape is None else f"{r.realised_wape:.3f}"
        console.print(
            f"day {r.day:2d} {r.date} v{r.version_served} WAPE {wape} drifted "
            f"{r.drifted_segments} {r.status:5s} {r.decision}"
            + (f": {escape(r.action)}" if r.action else "")
            + f" ({r.seconds:.0f}s)"
        )

    try:
        result = run_loop(
            settings, scenario, say=lambda text: console.print(escape(text)), on_day=on_day
        )
    except RuntimeError as exc:
        fail(f"the loop stopped: {exc}")
    table = Table(title="timeline")
    columns = ("day", "date", "version_served", "realised_wape", "shifted_wape")
    for column in (*columns, "drifted_segments", "status", "decision", "action"):
        table.add_column(column, overflow="fold")
    for r in result.timeline:
        table.add_row(
            str(r.day),
            str(r.date),
            f"v{r.version_served}",
            "-" if r.realised_wape is None else f"{r.realised_wape:.3f}",
            "-" if r.shifted_wape is None else f"{r.shifted_wape:.3f}",
            str(r.drifted_segments),
            r.status,
            r.decision,
            escape(r.action),
        )
    out.print(table)
    facts = summary(result)
    console.rule(f"[bold green]loop done in {result.seconds:.0f}s")
    out.print(json.dumps(facts, default=str))
    out.print(f"timeline: {result.csv_path} and {result.plot_path}")
    if facts["switch_day"] is None:
        fail("no new champion reached the predictor during the loop")
