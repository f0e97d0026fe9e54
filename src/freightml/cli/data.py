"""Generate and validate facts: `freightml data ...`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from freightml.cli.common import (
    ConfigOpt,
    cli_settings,
    console,
    fail,
    setup_logging,
)

data_app = typer.Typer(help="Generate, load and validate freight facts.", no_args_is_help=True)


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

    setup_logging()
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
            fail(str(exc), 2)
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

    settings = cli_settings(config)
    mapping = settings.data.column_mapping or None
    try:
        facts = load_facts(path, column_mapping=mapping)
        ref = load_facts(reference, column_mapping=mapping) if reference else None
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc), 2)
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
