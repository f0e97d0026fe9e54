"""False drift: how many drift results light up on data where nothing changed.

For each panel, a model is trained on the history before the last ``--tail`` days, the
monitoring reference profile is built from its training examples, and every monitoring
window (``window_days`` of origins, configs/monitoring.yaml) of the unshifted continuation
is judged with ``drift_of_facts``: twice, with each input's calibrated threshold (the
default since issue "Trust what is collected", finding 9) and with the configured
thresholds alone (the profile's calibration removed), side by side on the same windows.

Panels: the synthetic generator (three seeds, 300 series) and the development real panel
(US domestic flights, ``bench/real_data.py``; run ``make bench-real-data`` first).

    uv run python bench/false_drift.py
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pandas as pd

from freightml.config import Settings, load_settings
from freightml.data.synthetic import SyntheticSpec, generate
from freightml.features.build import build_examples
from freightml.monitoring.config import load_monitoring_config
from freightml.monitoring.window_drift import drift_of_facts
from freightml.stages.train import make_estimator, reference_profile

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".freightml" / "data" / "real-flights.parquet"
SPEC = SyntheticSpec(n_series=300, start=date(2022, 1, 1), end=date(2024, 9, 30))


def judge(name: str, facts: pd.DataFrame, settings: Settings, tail: int) -> list[dict]:
    config = load_monitoring_config(settings.monitoring_path)
    dates = pd.to_datetime(facts["date"])
    last_train = dates.max() - pd.Timedelta(days=tail)
    train = facts.loc[dates <= last_train]
    examples = build_examples(train, horizons_per_origin=7, train_window_days=365)
    examples = examples.loc[examples["y"].notna()].reset_index(drop=True)
    model = make_estimator(settings, "gbm", {"max_iter": 60}).fit(examples)
    profile = reference_profile(settings, examples, model)
    bare = profile.model_copy(
        update={"segments": [s.model_copy(update={"calibration": {}}) for s in profile.segments]}
    )
    rows = []
    start = last_train + pd.Timedelta(days=1)
    while start + pd.Timedelta(days=config.window_days - 1) <= dates.max():
        end = start + pd.Timedelta(days=config.window_days - 1)
        for label, prof in (("calibrated", profile), ("configured only", bare)):
            report = drift_of_facts(
                prof, facts, window_start=start, window_end=end, config=config, model=model
            )
            inputs = [r for r in report.results if r.role == "input"]
            rows.append(
                {
                    "panel": name,
                    "window": f"{start.date()}..{end.date()}",
                    "thresholds": label,
                    "drifted segments": len(report.drifted_segments),
                    "drifted input rows": sum(r.drifted for r in inputs),
                    "input rows": len(inputs),
                    "drifted rows (all)": sum(r.drifted for r in report.results),
                }
            )
        start = end + pd.Timedelta(days=1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tail", type=int, default=35, help="days after the training window")
    parser.add_argument("--real-only", action="store_true", help="skip the synthetic panels")
    args = parser.parse_args()
    rows = []
    for seed in () if args.real_only else (7, 11, 23):
        rows += judge(f"synthetic seed {seed}", generate(SPEC, seed=seed), Settings(), args.tail)
    if REAL.exists():
        real = load_settings(REPO / "configs" / "real-data.yaml")
        rows += judge("real panel (flights)", pd.read_parquet(REAL), real, args.tail)
    else:
        print(f"{REAL} missing: run `make bench-real-data` for the real panel's rows")
    table = pd.DataFrame(rows)
    summary = table.groupby(["panel", "thresholds"], sort=False)[
        ["drifted segments", "drifted input rows", "input rows", "drifted rows (all)"]
    ].sum()
    summary["drifted input share"] = (summary["drifted input rows"] / summary["input rows"]).map(
        "{:.1%}".format
    )
    print(table.to_string(index=False))
    print()
    print(summary.to_markdown())


if __name__ == "__main__":
    main()
