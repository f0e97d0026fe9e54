"""`freightml`: the one command-line entry point, one module per command group."""

from __future__ import annotations

from freightml.cli import data, demo, deploy, models, monitor, pipeline, retrain, serve
from freightml.cli.common import ConfigOpt, app, cli_settings, console, out

# demo, deploy and serve hang their commands on app itself; the groups are added below
__all__ = ["app", "console", "demo", "deploy", "main", "out"]

app.add_typer(data.data_app, name="data")
app.add_typer(pipeline.pipeline_app, name="pipeline")
app.add_typer(models.models_app, name="models")
app.add_typer(serve.collector_app, name="collector")
app.add_typer(serve.facts_app, name="facts")
app.add_typer(monitor.monitor_app, name="monitor")
app.add_typer(retrain.retrain_app, name="retrain")


# -- config ---------------------------------------------------------------------------
@app.command("config")
def show_config(config: ConfigOpt = None) -> None:
    """Print the effective settings (file + environment) as JSON."""
    settings = cli_settings(config)
    out.print_json(settings.to_json())
    out.print(f"tracking URI: {settings.tracking_uri}")


def main() -> None:  # pragma: no cover - console entry
    app()
