"""Benchmark the FreightML predictor against its peers, all in one run.

Throughput and latency (p50/p99) for 1-row and 1000-row requests at 1, 8 and 32
concurrent connections (closed loop, one wrk client for every server) of:

* in-process ``model.predict`` on ready feature rows (the limit; no HTTP, no features),
* the FreightML predictor, V1 and V2 (business requests: series + dates; features are
  built server-side from the warm history window),
* MLServer 1.7.1's sklearn runtime on a plain HistGradientBoostingRegressor fitted on the
  same feature matrix (joblib), V2 FP64 tensors of feature rows; default settings
  (``parallel_workers=1``) and tuned (``parallel_workers=0``, ``OMP_NUM_THREADS=1``, its
  best on 2 cores per research/perf-baselines.md); from its own venv (bench/out),
* a bare ``kserve.Model`` around the same MLflow model (bench/serving_bare_kserve.py),
  V1 instances of feature rows,
* ``freightml serve`` as a user runs it (``ours-default``): the same model registered as
  the champion of a fresh MLflow store, the facts ingested into the collector's store,
  ``freightml collector serve`` running, payload events on, alias poll (30 s) and history
  refresh (60 s) on; the same with ``--no-events`` (``ours-default-noevents``); and the same
  with a portfolio champion (``ours-default-portfolio``: the GBM blended with a per-series
  AutoETS, with calibrated intervals: the window's forecasts and quantiles precomputed
  when the history is built, as a default training run's blend is served).
  Both stacks run at once and are measured in alternation (on, off, on, ...: a noisy
  neighbour hits both alike). Afterwards every payload event the predictor sent must be
  in the collector's store. These two run 1-row V1 requests only (their target).

The model is a GlobalGBM with 200 trees (early stopping off) trained on the "small"
synthetic facts; a 1000-row request asks for 1000 series-days (36 series x 28 dates).
Results are printed as Markdown and written to bench/out/serving/.

    uv run python bench/serving_bench.py               # the whole matrix, ~10 minutes
    uv run python bench/serving_bench.py --repeat 3 --servers ours-default ours-default-noevents
    uv run python bench/serving_bench.py --duration 3 --servers ours-v1 mlserver
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ports import free_port

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "serving"
MLSERVER_VENV = HERE / "out" / "mlserver-venv"
NAME = "freight-volume"
SIZES = (1, 1000)
GBM = {
    "max_iter": 200,
    "early_stopping": False,
    "learning_rate": 0.08,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 100,
    "random_state": 0,
}
SERVERS = (
    "ours-v1",
    "ours-v2",
    "bare-kserve",
    "mlserver",
    "mlserver-tuned",
    "mlserver-pw0",
    "ours-default",
    "ours-default-noevents",
    "ours-default-portfolio",
)
DEFAULT_SERVERS = (
    "ours-v1",
    "ours-v2",
    "bare-kserve",
    "mlserver",
    "mlserver-tuned",
    "ours-default",
    "ours-default-noevents",
    "ours-default-portfolio",
)
REPO = HERE.parent


# -- setup -----------------------------------------------------------------------------------
def prepare(out: Path) -> dict[str, Any]:
    """Train the model, save it for every server, write the request bodies."""
    import joblib
    import mlflow.sklearn
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    from freightml.data.sources import save_facts
    from freightml.data.synthetic import generate
    from freightml.features.build import build_examples
    from freightml.features.window import HistoryWindow
    from freightml.models import SKOPS_TRUSTED_TYPES, make_model
    from freightml.models.gbm import encode_categories

    out.mkdir(parents=True, exist_ok=True)
    facts = generate("small")
    save_facts(facts, out / "facts.parquet")
    examples = build_examples(facts, horizons_per_origin=7)
    model = make_model("gbm", GBM).fit(examples)
    shutil.rmtree(out / "model", ignore_errors=True)
    mlflow.sklearn.save_model(
        model,
        str(out / "model"),
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=[],
    )

    def encode(frame: pd.DataFrame) -> np.ndarray:
        cols = [
            encode_categories(frame[c], model.vocabulary_[c])
            if c in model.vocabulary_
            else frame[c].to_numpy(dtype=np.float64)
            for c in model.model_features_
        ]
        return np.column_stack(cols)

    # MLServer's model: a plain HGBR on the same feature matrix and target
    train = examples[examples["y"].notna()]
    plain = HistGradientBoostingRegressor(
        max_iter=GBM["max_iter"],
        early_stopping=False,
        learning_rate=GBM["learning_rate"],
        max_leaf_nodes=GBM["max_leaf_nodes"],
        min_samples_leaf=GBM["min_samples_leaf"],
        categorical_features=[c in model.vocabulary_ for c in model.model_features_],
        random_state=0,
    )
    X_train = encode(train)
    X_train[:, np.isnan(X_train).all(axis=0)] = 0.0
    plain.fit(X_train, train["y"].to_numpy() / train["scale"].to_numpy())
    ms_dir = out / "mlserver" / NAME
    ms_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(plain, ms_dir / "model.joblib")
    (ms_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": NAME,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )

    window = HistoryWindow.build(facts)
    bodies: dict[str, dict[int, Path]] = {
        s: {} for s in ("ours-v1", "ours-v2", "bare-kserve", "mlserver")
    }
    features: dict[int, pd.DataFrame] = {}
    for n in SIZES:
        instances, rows, left = [], [], n
        for p, key in enumerate(window.series_keys):
            take = min(28, left)
            if take == 0:
                break
            instances.append(
                {
                    "origin_station": key[0],
                    "destination_station": key[1],
                    "cargo_type": key[2],
                    "dates": window.dates[1 : 1 + take],
                }
            )
            rows += [p * 28 + h for h in range(take)]
            left -= take
        frame = window.features.iloc[rows]
        features[n] = frame
        flat = [
            (i["origin_station"], i["destination_station"], i["cargo_type"], d)
            for i in instances
            for d in i["dates"]
        ]
        v2_inputs = [
            {"name": name, "shape": [n], "datatype": "BYTES", "data": [f[j] for f in flat]}
            for j, name in enumerate(
                ["origin_station", "destination_station", "cargo_type", "target_date"]
            )
        ]
        feature_rows = (
            frame[model.feature_columns_]
            .astype(object)
            .where(frame[model.feature_columns_].notna(), None)
            .to_dict("records")
        )
        matrix = encode(frame)
        payloads = {
            "ours-v1": {"instances": instances},
            "ours-v2": {"inputs": v2_inputs},
            "bare-kserve": {"instances": feature_rows},
            "mlserver": {
                "inputs": [
                    {
                        "name": "predict",
                        "shape": list(matrix.shape),
                        "datatype": "FP64",
                        "data": np.nan_to_num(matrix, nan=0.0).ravel().tolist(),
                    }
                ]
            },
        }
        for server, payload in payloads.items():
            path = out / f"body-{server}-{n}.json"
            path.write_text(json.dumps(payload, default=_json_default))
            bodies[server][n] = path
    return {
        "model": model,
        "portfolio": portfolio_champion(examples),
        "features": features,
        "bodies": bodies,
        "trees": plain.n_iter_,
        "n_series": window.n_series,
    }


def portfolio_champion(examples: Any) -> Any:
    """What a default training run registers when it chooses a blend: the same GBM blended
    with a per-series AutoETS, with calibrated intervals (from residuals of its last 8
    weekly origins, a stand-in for the validation folds: the serving cost is the same)."""
    from freightml.models import make_model
    from freightml.models.intervals import calibrate

    known = examples.loc[examples["y"].notna()]
    model = make_model(
        "portfolio", {"ml": "gbm", "ml_params": GBM, "statistical": "autoets", "ml_weight": 0.5}
    ).fit(known)
    late = known.loc[known["origin_date"] >= known["origin_date"].max() - np.timedelta64(56, "D")]
    residuals = late.assign(yhat=model.predict(late))
    return model.set_intervals(calibrate(residuals, "cargo_type"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def in_process(model: Any, features: dict[int, Any], seconds: float = 3.0) -> list[dict]:
    """The limit: model.predict on ready feature rows, one thread, back to back."""
    rows = []
    for n, frame in features.items():
        model.predict(frame)
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 20:
            t = time.perf_counter()
            model.predict(frame)
            times.append(time.perf_counter() - t)
        rows.append(
            Result(
                "in-process model.predict",
                "-",
                n,
                1,
                len(times) / sum(times),
                1e3 * statistics.median(times),
                1e3 * float(np.percentile(times, 99)),
                0,
                len(times),
            )
        )
    return rows


# -- servers ---------------------------------------------------------------------------------
def ensure_mlserver_venv() -> Path:
    """MLServer conflicts with kserve in one venv: give it its own (uvloop pinned, see
    research/perf-baselines.md gotcha 2)."""
    from importlib.metadata import version

    python = MLSERVER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(MLSERVER_VENV)], check=True)
    subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "-q",
            "-p",
            str(python),
            "mlserver==1.7.1",
            "mlserver-sklearn==1.7.1",
            f"scikit-learn=={version('scikit-learn')}",
            "numpy",
            "pandas",
            "uvloop==0.21.0",
        ],
        check=True,
    )
    return MLSERVER_VENV / "bin" / "mlserver"


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen
    log: Path
    collector: Server | None = None  # the collector beside ``freightml serve``
    token: str | None = None  # the collector's admin token (its home's collector.token)

    def stop(self) -> None:
        for proc in (self.proc, *([self.collector.proc] if self.collector else [])):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def prepare_default_home(out: Path, model: Any, name: str) -> dict[str, str]:
    """A fresh FreightML home: the bench model as champion, the facts in the collector's
    store. Returns the environment ``freightml`` commands run with."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    from freightml.collector.service import ingest_facts_file
    from freightml.config import load_settings
    from freightml.domain import CHAMPION
    from freightml.models import SKOPS_TRUSTED_TYPES

    os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow.set_tracking_uri sets it, below
    home = out / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FREIGHTML_", "MLFLOW_"))}
    env["FREIGHTML_HOME"] = str(home)
    settings = load_settings(REPO / "configs" / "freightml.yaml", home=home)
    mlflow.set_tracking_uri(settings.tracking_uri)
    name = settings.tracking.registered_model
    experiment = mlflow.create_experiment("serving-bench", artifact_location=settings.artifact_root)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            serialization_format="skops",
            pip_requirements=[],
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    MlflowClient(settings.tracking_uri).set_registered_model_alias(
        name, CHAMPION, str(info.registered_model_version)
    )
    ingest_facts_file(out / "facts.parquet", settings.collector_store_url)
    return env


def start_default(name: str, out: Path, env: dict[str, str]) -> tuple[Server, str]:
    """``freightml collector serve`` and ``freightml serve`` with the project's config."""
    env = {
        **env,
        "FREIGHTML_COLLECTOR__PORT": str(free_port()),
        "FREIGHTML_SERVING__HTTP_PORT": str(free_port()),
    }
    cli = [sys.executable, "-m", "freightml.cli"]
    config = ["--config", str(REPO / "configs" / "freightml.yaml")]
    collector_log = out / f"collector-{name}.log"
    collector = Server(
        "collector",
        f"http://127.0.0.1:{env['FREIGHTML_COLLECTOR__PORT']}",
        subprocess.Popen(
            [*cli, "collector", "serve", *config],
            env=env,
            cwd=REPO,
            stdout=collector_log.open("w"),
            stderr=subprocess.STDOUT,
        ),
        collector_log,
    )
    _wait_ready(collector, "/healthz")
    collector.token = (Path(env["FREIGHTML_HOME"]) / "collector.token").read_text().strip()
    extra = ["--no-events"] if name.endswith("noevents") else []
    log = out / f"server-{name}.log"
    proc = subprocess.Popen(
        [*cli, "serve", *config, *extra],
        env=env,
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    server = Server(
        name, f"http://127.0.0.1:{env['FREIGHTML_SERVING__HTTP_PORT']}", proc, log, collector
    )
    try:
        _wait_ready(server, f"/v1/models/{NAME}")
    except RuntimeError:
        collector.stop()
        raise
    return server, f"/v1/models/{NAME}:predict"


def _metric(url: str, name: str, labels: str) -> float:
    import httpx

    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") and all(part in line for part in labels.split(",")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def check_events_stored(server: Server, answered: int, timeout: float = 120.0) -> dict[str, Any]:
    """Wait until the predictor's sender is idle, then compare what it sent with the store."""
    import httpx

    assert server.collector is not None
    sent_name = "freightml_serving_cloudevents_total"
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        sent = _metric(server.url, sent_name, 'outcome="sent"')
        dropped = _metric(server.url, sent_name, 'outcome="dropped"')
        if (sent + dropped) >= 2 * answered and (sent, dropped) == last:
            break
        last = (sent, dropped)
        time.sleep(1.0)
    retried = _metric(server.url, sent_name, 'outcome="retried"')
    admin = {"authorization": f"Bearer {server.collector.token}"}
    stored = httpx.get(server.collector.url + "/stats", headers=admin, timeout=30).json()["events"]
    ok = dropped == 0 and stored == sent and stored >= 2 * answered
    return {
        "sent": int(sent),
        "retried": int(retried),
        "dropped": int(dropped),
        "stored": int(stored),
        "answered_at_least": answered,
        "every_event_stored": ok,
    }


def start(name: str, out: Path) -> tuple[Server, str]:
    """Start one server; returns it and the inference path."""
    port = free_port()
    env = {**os.environ, "FREIGHTML_HOME": str(out / "home")}
    if name.startswith("ours"):
        cmd = [
            sys.executable,
            "-m",
            "freightml.serving",
            "--model-dir",
            str(out / "model"),
            "--model-version",
            "1",
            "--history",
            str(out / "facts.parquet"),
            "--listen-port",
            str(port),
            "--reload-seconds",
            "0",
            "--history-seconds",
            "0",
        ]
        path = f"/v1/models/{NAME}:predict" if name == "ours-v1" else f"/v2/models/{NAME}/infer"
        ready = f"/v1/models/{NAME}"
    elif name == "bare-kserve":
        cmd = [sys.executable, str(HERE / "serving_bare_kserve.py"), str(out / "model"), str(port)]
        path, ready = f"/v1/models/{NAME}:predict", f"/v1/models/{NAME}"
    else:
        cmd = [str(ensure_mlserver_venv()), "start", str(out / "mlserver")]
        env.update(
            MLSERVER_HTTP_PORT=str(port),
            MLSERVER_GRPC_PORT=str(free_port()),
            MLSERVER_METRICS_PORT=str(free_port()),
            MLSERVER_PARALLEL_WORKERS="1" if name == "mlserver" else "0",
        )
        if name == "mlserver-tuned":  # its best setting on 2 cores (perf-baselines.md)
            env["OMP_NUM_THREADS"] = "1"
        path, ready = f"/v2/models/{NAME}/infer", f"/v2/models/{NAME}/ready"
    log = out / f"server-{name}.log"
    proc = subprocess.Popen(
        cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=str(out)
    )
    server = Server(name, f"http://127.0.0.1:{port}", proc, log)
    _wait_ready(server, ready)
    return server, path


def _wait_ready(server: Server, path: str, timeout: float = 120.0) -> None:
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(server.url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"{server.name} not ready after {timeout} s")


# -- load ------------------------------------------------------------------------------------
@dataclass
class Result:
    server: str
    protocol: str
    rows: int
    connections: int
    req_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    server_cores: float | None = None  # CPU of the server's process tree during the run
    other_cores: float | None = None  # CPU of everything but the server and wrk: noise

    @property
    def rows_per_s(self) -> float:
        return self.req_per_s * self.rows


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True, timeout=300
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return shutil.which("wrk")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    wrk: str, url: str, body: Path, connections: int, seconds: float, out: Path
) -> tuple[float, float, float, int, int]:
    script = out / f"wrk-{body.stem}.lua"
    script.write_text(
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = 1 if connections < 8 else 2
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        p50 = _ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
        p99 = _ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
        total = int(re.search(r"(\d+) requests in", text).group(1))
    except (AttributeError, ValueError, KeyError) as exc:
        raise RuntimeError(f"cannot read wrk's output ({exc}):\n{text}") from exc
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), "
        r"timeout (\d+)",
        text,
    )
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return rps, p50, p99, errors, total


def run_httpx(
    url: str, body: Path, connections: int, seconds: float
) -> tuple[float, float, float, int, int]:
    """Fallback closed-loop client when wrk cannot be installed."""
    import asyncio

    import httpx

    content = body.read_bytes()

    async def main() -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < deadline:
                    t = time.perf_counter()
                    r = await client.post(
                        url, content=content, headers={"content-type": "application/json"}
                    )
                    latencies.append(time.perf_counter() - t)
                    errors += r.status_code != 200

            await asyncio.gather(*[worker() for _ in range(connections)])
        return latencies, errors

    latencies, errors = asyncio.run(main())
    return (
        len(latencies) / seconds,
        1e3 * statistics.median(latencies),
        1e3 * float(np.percentile(latencies, 99)),
        errors,
        len(latencies),
    )


def check_answer(server: Server, path: str, body: Path, rows: int) -> None:
    import httpx

    r = httpx.post(
        server.url + path,
        content=body.read_bytes(),
        timeout=60,
        headers={"content-type": "application/json"},
    )
    if r.status_code != 200:
        raise RuntimeError(f"{server.name} answered {r.status_code}: {r.text[:500]}")
    data = r.json()
    n = len(data["predictions"]) if "predictions" in data else data["outputs"][0]["shape"][0]
    if n != rows:
        raise RuntimeError(f"{server.name} returned {n} rows for {rows}")


class CpuMeter:
    """Cores used during a run by the server's process trees (the predictor, and the
    collector beside it), and by everything else (other than the load generator): the
    machine is shared, so noise is shown, not hidden."""

    def __init__(self, *pids: int) -> None:
        import psutil

        self.procs = [psutil.Process(pid) for pid in pids]

    def _server(self) -> float:
        total = 0.0
        for p in [q for proc in self.procs for q in (proc, *proc.children(recursive=True))]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except Exception:
                pass
        return total

    @staticmethod
    def _machine() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuMeter:
        import resource

        self.t0, self.s0, self.m0 = time.perf_counter(), self._server(), self._machine()
        self.c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc: object) -> None:
        import resource

        wall = time.perf_counter() - self.t0
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = (c1.ru_utime - self.c0.ru_utime) + (c1.ru_stime - self.c0.ru_stime)
        server = self._server() - self.s0
        self.server_cores = server / wall
        self.other_cores = max(0.0, (self._machine() - self.m0 - server - client) / wall)


def _loader(wrk: str | None, url: str, body: Path) -> Any:
    if wrk:
        return lambda c, s: run_wrk(wrk, url, body, c, s, OUT)
    return lambda c, s: run_httpx(url, body, c, s)


def _measure(
    server: Server,
    label: str,
    protocol: str,
    rows: int,
    connections: int,
    load: Any,
    seconds: float,
) -> Result:
    pids = [server.proc.pid] + ([server.collector.proc.pid] if server.collector else [])
    with CpuMeter(*pids) as cpu:
        rps, p50, p99, errors, total = load(connections, seconds)
    print(
        f"  {server.name} rows={rows} c={connections}: {rps:,.1f} req/s p50 {p50:.2f} ms "
        f"p99 {p99:.2f} ms errors {errors} server {cpu.server_cores:.2f} other "
        f"{cpu.other_cores:.2f} cores",
        flush=True,
    )
    return Result(
        label,
        protocol,
        rows,
        connections,
        rps,
        p50,
        p99,
        errors,
        total,
        cpu.server_cores,
        cpu.other_cores,
    )


def run_default_pair(
    names: list[str],
    setup: dict[str, Any],
    wrk: str | None,
    args: argparse.Namespace,
    meta: dict[str, Any],
) -> list[Result]:
    """The default ``freightml serve`` with and without events, both stacks up at once and
    measured in alternation (on, off, on, off, ...), so that a noisy neighbour hits both
    alike; 1-row V1 requests. Then every event sent must be in the collector's store."""
    body = setup["bodies"]["ours-v1"][1]
    servers: dict[str, Server] = {}
    loads: dict[str, Any] = {}
    answered = 0
    results: list[Result] = []
    try:
        for name in names:
            print(f"starting {name} ...", flush=True)
            model = setup["portfolio" if name.endswith("portfolio") else "model"]
            server, path = start_default(name, OUT, prepare_default_home(OUT, model, name))
            servers[name] = server
            check_answer(server, path, body, 1)
            loads[name] = _loader(wrk, server.url + path, body)
            done = loads[name](8, args.warmup)
            if name == "ours-default":
                answered += 1 + done[4] - done[3]
        for c in args.connections:
            runs: dict[str, list[Result]] = {name: [] for name in names}
            for _ in range(args.repeat):
                for name in names:
                    label, protocol = LABELS[name]
                    result = _measure(
                        servers[name], label, protocol, 1, c, loads[name], args.duration
                    )
                    runs[name].append(result)
                    if name == "ours-default":
                        answered += result.requests - result.errors
            results += [median_result(runs[name]) for name in names]
        if "ours-default" in servers:
            meta["events"]["ours-default"] = check_events_stored(servers["ours-default"], answered)
            print(f"  events: {meta['events']['ours-default']}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return results


# -- report ----------------------------------------------------------------------------------
def median_result(runs: list[Result]) -> Result:
    """Each number the median over repeated runs (errors and requests summed)."""
    if len(runs) == 1:
        return runs[0]

    def med(attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    first = runs[0]
    return Result(
        first.server,
        first.protocol,
        first.rows,
        first.connections,
        med("req_per_s"),
        med("p50_ms"),
        med("p99_ms"),
        sum(r.errors for r in runs),
        sum(r.requests for r in runs),
        med("server_cores"),
        med("other_cores"),
    )


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [
        f"# Serving benchmark ({meta['date']})",
        "",
        f"{meta['machine']}; Python {meta['python']}; load generator: {meta['client']}, "
        f"{meta['duration']} s per run after a warm-up; model: GlobalGBM, {meta['trees']} "
        f"trees, {meta['n_series']} series. Load average before/after: {meta['load_before']} / "
        f"{meta['load_after']}.",
        "",
        "`server cores`: CPU of the server's processes during the run (for `freightml serve` "
        "rows, the collector's too); `other cores`: CPU "
        "used by anything else on the machine (neighbours; above ~0.2 the run is disturbed). "
        f"With --repeat, each cell is the median of {meta['repeat']} runs.",
        "",
        "| server | protocol | rows/request | connections | req/s | rows/s | p50 ms | p99 ms "
        "| errors | server cores | other cores |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cores(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    for r in results:
        lines.append(
            f"| {r.server} | {r.protocol} | {r.rows} | {r.connections} | "
            f"{r.req_per_s:,.1f} | {r.rows_per_s:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.errors} | {cores(r.server_cores)} | "
            f"{cores(r.other_cores)} |"
        )
    lines += ["", "## Targets", ""] + [f"- {t}" for t in targets(results, meta)]
    return "\n".join(lines) + "\n"


def _find(
    results: list[Result], server: str, rows: int, conns: int, protocol: str | None = None
) -> Result | None:
    return next(
        (
            r
            for r in results
            if r.server == server
            and r.rows == rows
            and r.connections == conns
            and protocol in (None, r.protocol)
        ),
        None,
    )


def targets(results: list[Result], meta: dict[str, Any] | None = None) -> list[str]:
    out = []
    on = _find(results, LABELS["ours-default"][0], 1, 32)
    off = _find(results, LABELS["ours-default-noevents"][0], 1, 32)
    if on and off:
        ratio = on.req_per_s / off.req_per_s
        out.append(
            f"default `freightml serve`, events on vs --no-events, 1-row V1 at 32 "
            f"connections: {on.req_per_s:,.0f} / {off.req_per_s:,.0f} req/s = {ratio:.2f}x "
            f"(target >= 0.8x): {'met' if ratio >= 0.8 else 'NOT met'}"
        )
    if on:
        out.append(
            f"default `freightml serve` with events, 1-row V1 p99 at 32 connections: "
            f"{on.p99_ms:.1f} ms (target <= 50 ms): "
            f"{'met' if on.p99_ms <= 50 else 'NOT met'}"
        )
    events = (meta or {}).get("events", {}).get("ours-default")
    if events:
        out.append(
            f"every payload event stored: sent {events['sent']:,}, stored "
            f"{events['stored']:,}, retried {events['retried']:,}, dropped "
            f"{events['dropped']:,} (>= 2 x {events['answered_at_least']:,} answered "
            f"requests): {'met' if events['every_event_stored'] else 'NOT met'}"
        )
    ours = _find(results, "freightml (ours)", 1, 32, "V1") or _find(
        results, "freightml (ours)", 1, 8, "V1"
    )
    for peer in (LABELS["mlserver"][0], LABELS["mlserver-tuned"][0], LABELS["mlserver-pw0"][0]):
        other = _find(results, peer, 1, ours.connections if ours else 32)
        if ours and other:
            ratio = ours.req_per_s / other.req_per_s
            out.append(
                f"1-row V1 throughput at {ours.connections} connections vs {peer}: "
                f"{ratio:.1f}x (target >= 3x): {'met' if ratio >= 3 else 'NOT met'}"
            )
    if ours:
        out.append(
            f"1-row V1 p99 at {ours.connections} connections: {ours.p99_ms:.1f} ms "
            f"(target <= 50 ms): {'met' if ours.p99_ms <= 50 else 'NOT met'}"
        )
    big = _find(results, "freightml (ours)", 1000, 1, "V1")
    limit = _find(results, "in-process model.predict", 1000, 1)
    if big and limit:
        ratio = big.p50_ms / limit.p50_ms
        out.append(
            f"1000-row V1 p50 latency at 1 connection: {big.p50_ms:.1f} ms = {ratio:.2f}x "
            f"in-process model.predict ({limit.p50_ms:.1f} ms) (target <= 1.5x): "
            f"{'met' if ratio <= 1.5 else 'NOT met'}"
        )
    return out


LABELS = {
    "ours-v1": ("freightml (ours)", "V1"),
    "ours-v2": ("freightml (ours)", "V2"),
    "bare-kserve": ("bare kserve.Model", "V1"),
    "mlserver": ("mlserver (default)", "V2"),
    "mlserver-tuned": ("mlserver (parallel_workers=0, OMP_NUM_THREADS=1)", "V2"),
    "mlserver-pw0": ("mlserver (parallel_workers=0)", "V2"),
    "ours-default": ("freightml serve, default (collector, events on)", "V1"),
    "ours-default-noevents": ("freightml serve, default, --no-events", "V1"),
    "ours-default-portfolio": (
        "freightml serve, default, portfolio champion (GBM + AutoETS blend, intervals)",
        "V1",
    ),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=int, default=6, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per size")
    p.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--repeat", type=int, default=1, help="runs per cell (medians reported)")
    p.add_argument("--servers", nargs="+", default=list(DEFAULT_SERVERS), choices=SERVERS)
    p.add_argument("--client", choices=["wrk", "httpx"], default="wrk")
    args = p.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    print("preparing the model, bodies and servers' models ...", flush=True)
    setup = prepare(OUT)
    wrk = ensure_wrk() if args.client == "wrk" else None
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}",
        "python": platform.python_version(),
        "client": "wrk (closed loop)" if wrk else "httpx async (closed loop)",
        "duration": args.duration,
        "repeat": args.repeat,
        "trees": setup["trees"],
        "n_series": setup["n_series"],
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    results = in_process(setup["model"], setup["features"])
    meta["events"] = {}
    pair = [n for n in args.servers if n.startswith("ours-default")]
    for name in [n for n in args.servers if n not in pair]:
        label, protocol = LABELS[name]
        print(f"starting {name} ...", flush=True)
        server, path = start(name, OUT)
        body_key = "mlserver" if name.startswith("mlserver") else name
        try:
            for n in SIZES:
                body = setup["bodies"][body_key][n]
                check_answer(server, path, body, n)
                load = _loader(wrk, server.url + path, body)
                load(8, args.warmup)
                for c in args.connections:
                    runs = [
                        _measure(server, label, protocol, n, c, load, args.duration)
                        for _ in range(args.repeat)
                    ]
                    results.append(median_result(runs))
        finally:
            server.stop()
    if pair:
        results += run_default_pair(pair, setup, wrk, args, meta)
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["wall_seconds"] = round(time.time() - started, 1)
    report = markdown(results, meta)
    (OUT / "results.md").write_text(report)
    (OUT / "results.json").write_text(
        json.dumps(
            {"meta": meta, "results": [asdict(r) | {"rows_per_s": r.rows_per_s} for r in results]},
            indent=2,
        )
    )
    print()
    print(report)
    print(f"(whole run {meta['wall_seconds']} s; results in {OUT})")


if __name__ == "__main__":
    main()
