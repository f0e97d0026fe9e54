"""Compile, run and submit Kubeflow pipelines: `freightml pipeline ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from freightml.cli.common import (
    ConfigOpt,
    cli_settings,
    console,
    fail,
    iso_day,
    kfp_errors,
    print_registry,
    setup_logging,
)
from freightml.config import Settings

pipeline_app = typer.Typer(help="Compile and run Kubeflow pipelines.", no_args_is_help=True)


# -- pipelines ------------------------------------------------------------------------
@pipeline_app.command("compile")
def pipeline_compile(
    out_dir: Annotated[Path | None, typer.Option("--out", help="directory for the IR YAML")] = None,
    config: ConfigOpt = None,
) -> None:
    """Compile every pipeline to KFP IR YAML (default build/pipelines/)."""
    from pipelines.run import compile_pipelines

    for path in compile_pipelines(cli_settings(config), out_dir):
        console.print(f"compiled {path}")


def _report_validation_failure(run_root: Path) -> None:
    """After a failed local run, show the validation errors if validation failed."""
    reports = sorted(run_root.glob("**/validate-data/report"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return
    report = json.loads(reports[-1].read_text())
    for issue in (i for i in report.get("issues", []) if i.get("severity") == "error"):
        tag = escape(f"[{issue['check']}]")
        console.print(f"[red]data error[/] {tag} {escape(issue['message'])}")
    console.print(f"validation report: {reports[-1]}")


def _submit(
    settings: Settings, host: str, name: str, arguments: dict[str, str | int] | None = None
) -> None:
    """Compile ``name`` and create a run on the KFP API at ``host`` (kfp.Client)."""
    from pipelines.run import KfpClientBackend, submit

    with kfp_errors(host, "the run"):
        run_id = submit(settings, KfpClientBackend(host), name, arguments=arguments)
    console.print(f"submitted {name} to {host}: run {run_id}")


@pipeline_app.command("run")
def pipeline_run(
    name: Annotated[
        str,
        typer.Argument(help="pipeline to run: training, batch_scoring, monitoring or retraining"),
    ] = "training",
    host: Annotated[
        str | None,
        typer.Option(help="KFP API URL; submits to the cluster instead of running locally"),
    ] = None,
    local_: Annotated[
        bool, typer.Option("--local/--no-local", help="run with kfp.local (default)")
    ] = True,
    source: Annotated[
        str | None, typer.Option(help="facts file or URI (overrides data.source_uri)")
    ] = None,
    size: Annotated[str | None, typer.Option(help="synthetic size when there is no source")] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="monitoring, retraining: last day of the window, YYYY-MM-DD"),
    ] = None,
    window_days: Annotated[
        int | None,
        typer.Option(min=1, max=366, help="monitoring, retraining: days in the window"),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="compute.engine: pandas, or spark for the training examples' feature build "
            "and batch scoring (pyspark local[*]; with --host SparkApplications; "
            "docs/scale.md)"
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run a pipeline on the embedded default (kfp.local) or submit it to a KFP host."""
    from pipelines.run import pipeline_names

    if name not in pipeline_names():
        fail(f"unknown pipeline {name!r}; known: {', '.join(pipeline_names())}", 2)
    arguments: dict[str, str | int] = {}
    if name in ("monitoring", "retraining"):
        arguments = {"as_of": iso_day(as_of), "window_days": window_days or 0}
    elif as_of or window_days:
        fail("--as-of and --window-days apply to the monitoring and retraining pipelines", 2)
    base = cli_settings(config)
    data = base.data.model_copy(
        update={k: v for k, v in {"source_uri": source, "synthetic_size": size}.items() if v}
    )
    settings = base.model_copy(update={"data": data})
    if engine is not None:
        if engine not in ("pandas", "spark"):
            fail(f"--engine must be pandas or spark, got {engine!r}", 2)
        compute = settings.compute.model_copy(update={"engine": engine})
        settings = settings.model_copy(update={"compute": compute})
    if host and settings.compute.engine == "spark":
        # on a cluster the Spark steps are SparkApplications of the Spark Operator
        compute = settings.compute.model_copy(update={"submit": "operator"})
        settings = settings.model_copy(update={"compute": compute})
    setup_logging()
    if host:
        _submit(settings, host, name, arguments)
        return
    if not local_:
        fail("--no-local needs --host URL of a Kubeflow Pipelines API", 2)
    from pipelines.run import local_settings, run_local

    console.rule(f"[bold]{name} pipeline on the embedded default (kfp.local)")
    try:
        result = run_local(settings, name, **arguments)
    except RuntimeError as exc:
        _report_validation_failure(Path(local_settings(settings).local_pipeline_root))
        fail(f"pipeline {name} failed: {exc}")
    console.rule(f"[bold green]{name} finished in {result.seconds:.0f}s")
    console.print(f"outputs: {result.pipeline_root}")
    print_registry(settings)
