"""The global GBM's learning curve: fit time, peak memory and backtest WAPE (overall and per
origin region) against the number of examples it fits on (``model.params.max_train_rows``,
500,000 by default), on a network past one machine's comfort (docs/scale.md).

The examples are built once with the Spark engine (the 70,000-series network of
bench/scale_bench.py, two years from 2024 by default) under bench/out/. The backtest fold is
the last origin whose 28 horizons are all known; the model learns from the origins whose
every target day is on or before it (nothing it forecasts is seen). Each size draws its
sample from the training examples (the same share of every shard file, at random) and fits
the default GBM recipe on exactly that many rows, in a child process of its own (its peak
memory is its own: resident set of the process, sampled every 50 ms).

    uv run python bench/learning_curve.py                       # 0.5, 1, 5 and 20 M rows
    uv run python bench/learning_curve.py --rows 1000000 --rows 5000000

Results: one JSON line per size in bench/out/learning_curve.jsonl and a Markdown table on
stdout (recorded in bench/RESULTS.md, "Past one machine").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scale_bench import OUT, measure, prepare

HORIZON_MAX = 28


def _examples(facts: Path, shards: int, master: str) -> Path:
    """The network's training examples (7 sampled horizons per pair, as the pipeline
    builds them), built with the Spark engine once."""
    from freightml.compute import write_training_examples
    from freightml.compute_settings import ComputeSettings

    out = OUT / f"lc-{facts.stem}" / "examples"
    if not out.is_dir() or not any(out.glob("*.parquet")):
        compute = ComputeSettings(engine="spark", shards=shards, spark_master=master)
        started = time.perf_counter()
        rows = write_training_examples(
            facts, out, compute, horizons_per_origin=7, min_history_days=91, seed=0
        )
        print(f"built {rows:,} examples in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def _split(examples: Path) -> tuple[str, int, int]:
    """The backtest origin (ISO day) and the training and test row counts."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    data = ds.dataset(str(examples), format="parquet")
    table = data.to_table(columns=["origin_date", "target_date", "y"])
    known = pc.is_valid(table["y"])
    last_known = pc.max(pc.filter(table["target_date"], known)).as_py()
    origins = pc.unique(table["origin_date"]).to_pylist()
    test_origin = max(o for o in origins if o.toordinal() + HORIZON_MAX <= last_known.toordinal())
    train = pc.less_equal(table["target_date"], test_origin)
    test = pc.equal(table["origin_date"], test_origin)
    return (
        test_origin.date().isoformat(),
        int(pc.sum(pc.and_(train, known)).as_py()),
        int(pc.sum(test).as_py()),
    )


def child(examples: str, test_origin: str, rows: int, train_rows: int) -> dict:
    """Fit the default recipe on ``rows`` training examples drawn at random (the same
    share of every file) and score the backtest origin."""
    import numpy as np
    import pandas as pd
    import pyarrow.dataset as ds

    from freightml.config import MODEL_PARAMS
    from freightml.features.build import FEATURE_COLUMNS
    from freightml.models import make_model

    columns = list(dict.fromkeys([*FEATURE_COLUMNS, "origin_date", "target_date", "scale", "y"]))
    origin = pd.Timestamp(test_origin)
    share = min(1.0, rows / train_rows)
    rng = np.random.default_rng(0)
    parts, tests = [], []
    started = time.perf_counter()
    for fragment in ds.dataset(examples, format="parquet").get_fragments():
        frame = fragment.to_table(columns=columns).to_pandas()
        frame["origin_date"] = pd.to_datetime(frame["origin_date"])
        frame["target_date"] = pd.to_datetime(frame["target_date"])
        tests.append(frame.loc[frame["origin_date"] == origin])
        train = frame.loc[(frame["target_date"] <= origin) & frame["y"].notna()]
        parts.append(train.loc[rng.random(len(train)) < share])
        del frame
    train = pd.concat(parts, ignore_index=True)
    test = pd.concat(tests, ignore_index=True)
    del parts, tests
    read = time.perf_counter() - started
    model = make_model("gbm", {**MODEL_PARAMS, "max_train_rows": len(train)})
    started = time.perf_counter()
    model.fit(train)
    fit = time.perf_counter() - started
    test = test.loc[test["y"].notna()]
    forecast = model.predict(test)
    error = np.abs(test["y"].to_numpy() - forecast)
    by_region = (
        pd.DataFrame({"region": test["origin_region"].astype(str), "e": error, "y": test["y"]})
        .groupby("region")
        .sum()
    )
    return {
        "rows": len(train),
        "fit_seconds": round(fit, 1),
        "read_seconds": round(read, 1),
        "iterations": int(model.model_.n_iter_),
        "test_rows": len(test),
        "wape": round(float(error.sum() / np.abs(test["y"]).sum()), 4),
        "wape_by_region": {r: round(float(v.e / v.y), 4) for r, v in by_region.iterrows()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, default=70000)
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows", type=int, action="append", help="training rows (repeat)")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--examples", help=argparse.SUPPRESS)
    parser.add_argument("--test-origin", help=argparse.SUPPRESS)
    parser.add_argument("--train-rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = args.rows[0]
        print(json.dumps(child(args.examples, args.test_origin, rows, args.train_rows)))
        return
    facts = prepare(args.series, args.seed, args.start)
    examples = _examples(facts, args.shards, args.master)
    test_origin, train_rows, test_rows = _split(examples)
    print(
        f"backtest origin {test_origin}: {train_rows:,} training examples, {test_rows:,} test",
        file=sys.stderr,
    )
    results = []
    for rows in args.rows or [500_000, 1_000_000, 5_000_000, 20_000_000]:
        print(f"  {rows:,} rows ...", file=sys.stderr, flush=True)
        r = measure(
            ["--examples", str(examples), "--test-origin", test_origin, "--rows", str(rows),
             "--train-rows", str(train_rows)],
            script=__file__,
        )  # fmt: skip
        r.update(series=args.series, asked_rows=rows, test_origin=test_origin)
        results.append(r)
        with (OUT / "learning_curve.jsonl").open("a") as f:
            f.write(json.dumps(r) + "\n")
    regions = sorted({k for r in results for k in r.get("wape_by_region", {})})
    print(f"| rows | fit s | peak MiB | WAPE | {' | '.join(regions)} |")
    print("|---" * (4 + len(regions)) + "|")
    for r in results:
        if "failed" in r:
            print(f"| {r['asked_rows']:,} | failed: {r['failed']} | {r['peak_rss_mib']:,} |")
            continue
        by = " | ".join(f"{r['wape_by_region'].get(k, float('nan')):.3f}" for k in regions)
        print(
            f"| {r['rows']:,} | {r['fit_seconds']} | {r['peak_rss_mib']:,} | {r['wape']:.3f} "
            f"| {by} |"
        )


if __name__ == "__main__":
    main()
