"""Every fast `freightml` command through Typer's real parser (CliRunner), with --config
where the command takes it; exit codes and output checked against values known apart
from the CLI. Registry, serving and collector commands:
tests/integration/test_cli_integration.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
import typer.core
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from freightml.cli import app
from freightml.data.schema import REGIONS, SERIES_KEY
from freightml.data.synthetic import generate
from freightml.monitoring.snapshots import SnapshotStore
from freightml.store import Store
from helpers import cli, free_port, uvicorn_in_thread, words

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate("small", seed=3)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "freightml.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "data": {"seed": 7, "synthetic_size": "small"},
                "tracking": {"experiment": "from-file"},
                "collector": {"store_url": f"sqlite:///{tmp_path / 'store.db'}"},
            }
        )
    )
    return path


# -- config ---------------------------------------------------------------------------
def test_config_prints_file_and_environment_values(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREIGHTML_TRACKING__EXPERIMENT", "from-env")
    monkeypatch.setenv("FREIGHTML_DATA__SYNTHETIC_SIZE", "demo")  # the default, beats the file
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///t.db")
    for flag in ("--config", "-c"):
        result = cli("config", flag, str(config))
        shown, _end = json.JSONDecoder().raw_decode(result.stdout.lstrip())
        assert shown["data"]["seed"] == 7  # the file
        assert shown["tracking"]["experiment"] == "from-env"
        assert shown["data"]["synthetic_size"] == "demo"
        assert shown["data"]["train_window_days"] == 730  # the default
        assert "tracking URI: sqlite:///t.db" in result.stdout


def test_config_errors_exit_2_and_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  sead: 7\n")
    result = cli("config", "--config", str(bad), code=2)
    assert "configuration error" in result.output and "sead" in result.output
    result = cli("config", "--config", str(tmp_path / "none.yaml"), code=2)
    assert "does not exist" in words(result.output)
    result = cli("config", "--colour", code=2)  # the parser itself rejects unknown options
    assert "No such option" in result.output


# -- data -----------------------------------------------------------------------------
def test_data_generate_writes_what_the_generator_makes(tmp_path: Path, small: pd.DataFrame) -> None:
    out = tmp_path / "facts" / "small.parquet"
    result = cli("data", "generate", "--out", str(out), "--size", "small", "--seed", "3")
    assert f"wrote {len(small):,} rows, 2023-01-01..2025-03-31" in words(result.output)
    written = pd.read_parquet(out)
    assert len(written) == len(small) == 65_680
    assert written["volume_tonnes"].sum() == pytest.approx(small["volume_tonnes"].sum())
    assert written.drop_duplicates(list(SERIES_KEY)).shape[0] == 80


def test_data_generate_injections_through_the_options(tmp_path: Path, small: pd.DataFrame) -> None:
    region = sorted(set(REGIONS) - set(small["origin_region"]) - set(small["destination_region"]))[
        0
    ]
    out = tmp_path / "drift.csv"
    cli(
        "data",
        "generate",
        "-o",
        str(out),
        "--size",
        "small",
        "--seed",
        "3",
        "--new-region",
        region,
        "--new-stations",
        "2",
        "--missing-days",
        "0.1",
        "--anomalies",
        "5",
    )
    expected = generate(
        "small", seed=3, new_region=region, new_stations=2, missing_days=0.1, anomalies=5
    )
    written = pd.read_csv(out)
    assert len(written) == len(expected) < len(small)  # 10% of series-days dropped
    assert written["volume_tonnes"].sum() == pytest.approx(expected["volume_tonnes"].sum())
    assert region in set(written["origin_region"]) | set(written["destination_region"])


def test_data_generate_bad_size_exits_2(tmp_path: Path) -> None:
    result = cli("data", "generate", "--out", str(tmp_path / "x.parquet"), "--size", "huge", code=2)
    assert "huge" in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_data_validate_exit_codes(tmp_path: Path, small: pd.DataFrame, config: Path) -> None:
    clean = tmp_path / "clean.parquet"
    small.to_parquet(clean)
    reports = tmp_path / "reports"
    result = cli(
        "data", "validate", str(clean), "--report-dir", str(reports), "--config", str(config)
    )
    assert f"valid: {len(small):,} rows" in words(result.output)
    assert json.loads((reports / "report.json").read_text())["issues"] == []

    dupes = tmp_path / "dupes.csv"
    pd.concat([small, small.iloc[:4]]).to_csv(dupes, index=False)
    result = cli("data", "validate", str(dupes), "--report-dir", str(reports), code=1)
    assert "[duplicate_rows]" in result.output
    issues = json.loads((reports / "report.json").read_text())["issues"]
    assert [(i["severity"], i["check"], i["n_rows"]) for i in issues] == [
        ("error", "duplicate_rows", 8)
    ]

    cli("data", "validate", str(tmp_path / "nope.parquet"), "--report-dir", str(reports), code=2)


def test_data_validate_threshold_comes_from_the_config(tmp_path: Path) -> None:
    gappy = tmp_path / "gappy.parquet"
    generate("small", seed=3, missing_days=0.3).to_parquet(gappy)
    reports = str(tmp_path / "r")
    result = cli("data", "validate", str(gappy), "--report-dir", reports, code=1)  # default 20%
    assert "exceeds max_missing_day_share 20%" in words(result.output)
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("data:\n  max_missing_day_share: 0.5\n")
    result = cli("data", "validate", str(gappy), "--report-dir", reports, "-c", str(lenient))
    assert "[missing_days]" in result.output and "valid:" in result.output


def test_data_validate_reference_names_unseen_categories(
    tmp_path: Path, small: pd.DataFrame
) -> None:
    station = small["origin_station"].iloc[0]
    reference = tmp_path / "reference.parquet"
    small.loc[
        (small["origin_station"] != station) & (small["destination_station"] != station)
    ].to_parquet(reference)
    facts = tmp_path / "facts.parquet"
    small.to_parquet(facts)
    result = cli(
        "data",
        "validate",
        str(facts),
        "--reference",
        str(reference),
        "--report-dir",
        str(tmp_path / "r"),
    )
    assert "[unseen_category]" in result.output
    assert "stations not present in the reference data" in words(result.output)
    assert station in result.output
    result = cli("data", "validate", str(facts), "--report-dir", str(tmp_path / "r"))
    assert "unseen_category" not in result.output  # only with --reference


# -- pipelines ------------------------------------------------------------------------
def _pipeline_config(path: Path) -> dict[str, Any]:
    spec = next(yaml.safe_load_all(path.read_text()))  # then the kubernetes platform spec
    return json.loads(spec["root"]["inputDefinitions"]["parameters"]["config"]["defaultValue"])


def test_pipeline_compile_with_config(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "compiled"
    result = cli("pipeline", "compile", "--out", str(out), "--config", str(config))
    assert sorted(p.name for p in out.iterdir()) == [
        "batch_scoring.yaml",
        "monitoring.yaml",
        "retraining.yaml",
        "training.yaml",
    ]
    assert "compiled" in result.output
    assert _pipeline_config(out / "training.yaml")["data"]["seed"] == 7


def test_pipeline_run_refuses_bad_combinations(config: Path) -> None:
    result = cli("pipeline", "run", "training", "--no-local", "-c", str(config), code=2)
    assert "--no-local needs --host" in result.output
    result = cli("pipeline", "run", "scoring", "-c", str(config), code=2)
    assert (
        "unknown pipeline 'scoring'; known: batch_scoring, monitoring, retraining, training"
        in words(result.output)
    )
    result = cli("pipeline", "run", "training", "--as-of", "2026-01-31", "-c", str(config), code=2)
    assert "--as-of and --window-days apply to the monitoring and retraining pipelines" in words(
        result.output
    )


class KfpStandIn:
    """The KFP v2beta1 REST endpoints kfp.Client 2.17 calls for
    create_run_from_pipeline_package: healthz (in the constructor), list experiments by
    name, create the experiment, create the run. Records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.experiments: list[dict[str, Any]] = []

    async def _record(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        data = json.loads(body) if body else {}
        self.calls.append((request.method, request.url.path, {**request.query_params, **data}))
        return data

    async def healthz(self, request: Request) -> JSONResponse:
        await self._record(request)
        return JSONResponse({"multi_user": False})

    async def experiments_route(self, request: Request) -> JSONResponse:
        data = await self._record(request)
        if request.method == "GET":
            wanted = json.loads(request.query_params["filter"])["predicates"][0]["stringValue"]
            found = [e for e in self.experiments if e["display_name"] == wanted]
            return JSONResponse({"experiments": found, "total_size": len(found)})
        experiment = {"experiment_id": f"exp-{len(self.experiments) + 1}", **data}
        self.experiments.append(experiment)
        return JSONResponse(experiment)

    async def runs(self, request: Request) -> JSONResponse:
        data = await self._record(request)
        return JSONResponse({**data, "run_id": f"run-{len(self.calls)}", "state": "PENDING"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/apis/v2beta1/healthz", self.healthz, methods=["GET"]),
                Route("/apis/v2beta1/experiments", self.experiments_route, methods=["GET", "POST"]),
                Route("/apis/v2beta1/runs", self.runs, methods=["POST"]),
            ]
        )


@pytest.fixture
def kfp_api() -> Iterator[tuple[KfpStandIn, str]]:
    stand_in = KfpStandIn()
    with uvicorn_in_thread(stand_in.app()) as url:
        yield stand_in, url


def test_pipeline_run_host_submits_through_kfp_client(
    kfp_api: tuple[KfpStandIn, str], config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in, url = kfp_api
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    monkeypatch.chdir(tmp_path)  # compiled YAML goes to build/pipelines here
    result = cli(
        "pipeline",
        "run",
        "batch_scoring",
        "--host",
        url,
        "--no-local",
        "--source",
        "s3://facts/latest.parquet",
        "--config",
        str(config),
    )
    paths = [(method, path) for method, path, _ in stand_in.calls]
    assert paths == [
        ("GET", "/apis/v2beta1/healthz"),
        ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/runs"),
    ]
    assert stand_in.calls[2][2]["display_name"] == "freightml"
    run = stand_in.calls[3][2]
    assert f"submitted batch_scoring to {url}: run run-4" in words(result.output)
    assert run["experiment_id"] == "exp-1"
    assert run["display_name"].startswith("batch_scoring-")
    assert (
        run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "freightml-batch-scoring"
    )
    sent = json.loads(run["runtime_config"]["parameters"]["config"])
    assert sent["data"]["source_uri"] == "s3://facts/latest.parquet"  # the option
    assert sent["data"]["seed"] == 7  # the file

    cli("pipeline", "run", "training", "--host", url, "--size", "demo", "-c", str(config))
    assert [(m, p) for m, p, _ in stand_in.calls[4:]] == [
        ("GET", "/apis/v2beta1/healthz"),
        ("GET", "/apis/v2beta1/experiments"),  # found this time: not created again
        ("POST", "/apis/v2beta1/runs"),
    ]
    run = stand_in.calls[-1][2]
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "freightml-training"
    assert (
        json.loads(run["runtime_config"]["parameters"]["config"])["data"]["synthetic_size"]
        == "demo"
    )


def test_pipeline_run_host_submits_monitoring_with_its_window(
    kfp_api: tuple[KfpStandIn, str], config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in, url = kfp_api
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cli(
        "pipeline",
        "run",
        "monitoring",
        "--host",
        url,
        "--as-of",
        "2026-01-31",
        "--window-days",
        "14",
        "-c",
        str(config),
    )
    run = stand_in.calls[-1][2]
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "freightml-monitoring"
    parameters = run["runtime_config"]["parameters"]
    assert parameters["as_of"] == "2026-01-31" and parameters["window_days"] == 14
    assert json.loads(parameters["config"])["data"]["seed"] == 7


def test_pipeline_run_unreachable_host_fails_clearly(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    host = f"http://127.0.0.1:{free_port()}"
    result = cli("pipeline", "run", "training", "--host", host, "-c", str(config), code=1)
    assert f"cannot reach the Kubeflow Pipelines API at {host}" in words(result.output)


def test_pipeline_run_engine_is_checked_and_spark_on_a_cluster_is_a_spark_application(
    kfp_api: tuple[KfpStandIn, str], config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cli("pipeline", "run", "training", "--engine", "dask", "-c", str(config), code=2)
    assert "--engine must be pandas or spark, got 'dask'" in words(result.output)
    stand_in, url = kfp_api
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for name in ("training", "batch_scoring"):
        cli("pipeline", "run", name, "--engine", "spark", "--host", url, "-c", str(config))
        sent = json.loads(stand_in.calls[-1][2]["runtime_config"]["parameters"]["config"])
        assert sent["compute"]["engine"] == "spark"
        assert sent["compute"]["submit"] == "operator"  # the Spark steps: SparkApplications


# -- monitor --------------------------------------------------------------------------
def test_monitor_run_without_a_champion_fails_clearly(config: Path) -> None:
    result = cli("monitor", "run", "--as-of", "2025-03-31", "-c", str(config), code=1)
    assert "monitoring failed: no champion of 'freight-volume' to monitor" in words(result.output)
    # one serving environment's traffic: the option reaches the run, which still needs one
    result = cli("monitor", "run", "--environment", "freightml-prod", "-c", str(config), code=1)
    assert "no champion of 'freight-volume' to monitor" in words(result.output)


def test_monitor_run_refuses_a_bad_date_and_window(config: Path) -> None:
    result = cli("monitor", "run", "--as-of", "2025-02-30", "-c", str(config), code=2)
    assert "--as-of" in words(result.output)
    result = cli("monitor", "run", "--window-days", "0", "-c", str(config), code=2)
    assert "--window-days" in words(result.output)


def test_monitor_list_shows_stored_snapshots_newest_first(config: Path, tmp_path: Path) -> None:
    from helpers import sample_snapshot

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        older = sample_snapshot(id="older-snapshot", as_of=sample_snapshot().as_of.replace(day=1))
        SnapshotStore(store).save(older)
        SnapshotStore(store).save(sample_snapshot())
    finally:
        store.close()
    result = cli("monitor", "list", "--limit", "1", "-c", str(config))
    text = words(result.output)
    assert sample_snapshot().id[:18] in text and "older-sn" not in text
    assert "red" in text and "2026-03-31" in text


# -- facts and the store --------------------------------------------------------------
def test_facts_withdraw_takes_facts_out_of_the_store_with_an_audit(
    tmp_path: Path, config: Path, small: pd.DataFrame
) -> None:
    path = tmp_path / "facts.csv"
    small.iloc[:50].to_csv(path, index=False)
    cli("facts", "ingest", str(path), "-c", str(config))
    row = small.iloc[0]
    series = ["--origin", str(row["origin_station"]), "--destination"]
    series += [str(row["destination_station"]), "--cargo", str(row["cargo_type"])]
    day = str(pd.Timestamp(row["date"]).date())
    result = cli(
        "facts",
        "withdraw",
        *series,
        "--date",
        day,
        "--reason",
        "test",
        "--by",
        "ops",
        "-c",
        str(config),
    )
    assert "1 fact(s) withdrawn, 0 withdrawn before" in words(result.output)
    result = cli(
        "facts",
        "withdraw",
        *series,
        "--date",
        "1999-01-01",
        "--reason",
        "x",
        "-c",
        str(config),
        code=1,
    )
    assert "not in the store" in words(result.output)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert len(store.facts.frame()) == 49
        audit = store.facts.withdrawals()
        assert audit[["credential", "withdrawn_by"]].values.tolist() == [["cli", "ops"]]
    finally:
        store.close()


def test_facts_ingest_counts_new_duplicate_and_revised_rows(
    tmp_path: Path, config: Path, small: pd.DataFrame
) -> None:
    part = small.iloc[:500]
    path = tmp_path / "facts.csv"
    part.to_csv(path, index=False)
    result = cli("facts", "ingest", str(path), "--config", str(config))
    assert "500 new, 0 revised, 0 duplicates ignored" in words(result.output)
    result = cli("facts", "ingest", str(path), "-c", str(config))
    assert "0 new, 0 revised, 500 duplicates ignored" in words(result.output)
    revised = part.copy()
    revised.loc[revised.index[:3], "volume_tonnes"] += 10.0
    revised.to_csv(path, index=False)
    result = cli("facts", "ingest", str(path), "-c", str(config))
    assert "0 new, 3 revised, 497 duplicates ignored" in words(result.output)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        stored = store.facts.frame()
    finally:
        store.close()
    assert len(stored) == 500
    assert stored["volume_tonnes"].sum() == pytest.approx(part["volume_tonnes"].sum() + 30.0)

    result = cli("facts", "ingest", str(tmp_path / "nope.csv"), "-c", str(config), code=1)
    assert "nope.csv" in result.output


def test_facts_export_writes_the_months_then_only_the_latest_ones(
    tmp_path: Path, config: Path, small: pd.DataFrame
) -> None:
    from freightml.compute.layout import months, read_facts

    dates = pd.to_datetime(small["date"])
    cut = dates.min() + pd.Timedelta(days=75)
    path = tmp_path / "facts.parquet"
    small.loc[dates <= cut].to_parquet(path, index=False)
    cli("facts", "ingest", str(path), "-c", str(config))
    out = tmp_path / "dataset"
    result = cli("facts", "export", str(out), "-c", str(config))
    assert f"exported to {out} from month {dates.min():%Y-%m} on" in words(result.output)
    early = months(out)
    first_files = {p: p.stat().st_mtime_ns for p in out.glob(f"month={early[0]}/*/*.parquet")}
    small.loc[dates > cut].to_parquet(path, index=False)
    cli("facts", "ingest", str(path), "-c", str(config))
    result = cli("facts", "export", str(out), "-c", str(config))
    assert f"from month {early[-1]} on" in words(result.output)
    assert all(p.stat().st_mtime_ns == t for p, t in first_files.items())  # not rewritten
    exported = read_facts(out)
    assert len(exported) == len(small) and months(out)[-1] == f"{dates.max():%Y-%m}"
    result = cli("facts", "export", str(out), "--full", "-c", str(config))
    assert f"from month {dates.min():%Y-%m} on" in words(result.output)  # every month again
    assert not any(p.stat().st_mtime_ns == t for p, t in first_files.items() if p.exists())
    assert len(read_facts(out)) == len(small)


# -- models and serve without a registry ------------------------------------------------
def test_models_list_without_a_registry_says_what_to_do(config: Path) -> None:
    result = cli("models", "list", "--config", str(config), code=1)
    assert "no registered model 'freight-volume'" in words(result.output)
    result = cli("models", "rollback", "--reason", "x", "-c", str(config), code=1)
    assert "has no champion to roll back" in words(result.output)


def test_serve_without_a_model_fails_before_serving(tmp_path: Path, config: Path) -> None:
    facts = tmp_path / "facts.parquet"
    generate("small", seed=3).to_parquet(facts)
    result = cli(
        "serve",
        "--model-dir",
        str(tmp_path / "no-model"),
        "--history",
        str(facts),
        "--port",
        str(free_port()),
        "--no-events",
        "--config",
        str(config),
        code=1,
    )
    assert "cannot serve" in result.output and "no-model" in words(result.output)


# -- coverage of the parser -------------------------------------------------------------
CLI_TESTS = [
    Path(__file__).parent / "test_cli.py",
    Path(__file__).parent / "test_cli_deploy.py",
    Path(__file__).parents[1] / "integration" / "test_cli_integration.py",
    Path(__file__).parents[1] / "integration" / "test_retraining_cli.py",
    Path(__file__).parents[1] / "e2e" / "test_cli_lifecycle.py",
    Path(__file__).parents[1] / "e2e" / "test_monitor_demo.py",
    Path(__file__).parents[1] / "e2e" / "test_demo_loop.py",
    Path(__file__).parents[1] / "integration" / "test_kfp_standin.py",
    Path(__file__).parents[1] / "integration" / "test_training_pipeline.py",
]


def untested(
    command: typer.core.TyperCommand | typer.core.TyperGroup, texts: str, path: tuple[str, ...] = ()
) -> list[str]:
    """Commands and options of ``command`` that no CLI test passes as a literal."""
    if isinstance(command, typer.core.TyperGroup):
        return [
            m for name, sub in command.commands.items() for m in untested(sub, texts, (*path, name))
        ]
    missing = [] if f'"{path[-1]}"' in texts else [" ".join(path)]
    for param in command.params:
        if isinstance(param, typer.core.TyperOption) and "--help" not in param.opts:
            longest = max(param.opts, key=len)
            missing += [
                f"{' '.join(path)} {flag}"
                for flag in (longest, *param.secondary_opts)
                if f'"{flag}"' not in texts
            ]
    return missing


def test_every_command_and_option_goes_through_the_parser_in_a_test() -> None:
    root = typer.main.get_command(app)
    everything = untested(root, "")
    assert "models rollback --to" in everything and "serve --no-events" in everything
    texts = "\n".join(path.read_text() for path in CLI_TESTS)
    assert untested(root, texts) == []


def test_demo_loop_and_monitor_are_separate_demos(tmp_path: Path) -> None:
    result = cli("demo", "--loop", "--monitor", code=2)
    assert "--loop and --monitor are separate demos" in result.output
    result = cli("demo", "--loop", "--size", "huge", code=2)
    assert "size must be one of small, demo, large, got 'huge'" in result.output


def test_demo_reads_its_config_first(tmp_path: Path) -> None:
    result = cli("demo", "--size", "small", "--config", str(tmp_path / "none.yaml"), code=2)
    assert "does not exist" in words(result.output)


def test_demo_runs_its_steps_through_the_parser(tmp_path: Path) -> None:
    """A bad size reaches `data generate` as a command line and comes back as its exit code."""
    config = tmp_path / "c.yaml"
    config.write_text(f"home: {tmp_path / 'demo-home'}\n")
    result = cli("demo", "--size", "huge", "--seed", "3", "-c", str(config), code=2)
    out = words(result.output)
    data = tmp_path / "demo-home" / "data" / "huge-seed3.parquet"
    squeezed = "".join(result.output.split())  # rich folds long paths anywhere
    assert (
        "".join(f"$ freightml data generate --out {data} --size huge --seed 3".split()) in squeezed
    )
    assert "error: unknown size 'huge'" in out  # data generate's own message
    assert "pipeline compile" not in out  # the demo stopped at the failed step
