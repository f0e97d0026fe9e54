"""Benchmark drift: FreightML's vectorised drift against Evidently's DataDriftPreset.

Reference and current data: ``--rows`` rows x ``--features`` numeric columns each (normal,
lognormal, zero-inflated and few-valued columns; half of the current columns shifted).
FreightML builds the reference profile once (timed separately), then judges the current
rows against it (``drift_report`` on one numeric part, segment "all"). Its extra memory is
the tracemalloc peak of a second, separate drift call (NumPy reports its buffers to
tracemalloc), compared with the size of the current data.

Evidently runs in its own virtual environment (``.freightml/bench-venvs/evidently``,
created with ``uv venv`` + ``uv pip install evidently`` when missing) as a subprocess on
the same data (``.npy`` files): ``DataDriftPreset()`` with its defaults (normalised
Wasserstein for numeric columns with more than 1000 rows, as FreightML) and, as a second
row, with PSI. Only the report's ``run`` is timed (not the imports or loading the data).

    uv run python bench/drift_bench.py --rows 1000000 --features 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from freightml.monitoring.profile import ReferenceProfile
from freightml.monitoring.types import DriftReport

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".freightml" / "bench-venvs" / "evidently"

EVIDENTLY_RUNNER = r"""
import json, sys, time, resource
import numpy as np, pandas as pd
ref = np.load(sys.argv[1]); cur = np.load(sys.argv[2]); method = sys.argv[3]
cols = [f"f{i:02d}" for i in range(ref.shape[1])]
ref, cur = pd.DataFrame(ref, columns=cols), pd.DataFrame(cur, columns=cols)
import evidently
try:  # evidently >= 0.7
    from evidently import Report
    from evidently.presets import DataDriftPreset
    preset = DataDriftPreset() if method == "default" else DataDriftPreset(method=method)
    report = Report([preset])
    started = time.perf_counter()
    result = report.run(cur, ref)
    seconds = time.perf_counter() - started
    summary = result.dict()
except ImportError:  # evidently < 0.7
    from evidently.report import Report
    from evidently.metric_preset import DataDriftPreset
    preset = DataDriftPreset() if method == "default" else DataDriftPreset(stattest=method)
    report = Report(metrics=[preset])
    started = time.perf_counter()
    report.run(reference_data=ref, current_data=cur)
    summary = report.as_dict()
    seconds = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"version": evidently.__version__, "seconds": seconds, "peak_rss_kib": peak_kib,
                  "summary_chars": len(json.dumps(summary, default=str))}))
"""


def make_data(rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current (rows, features) float64 arrays; odd columns drift."""
    rng = np.random.default_rng(seed)

    def draw(kind: int, shift: float) -> np.ndarray:
        if kind == 0:
            return rng.normal(shift, 1.0, rows)
        if kind == 1:
            return rng.lognormal(0.0 + shift, 1.0, rows)
        if kind == 2:
            x = rng.gamma(2.0, 1.0 + shift, rows)
            x[rng.random(rows) < 0.3] = 0.0  # zero-inflated: ties at 0
            return x
        return rng.integers(0, 7 + int(2 * shift), rows).astype(np.float64)  # few values

    ref = np.column_stack([draw(f % 4, 0.0) for f in range(features)])
    cur = np.column_stack([draw(f % 4, 0.5 if f % 2 else 0.0) for f in range(features)])
    return ref, cur


def freightml_profile(ref: np.ndarray, names: list[str]) -> tuple[ReferenceProfile, float]:
    from freightml.evaluation.methodology import GateSpec
    from freightml.monitoring.config import load_monitoring_config
    from freightml.monitoring.profile import build_profile

    config = load_monitoring_config(REPO / "configs" / "monitoring.yaml")
    examples = pd.DataFrame(ref, columns=names, copy=False)
    examples = examples.assign(
        origin_station="o",
        destination_station="d",
        cargo_type="coal",
        target_date=pd.Timestamp("2025-01-01"),
        y=ref[:, 0],
    )
    gates = GateSpec(
        max_wape_ratio_to_baseline=1,
        max_segment_wape_ratio_to_baseline=1,
        min_segment_share=0,
        min_segment_series=1,
        max_abs_bias=1,
    )
    started = time.perf_counter()
    profile = build_profile(
        examples,
        None,
        config=config,
        segment_columns=[],
        gates=gates,
        features=names,
        max_rows=None,  # profile every reference row
    )
    return profile, time.perf_counter() - started


def freightml_drift(profile: ReferenceProfile, cur: np.ndarray, names: list[str]) -> dict:
    from freightml.monitoring.config import load_monitoring_config
    from freightml.monitoring.drift import drift_report
    from freightml.monitoring.window_drift import numeric_part

    config = load_monitoring_config(REPO / "configs" / "monitoring.yaml")
    columns = {n: cur[:, i] for i, n in enumerate(names)}  # views, no copy

    def run() -> DriftReport:
        return drift_report(
            profile,
            [numeric_part(columns)],
            source="facts",
            window_start="2025-01-01",
            window_end="2025-01-07",
            config=config,
        )

    run()  # warm up (imports, first-touch)
    started = time.perf_counter()
    report = run()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    drifted = sorted(
        {r.feature for r in report.results if r.statistic == "wasserstein" and r.drifted}
    )
    return {"seconds": seconds, "peak_bytes": peak, "drifted": drifted}


def ensure_evidently() -> Path:
    """The benchmark venv's Python, with Evidently installed (pandas < 3: Evidently 0.7.23,
    the newest when this was written, imports a helper pandas 3 removed)."""
    python = VENV / "bin" / "python"
    if python.exists():
        check = subprocess.run([str(python), "-c", "import evidently"], capture_output=True)
        if check.returncode == 0:
            return python
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    VENV.parent.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        subprocess.run([uv, "venv", "--python", sys.executable, str(VENV)], check=True)
    install = [uv, "pip", "install", "--python", str(python), "evidently", "pandas<3"]
    subprocess.run(install, check=True)
    return python


def run_evidently(python: Path, ref_path: Path, cur_path: Path, method: str) -> dict:
    out = subprocess.run(
        [str(python), "-c", EVIDENTLY_RUNNER, str(ref_path), str(cur_path), method],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")},
    )
    if out.returncode != 0:
        raise RuntimeError(f"Evidently ({method}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--skip-psi", action="store_true", help="no Evidently PSI row")
    args = parser.parse_args()

    names = [f"f{i:02d}" for i in range(args.features)]
    ref, cur = make_data(args.rows, args.features, args.seed)
    profile, profile_s = freightml_profile(ref, names)
    ours = freightml_drift(profile, cur, names)
    current_bytes = cur.nbytes
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs"
    print(f"machine: {machine}, Python {platform.python_version()}")
    print(f"data: {args.rows:,} rows x {args.features} numeric features (reference and current)")
    size = len(profile.model_dump_json())
    print(f"FreightML profile build: {profile_s:.2f} s ({size:,} bytes)")
    print(
        f"FreightML drift: {ours['seconds']:.3f} s; extra memory (tracemalloc peak) "
        f"{ours['peak_bytes'] / 2**20:.0f} MiB vs current data {current_bytes / 2**20:.0f} MiB; "
        f"drifted (Wasserstein) {ours['drifted']}"
    )
    if args.skip_evidently:
        return
    python = ensure_evidently()
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, cur_path = Path(tmp) / "ref.npy", Path(tmp) / "cur.npy"
        np.save(ref_path, ref)
        np.save(cur_path, cur)
        del ref, cur
        methods = ["default"] if args.skip_psi else ["default", "psi"]
        for method in methods:
            ev = run_evidently(python, ref_path, cur_path, method)
            print(
                f"Evidently {ev['version']} DataDriftPreset({method}): {ev['seconds']:.2f} s, "
                f"peak RSS {ev['peak_rss_kib'] / 2**10:.0f} MiB; "
                f"FreightML is {ev['seconds'] / ours['seconds']:.0f}x faster"
            )


if __name__ == "__main__":
    main()
