"""Pandas vs Spark for the steps compute.engine moves (docs/scale.md): the training
examples' feature build and batch scoring, on synthetic networks, in the same run.

Each measurement runs in a child process of its own (so its peak memory is its own): the
peak is the largest resident set of the child and every process under it (Spark's JVM and
its Python workers included), sampled every 50 ms with psutil. Spark runs on
``--master`` (``local[2]``: this machine's two cores) with ``--shards`` shards; its fixed
start-up cost (the session, then the same step on the few series of one origin station,
which starts the Python workers and imports their modules) is measured apart and
reported, and its per-row cost is computed without it.

    uv run python bench/scale_bench.py --series 6850             # the `large` network
    uv run python bench/scale_bench.py --series 6850 --series 20000 --steps features

Results: one JSON line per measurement in bench/out/scale.jsonl and a Markdown table on
stdout (recorded in bench/RESULTS.md, "Past one machine").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

OUT = Path(__file__).parent / "out"


def _peak_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            peak[0] = max(peak[0], total)
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)


def _limit(gib: float) -> None:
    import resource

    limit = int(gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def measure(args: list[str], limit_gib: float | None = None, script: str = __file__) -> dict:
    """Run this script as a child with ``args``; its JSON answer plus the peak memory.
    ``limit_gib`` caps the child's address space (a pandas run that does not fit fails
    with MemoryError instead of pushing the machine into swap); a failed child is
    recorded as failed, with the last line of its error."""
    cmd = [sys.executable, script, "--child", *args]
    preexec = (lambda: _limit(limit_gib)) if limit_gib else None
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec
    )
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=_peak_rss, args=(proc.pid, stop, peak), daemon=True)
    watcher.start()
    out, err = proc.communicate()
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit {proc.returncode}"
        return {"failed": reason[:200], "peak_rss_mib": round(peak[0] / 2**20)}
    answer = json.loads(out.strip().splitlines()[-1])
    answer["peak_rss_mib"] = round(peak[0] / 2**20)
    return answer


def child(step: str, engine: str, facts_path: str, shards: int, master: str) -> dict:
    """One measurement in this (child) process; prints a JSON line."""
    import pandas as pd
    import pyarrow.parquet as pq

    from freightml.compute import batch_forecasts, write_training_examples
    from freightml.compute_settings import ComputeSettings

    n_facts = pq.ParquetFile(facts_path).metadata.num_rows
    compute = ComputeSettings(engine=engine, shards=shards, spark_master=master)  # type: ignore[arg-type]
    kw = {"horizons_per_origin": 7, "min_history_days": 91, "seed": 0}
    model = None
    if step == "scoring":
        import pickle

        from freightml.features.window import HistoryWindow, WindowRules

        model = pickle.loads(Path(facts_path + ".model.pkl").read_bytes())
        rules = WindowRules(0.5, 28)

        def build(f: pd.DataFrame, calendar: object) -> HistoryWindow:
            return HistoryWindow.build(f, rules=rules, calendar=calendar)  # type: ignore[arg-type]

    if step == "window":
        return _window(facts_path, n_facts)

    def run(path: str, out: Path) -> int:
        if step == "features":  # what the build_features stage runs: a file in, files out
            return write_training_examples(path, out, compute, **kw)
        facts = pd.read_parquet(path)  # what the score_batch stage reads
        return len(batch_forecasts(facts, model, compute, build, rules).forecasts)

    startup = 0.0
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        if engine == "spark":
            # the fixed cost: the JVM and session, then the same step on the series of one
            # origin station (Spark's Python workers started, their modules imported)
            started = time.perf_counter()
            first = pq.ParquetFile(facts_path).read_row_group(0, columns=["origin_station"])
            station = first.column(0)[0]
            few = pq.read_table(facts_path, filters=[("origin_station", "=", station.as_py())])
            pq.write_table(few, f"{tmp}/few.parquet")
            run(f"{tmp}/few.parquet", Path(tmp) / "few-out")
            startup = time.perf_counter() - started
        started = time.perf_counter()
        rows = run(facts_path, Path(tmp) / "examples")
        seconds = time.perf_counter() - started
    return {
        "step": step,
        "engine": engine,
        "facts": n_facts,
        "rows_out": rows,
        "seconds": round(seconds, 2),
        "startup_seconds": round(startup, 2),
        "facts_per_second": round(n_facts / seconds),
    }


def _window(facts_path: str, n_facts: int) -> dict:
    """What a predictor's history refresh does: read the last 400 days of the facts and
    build the window (features of every series, the panel): its time and the memory the
    window holds (resident set after minus before)."""
    import gc

    import pandas as pd
    import psutil
    import pyarrow.dataset as ds

    from freightml.features.build import LOOKBACK_DAYS
    from freightml.features.window import HistoryWindow

    dataset = ds.dataset(facts_path)
    last = pd.Timestamp(dataset.to_table(columns=["date"]).column(0).to_pandas().max())
    since = last - pd.Timedelta(days=LOOKBACK_DAYS)
    started = time.perf_counter()
    facts = dataset.to_table(filter=ds.field("date") > since.to_datetime64()).to_pandas()
    read = time.perf_counter() - started
    gc.collect()
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    window = HistoryWindow.build(facts)
    seconds = time.perf_counter() - started
    del facts
    gc.collect()
    held = psutil.Process().memory_info().rss - before
    return {
        "step": "window",
        "engine": "pandas",
        "facts": n_facts,
        "rows_out": window.n_series,
        "seconds": round(seconds, 2),
        "read_seconds": round(read, 2),
        "startup_seconds": 0.0,
        "facts_per_second": 0,
        "window_mib": round(held / 2**20),
    }


def pipelines() -> list[dict]:
    """The compiled pipelines (``freightml pipeline compile``): tasks in the IR (every DAG,
    nested ones included) and the IR's size. The Spark engine adds no KFP task: the
    sharding is Spark's, inside one task per step."""
    import yaml

    rows = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-ir-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "freightml.cli", "pipeline", "compile", "--out", tmp],
            check=True, capture_output=True,
        )  # fmt: skip
        for path in sorted(Path(tmp).glob("*.yaml")):
            ir = next(d for d in yaml.safe_load_all(path.read_text()) if d and "root" in d)
            dags = [ir["root"], *ir.get("components", {}).values()]
            tasks = sum(len((d.get("dag") or {}).get("tasks") or {}) for d in dags)
            rows.append({"pipeline": path.stem, "tasks": tasks, "ir_bytes": path.stat().st_size})
    return rows


def prepare(n_series: int, seed: int, start: str | None = None) -> Path:
    """The facts of a synthetic network of ``n_series`` series (the `large` spec: four
    years from 2022, or from ``start``) and a small GBM fitted on its last 500 days."""
    import pickle

    import pandas as pd
    import pyarrow.parquet as pq

    from freightml.data.synthetic import generate
    from freightml.features.build import build_examples
    from freightml.models import make_model

    OUT.mkdir(parents=True, exist_ok=True)
    since = "" if start is None else f"-from{start}"
    path = OUT / f"scale-{n_series}-seed{seed}{since}.parquet"
    if not path.is_file():
        extra = {} if start is None else {"start": date.fromisoformat(start)}
        started = time.perf_counter()
        facts = generate("large", seed=seed, n_series=n_series, **extra)
        facts.to_parquet(path, index=False)
        print(
            f"generated {len(facts):,} facts in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
        del facts
    model_path = Path(str(path) + ".model.pkl")
    if not model_path.is_file():
        # the model is fitted on about 7,000 series (the first row groups: sorted by series)
        parquet = pq.ParquetFile(path)
        groups = max(1, round(parquet.num_row_groups * min(1.0, 7000 / n_series)))
        facts = parquet.read_row_groups(range(groups)).to_pandas()
        recent = facts.loc[
            pd.to_datetime(facts["date"])
            >= pd.to_datetime(facts["date"]).max() - pd.Timedelta(days=500)
        ]
        examples = build_examples(recent, horizons_per_origin=2, origin_step_days=28, seed=0)
        model = make_model("gbm", {"max_iter": 50}).fit(examples)
        model_path.write_bytes(pickle.dumps(model))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--series", type=int, action="append", help="series in the network (repeat)"
    )
    parser.add_argument(
        "--steps", default="features,scoring,window", help="or `pipeline`: the compiled IR"
    )
    parser.add_argument("--engines", default="pandas,spark")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--start", help="first day of the networks (YYYY-MM-DD; default the `large` spec's)"
    )
    parser.add_argument(
        "--limit-gib", type=float, default=20.0, help="address space cap of each child process"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--facts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.step, args.engine, args.facts, args.shards, args.master)))
        return
    if args.steps == "pipeline":
        print("| pipeline | KFP tasks (all DAGs) | IR bytes |\n|---|---:|---:|")
        for row in pipelines():
            print(f"| {row['pipeline']} | {row['tasks']} | {row['ir_bytes']:,} |")
        return
    results = []
    for n in args.series or [6850]:
        path = prepare(n, args.seed, args.start)
        print(f"network of {n} series: {path}", file=sys.stderr, flush=True)
        for step in args.steps.split(","):
            for engine in ["pandas"] if step == "window" else args.engines.split(","):
                print(f"  {step} on {engine} ...", file=sys.stderr, flush=True)
                r = measure(
                    ["--step", step, "--engine", engine, "--facts", str(path),
                     "--shards", str(args.shards), "--master", args.master],
                    args.limit_gib,
                )  # fmt: skip
                r.update(series=n, step=step, engine=engine)
                results.append(r)
                with (OUT / "scale.jsonl").open("a") as f:
                    f.write(json.dumps({**r, "master": args.master, "shards": args.shards}) + "\n")
    print(
        "| series | step | engine | facts | rows out | seconds | Spark start-up s | facts/s "
        "| peak MiB | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "failed" in r:
            print(
                f"| {r['series']:,} | {r['step']} | {r['engine']} | | | | | "
                f"| {r['peak_rss_mib']:,} | failed: {r['failed']} |"
            )
            continue
        note = ""
        if r["step"] == "window":
            per_10k = 10_000 / max(r["rows_out"], 1)
            note = (
                f"window holds {r['window_mib']:,} MiB ({r['window_mib'] * per_10k:,.0f} MiB "
                f"and {r['seconds'] * per_10k:.1f} s per 10k series; read {r['read_seconds']} s)"
            )
        print(
            f"| {r['series']:,} | {r['step']} | {r['engine']} | {r['facts']:,} | {r['rows_out']:,} "
            f"| {r['seconds']} | {r['startup_seconds'] or ''} | {r['facts_per_second']:,} "
            f"| {r['peak_rss_mib']:,} | {note} |"
        )


if __name__ == "__main__":
    main()
