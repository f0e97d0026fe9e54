"""`freightml`: the one command-line entry point."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from freightml.config import Settings, load_settings

app = typer.Typer(
    help="FreightML: forecast rail freight volume, the MLOps way.", no_args_is_help=True
)
data_app = typer.Typer(help="Generate, load and validate freight facts.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Compile and run Kubeflow pipelines.", no_args_is_help=True)
models_app = typer.Typer(
    help="The model registry: versions, promotion, rollback.", no_args_is_help=True
)
collector_app = typer.Typer(
    help="The collector: inference events, forecasts, facts.", no_args_is_help=True
)
facts_app = typer.Typer(
    help="Actual volumes (facts) in the collector's store.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(models_app, name="models")
app.add_typer(collector_app, name="collector")
monitor_app = typer.Typer(
    help="Monitoring: drift, realised quality and freshness of the champion.",
    no_args_is_help=True,
)
app.add_typer(facts_app, name="facts")
app.add_typer(monitor_app, name="monitor")
retrain_app = typer.Typer(
    help="Automatic retraining: decide by the policy, retrain, gate and promote; schedule "
    "it on Kubeflow Pipelines.",
    no_args_is_help=True,
)
app.add_typer(retrain_app, name="retrain")

console = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="settings YAML (default: $FREIGHTML_CONFIG or configs/freightml.yaml)",
    ),
]


def _settings(config: Path | None, **overrides) -> Settings:
    try:
        return load_settings(config, **overrides)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from exc


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


# -- config ---------------------------------------------------------------------------
@app.command("config")
def show_config(config: ConfigOpt = None) -> None:
    """Print the effective settings (file + environment) as JSON."""
    settings = _settings(config)
    out.print_json(settings.to_json())
    out.print(f"tracking URI: {settings.tracking_uri}")


# -- data -----------------------------------------------------------------------------
@data_app.command("generate")
def data_generate(
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Parquet (or .csv) file to write")],
    size: Annotated[str, typer.Option(help="small | demo | large")] = "demo",
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same data")] = 42,
    new_region: Annotated[
        str | None, typer.Option(help="inject series of a region unseen before")
    ] = None,
    new_stations: Annotated[
        int, typer.Option(help="inject this many stations that appear late")
    ] = 0,
    missing_days: Annotated[float, typer.Option(help="drop this share of series-days")] = 0.0,
    anomalies: Annotated[int, typer.Option(help="inject this many volume spikes")] = 0,
) -> None:
    """Generate synthetic facts calibrated on published Russian rail freight figures."""
    from freightml.data.sources import save_facts
    from freightml.data.synthetic import generate

    _logging()
    started = time.perf_counter()
    overrides: dict = {}
    if new_region:
        overrides["new_region"] = new_region
    if new_stations:
        overrides["new_stations"] = new_stations
    if missing_days:
        overrides["missing_days"] = missing_days
    if anomalies:
        overrides["anomalies"] = anomalies
    with console.status(f"generating {size} data (seed {seed})"):
        try:
            facts = generate(size, seed=seed, **overrides)
        except (ValueError, KeyError) as exc:
            _fail(str(exc), 2)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix == ".csv":
        facts.to_csv(out_path, index=False)
    else:
        save_facts(facts, out_path)
    console.print(
        f"wrote {len(facts):,} rows, {facts['date'].min().date()}..{facts['date'].max().date()} "
        f"to {out_path} in {time.perf_counter() - started:.1f}s"
    )


@data_app.command("validate")
def data_validate(
    path: Annotated[str, typer.Argument(help="CSV/Parquet path or fsspec URI")],
    reference: Annotated[
        str | None, typer.Option(help="reference facts for unseen categories")
    ] = None,
    report_dir: Annotated[Path, typer.Option(help="where report.json and report.html go")] = Path(
        ".freightml/reports"
    ),
    config: ConfigOpt = None,
) -> None:
    """Validate a facts file; exit 1 and name the faults when it has hard errors."""
    from freightml.data.sources import load_facts
    from freightml.data.validation import validate_facts

    settings = _settings(config)
    mapping = settings.data.column_mapping or None
    try:
        facts = load_facts(path, column_mapping=mapping)
        ref = load_facts(reference, column_mapping=mapping) if reference else None
    except (FileNotFoundError, ValueError, KeyError) as exc:
        _fail(str(exc), 2)
    report = validate_facts(facts, reference=ref, settings=settings.data)
    json_path, html_path = report.write(report_dir)
    for issue in report.issues:
        colour = "red" if issue.severity == "error" else "yellow"
        tag = escape(f"[{issue.check}]")
        console.print(f"[{colour}]{issue.severity}[/] {tag} {escape(issue.message)}")
    console.print(f"report: {json_path} and {html_path}")
    if not report.ok:
        raise typer.Exit(1)
    console.print(f"[green]valid[/]: {report.n_rows:,} rows, {len(report.warnings)} warnings")


# -- pipelines ------------------------------------------------------------------------
@pipeline_app.command("compile")
def pipeline_compile(
    out_dir: Annotated[Path | None, typer.Option("--out", help="directory for the IR YAML")] = None,
    config: ConfigOpt = None,
) -> None:
    """Compile every pipeline to KFP IR YAML (default build/pipelines/)."""
    from pipelines.run import compile_pipelines

    for path in compile_pipelines(_settings(config), out_dir):
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


@contextmanager
def _kfp_errors(host: str, what: str) -> Iterator[None]:
    """Turn kfp.Client's transport and API errors into a clear message and exit code 1."""
    from kfp_server_api import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except HTTPError as exc:  # connection refused, DNS, timeouts
        _fail(f"cannot reach the Kubeflow Pipelines API at {host}: {exc}")
    except ApiException as exc:
        _fail(
            f"the Kubeflow Pipelines API at {host} refused {what}: HTTP {exc.status} "
            f"{exc.reason}: {exc.body}"
        )


def _submit(
    settings: Settings, host: str, name: str, arguments: dict[str, str | int] | None = None
) -> None:
    """Compile ``name`` and create a run on the KFP API at ``host`` (kfp.Client)."""
    from pipelines.run import KfpClientBackend, submit

    with _kfp_errors(host, "the run"):
        run_id = submit(settings, KfpClientBackend(host), name, arguments=arguments)
    console.print(f"submitted {name} to {host}: run {run_id}")


def _iso_day(value: str | None) -> str:
    """``value`` checked as a YYYY-MM-DD date; empty when not given."""
    if not value:
        return ""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        _fail(f"--as-of {value!r} is not a date (YYYY-MM-DD)", 2)
    return day.isoformat()


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
    config: ConfigOpt = None,
) -> None:
    """Run a pipeline on the embedded default (kfp.local) or submit it to a KFP host."""
    from pipelines.run import pipeline_names

    if name not in pipeline_names():
        _fail(f"unknown pipeline {name!r}; known: {', '.join(pipeline_names())}", 2)
    arguments: dict[str, str | int] = {}
    if name in ("monitoring", "retraining"):
        arguments = {"as_of": _iso_day(as_of), "window_days": window_days or 0}
    elif as_of or window_days:
        _fail("--as-of and --window-days apply to the monitoring and retraining pipelines", 2)
    base = _settings(config)
    data = base.data.model_copy(
        update={k: v for k, v in {"source_uri": source, "synthetic_size": size}.items() if v}
    )
    settings = base.model_copy(update={"data": data})
    _logging()
    if host:
        _submit(settings, host, name, arguments)
        return
    if not local_:
        _fail("--no-local needs --host URL of a Kubeflow Pipelines API", 2)
    from pipelines.run import local_settings, run_local

    console.rule(f"[bold]{name} pipeline on the embedded default (kfp.local)")
    try:
        result = run_local(settings, name, **arguments)
    except RuntimeError as exc:
        _report_validation_failure(Path(local_settings(settings).local_pipeline_root))
        _fail(f"pipeline {name} failed: {exc}")
    console.rule(f"[bold green]{name} finished in {result.seconds:.0f}s")
    console.print(f"outputs: {result.pipeline_root}")
    _print_registry(settings)


# -- models ---------------------------------------------------------------------------
def _client(settings: Settings):
    from freightml.tracking import configure_mlflow

    return configure_mlflow(settings)


def _print_registry(settings: Settings) -> None:
    from freightml.tracking import RegistryError, list_versions

    try:
        rows = list_versions(_client(settings), settings.tracking.registered_model)
    except RegistryError as exc:
        _fail(str(exc))
    table = Table(title=f"registered model {settings.tracking.registered_model}")
    for column in ("version", "aliases", "wape", "wape_ratio", "gates", "created", "run_id"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(
                row[c]
                for c in ("version", "aliases", "wape", "wape_ratio", "gates", "created", "run_id")
            )
        )
    out.print(table)


@models_app.command("list")
def models_list(config: ConfigOpt = None) -> None:
    """List registered versions with their aliases and backtest WAPE."""
    _print_registry(_settings(config))


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

    settings = _settings(config)
    try:
        summary = version_summary(_client(settings), settings.tracking.registered_model, version)
    except RegistryError as exc:
        _fail(str(exc))
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
    config: ConfigOpt = None,
) -> None:
    """Give a version the champion alias, recording who and why."""
    from freightml.tracking import RegistryError, promote

    settings = _settings(config)
    try:
        event = promote(
            _client(settings),
            settings.tracking.registered_model,
            version,
            reason=reason,
            actor=actor,
        )
    except RegistryError as exc:
        _fail(str(exc))
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

    settings = _settings(config)
    try:
        event = rollback(
            _client(settings), settings.tracking.registered_model, reason=reason, to=to, actor=actor
        )
    except RegistryError as exc:
        _fail(str(exc))
    _print_move(event)


@models_app.command("history")
def models_history(config: ConfigOpt = None) -> None:
    """Show every champion change (promotions and rollbacks) with who and why."""
    from freightml.tracking.registry import audit_log

    settings = _settings(config)
    table = Table(title="champion history")
    for column in ("at", "action", "version", "previous", "actor", "reason"):
        table.add_column(column)
    for e in audit_log(_client(settings), settings.tracking.registered_model):
        table.add_row(e.at, e.action, e.version, e.previous_version or "", e.actor, e.reason)
    out.print(table)


# -- serving and collection -----------------------------------------------------------
def _store_history(url: str):
    """The facts in the collector's store, read afresh on every call (new facts arrive)."""

    def read(start=None):
        from freightml.collector.store import Store

        store = Store(url)
        try:
            return store.facts_frame(start=start)  # refreshes read only the warm window
        finally:
            store.close()

    return read


def _store_url(settings: Settings) -> str:
    """The collector's store URL; a local SQLite file's folder is created first."""
    url = settings.collector_store_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


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
    from freightml.serving.history import HistoryUnavailable
    from freightml.serving.model_source import ModelNotAvailable
    from freightml.serving.server import serve as run

    settings = _settings(config)
    _logging()
    sv = settings.serving
    source = history or sv.history_uri or _store_history(settings.collector_store_url)
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
        _fail(f"cannot serve: {exc}")


@collector_app.command("serve")
def collector_serve(
    port: Annotated[int | None, typer.Option(help="port (default: collector.port)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the collector (CloudEvents sink, facts endpoint, metrics) on 127.0.0.1."""
    from freightml.collector.service import serve_collector

    settings = _settings(config)
    url = _store_url(settings)
    port = port or settings.collector.port
    where = url.split("@")[-1]  # no credentials on the screen
    console.print(f"collector on http://{settings.collector.host}:{port} (store {where})")
    serve_collector(url, host=settings.collector.host, port=port, data_settings=settings.data)


@facts_app.command("ingest")
def facts_ingest(
    path: Annotated[str, typer.Argument(help="CSV/Parquet file or URI of actual volumes")],
    config: ConfigOpt = None,
) -> None:
    """Validate a facts file and add it to the store: duplicates ignored, revisions kept."""
    from freightml.collector.service import ingest_facts_file

    settings = _settings(config)
    url = _store_url(settings)
    try:
        result = ingest_facts_file(
            path,
            url,
            column_mapping=settings.data.column_mapping or None,
            data_settings=settings.data,
        )
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    console.print(
        f"facts from {path}: {result.inserted} new, {result.revised} revised, "
        f"{result.duplicates} duplicates ignored"
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
    config: ConfigOpt = None,
) -> None:
    """Compute one monitoring snapshot (drift, realised quality, freshness), store it in the
    collector's store, write the JSON and the HTML report and print a summary."""
    from mlflow.exceptions import MlflowException

    from freightml.monitoring.report import summary_lines
    from freightml.monitoring.run import run_monitoring

    settings = _settings(config)
    _store_url(settings)
    _logging()
    try:
        result = run_monitoring(
            settings,
            as_of=as_of.date() if as_of else None,
            window_days=window_days,
            out_dir=out_dir,
        )
    except (RuntimeError, ValueError, FileNotFoundError, MlflowException) as exc:
        _fail(f"monitoring failed: {exc}")
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
    from freightml.collector.store import Store

    settings = _settings(config)
    store = Store(_store_url(settings))
    try:
        rows = store.monitoring.list(limit=limit)
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
        _fail(str(exc), 2)
    day = as_of.date() if as_of else datetime.now(UTC).date()
    try:
        decision = decide_now(settings, store, policy, as_of=day, force=force, reason=reason)
    except (ValueError, MlflowException) as exc:
        _fail(f"cannot decide: {exc}")
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
    from freightml.collector.store import Store

    settings = _settings(config)
    store = Store(_store_url(settings))
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
    from freightml.collector.store import Store
    from freightml.retraining.act import act, shift_aware_window

    if force and not (reason and reason.strip()):
        _fail("--force needs --reason: say why the model must be retrained", 2)
    if reason and not force:
        _fail("--reason goes with --force", 2)
    settings = _settings(config)
    _logging()
    store = Store(_store_url(settings))
    try:
        policy, decision = _decide(settings, store, as_of, force, reason)
        _print_decision(decision)
        launch = _launcher(host, decision.id)
        if decision.retrain:
            console.rule(f"[bold]retraining ({decision.trigger}), decision {decision.id}")
        try:
            outcome = act(
                settings, store, policy, decision, launch, adjust=shift_aware_window(policy)
            )
        except Exception as exc:
            if host:
                from kfp_server_api import ApiException
                from urllib3.exceptions import HTTPError

                if isinstance(exc, HTTPError | ApiException):
                    _fail(f"cannot submit to the Kubeflow Pipelines API at {host}: {exc}")
            if isinstance(exc, RuntimeError | ValueError):
                _fail(f"retraining failed (recorded as failed): {exc}")
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
        _print_registry(settings)


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
        _fail(f"--pipeline must be retraining or training, not {pipeline!r}", 2)
    settings = _settings(config)
    if cron is None:
        try:
            cron = load_policy(settings.retraining_path).schedule.cron
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc), 2)
    try:
        expression = validate_cron(str(cron))
    except ValueError as exc:
        _fail(f"--cron: {exc}", 2)
    arguments: dict[str, str] = {}
    if pipeline == "retraining":
        arguments["as_of"] = _iso_day(as_of)
    elif as_of:
        _fail("--as-of applies to the retraining pipeline only (training takes no date)", 2)
    with _kfp_errors(host, "the recurring run"):
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

    settings = _settings(config)
    if gitops is not None:
        from freightml.deploy.gitops import GitOpsError, write_model_version

        if dry_run:
            _fail("--gitops writes a file and --dry-run prints the manifest: pass one of them")
        try:
            change = write_model_version(gitops, version, canary)
        except (ValueError, GitOpsError) as exc:
            _fail(str(exc))
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
        _fail(str(exc))
    out.print(to_yaml(manifest), markup=False, highlight=False)
    if not dry_run:
        console.print(
            f"InferenceService {settings.deploy.namespace}/{settings.deploy.name} serves v{version}"
        )


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

    settings = _settings(config)
    if loop:
        if monitor:
            _fail("--loop and --monitor are separate demos: choose one", 2)
        _loop_demo(settings, size=size, seed=seed)
        return
    size, seed = size or "demo", 42 if seed is None else seed
    data_file = settings.home / "data" / f"{size}-seed{seed}.parquet"
    with_config = ["--config", str(config)] if config else []
    started = time.perf_counter()
    model = settings.tracking.registered_model
    champ = champion_version(_client(settings), model) if monitor else None
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
        champ = champion_version(_client(settings), model)
        if champ is None:
            _fail("no champion after the demo run: the gates failed, see the model card")
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
    from freightml.monitoring.demo import (
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

    from freightml.retraining.loop import LoopScenario, run_loop, summary

    try:
        scenario = LoopScenario()
        scenario = replace(
            scenario,
            size=size or scenario.size,
            seed=scenario.seed if seed is None else seed,
        )
    except ValueError as exc:
        _fail(str(exc), 2)
    _logging()
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
        _fail(f"the loop stopped: {exc}")
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
        _fail("no new champion reached the predictor during the loop")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
