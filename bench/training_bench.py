"""Benchmark the training pipeline on the embedded default (kfp.local).

For each data size it generates the facts (not timed), runs the whole training pipeline
with kfp.local in a fresh process and reports rows, wall time, peak memory (the largest
process: the runner or one of its task subprocesses), and the share of wall time spent
outside the library's own work: the pipeline runner (task subprocesses, imports, artifact
passing) and MLflow tracking. The library's own work is what the lifecycle functions time
themselves (freightml.timing.timed, kind "work").

    uv run python bench/training_bench.py --sizes small demo large
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"


def run_one(size: str, seed: int, workdir: Path) -> dict:
    """Run in a fresh process (so peak-RSS figures belong to this size only)."""
    from freightml.config import load_settings
    from freightml.data.sources import save_facts
    from freightml.data.synthetic import generate
    from freightml.timing import TIMINGS_ENV
    from pipelines.run import run_local

    data = workdir / f"{size}.parquet"
    facts = generate(size, seed=seed)
    save_facts(facts, data)
    source_rows = len(facts)
    del facts

    timings = workdir / f"{size}-timings.jsonl"
    os.environ[TIMINGS_ENV] = str(timings)
    settings = load_settings(home=str(workdir / f"home-{size}"), data={"source_uri": str(data)})
    started = time.perf_counter()
    run = run_local(settings, "training")
    wall = time.perf_counter() - started
    lines = [json.loads(x) for x in timings.read_text().splitlines()]
    work = sum(x["seconds"] for x in lines if x["kind"] == "work")
    tracking = sum(x["seconds"] for x in lines if x["kind"] == "tracking")
    # ru_maxrss is in KiB on Linux
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    steps: dict[str, float] = {}
    for x in lines:
        steps[x["step"]] = steps.get(x["step"], 0.0) + x["seconds"]
    return {
        "size": size,
        "source_rows": source_rows,
        "wall_s": round(wall, 1),
        "work_s": round(work, 1),
        "tracking_s": round(tracking, 1),
        "overhead_share": round(1 - work / wall, 3),
        "peak_rss_gib": round(max(peak_children, peak_self), 2),
        "steps_s": {k: round(v, 1) for k, v in steps.items()},
        "pipeline_root": str(run.pipeline_root),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "demo", "large"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        result = run_one(args.one, args.seed, Path(args.workdir))
        print("RESULT " + json.dumps(result), flush=True)
        return

    OUT.mkdir(exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="freightml-bench-") as tmp:
        for size in args.sizes:
            print(f"== {size}", file=sys.stderr, flush=True)
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    size,
                    "--workdir",
                    tmp,
                    "--seed",
                    str(args.seed),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
                raise SystemExit(f"benchmark of {size} failed")
            [line] = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            results.append(json.loads(line.removeprefix("RESULT ")))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    (OUT / "training.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(
        "| size | fact rows | wall s | library work s | tracking s | overhead share "
        "| peak RSS GiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['size']} | {r['source_rows']:,} | {r['wall_s']} | {r['work_s']} | "
            f"{r['tracking_s']} | {100 * r['overhead_share']:.1f}% | {r['peak_rss_gib']} |"
        )


if __name__ == "__main__":
    main()
