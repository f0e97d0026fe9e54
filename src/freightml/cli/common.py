"""What every command group shares: the root app, the consoles, the settings option and
loader, logging, failing with a message, the registry client and the store URL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
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


def cli_settings(config: Path | None, **overrides) -> Settings:
    try:
        return load_settings(config, **overrides)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from exc


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, code: int = 1) -> None:
    # not wrapped at the console width: a path or URL in the message stays whole to copy
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def iso_day(value: str | None) -> str:
    """``value`` checked as a YYYY-MM-DD date; empty when not given."""
    if not value:
        return ""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        fail(f"--as-of {value!r} is not a date (YYYY-MM-DD)", 2)
    return day.isoformat()


def registry_client(settings: Settings):
    from freightml.tracking import configure_mlflow

    return configure_mlflow(settings)


def store_history(url: str):
    """The facts in the collector's store, read afresh on every call (new facts arrive)."""

    def read(start=None):
        from freightml.store import Store

        store = Store(url)
        try:
            return store.facts.frame(start=start)  # refreshes read only the warm window
        finally:
            store.close()

    return read


def store_url(settings: Settings) -> str:
    """The collector's store URL; a local SQLite file's folder is created first."""
    url = settings.collector_store_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def print_registry(settings: Settings) -> None:
    from freightml.tracking import RegistryError, list_versions

    try:
        rows = list_versions(registry_client(settings), settings.tracking.registered_model)
    except RegistryError as exc:
        fail(str(exc))
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


@contextmanager
def kfp_errors(host: str, what: str) -> Iterator[None]:
    """Turn kfp.Client's transport and API errors into a clear message and exit code 1."""
    from kfp_server_api import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except HTTPError as exc:  # connection refused, DNS, timeouts
        fail(f"cannot reach the Kubeflow Pipelines API at {host}: {exc}")
    except ApiException as exc:
        fail(
            f"the Kubeflow Pipelines API at {host} refused {what}: HTTP {exc.status} "
            f"{exc.reason}: {exc.body}"
        )
