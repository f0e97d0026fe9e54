"""Forecast quality side by side: FreightML with default settings vs forecasting peers.

One run on a facts file (the real development panel, `make bench-real-data`) or a synthetic
size, by the methodology's protocol (configs/methodology.yaml: 3 cutoffs 28 days apart,
horizons 1-28, WAPE, the same scored rows and the same seasonal-naive baseline):

- FreightML as the training pipeline runs it with **no config file**: the select stage
  (the portfolio on validation folds before the reported ones) and the evaluate stage (the
  chosen recipe's backtest with its calibrated intervals), in this process;
- statsforecast MSTL / AutoETS / AutoTheta (weekly season) and SeasonalWindowAverage (7 x 4),
  fitted at each cutoff on every series' history up to it, with their own 80% / 95%
  intervals (SeasonalWindowAverage has none);
- mlforecast + LightGBM: recursive, lags 7/14/21/28, rolling means of 7 and 28 days and
  same-weekday rolling means of 4 and 8 weeks on the 7-day lag, the weekday, L1 loss,
  LocalStandardScaler (forecasting-peers.md's setup);
- the mean of MSTL and that LightGBM.

Reported: WAPE, ratio to seasonal naive, bias, supported segments over the segment gate
(1.00) and over 0.85, the 80% / 95% coverage, fit time (all folds). The peers are
FreightML's own dependencies (its portfolio fits statsforecast models and mlforecast's
LightGBM too; the peer rows are the libraries as a user would configure them):

    make bench-quality   # = uv run --frozen python bench/real_quality.py \
                         #     --source .freightml/data/real-flights.parquet --source demo
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from freightml.config import Settings
from freightml.data.synthetic import SIZES, generate
from freightml.evaluation import load_methodology
from freightml.evaluation.gates import segment_supported
from freightml.evaluation.metrics import metric_table
from freightml.features.build import SERIES_KEY, SeriesPanel
from freightml.models.intervals import coverage

os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
HISTORY_DAYS = 364  # the peers' fit window, as long as FreightML's serving window allows


def freightml_default(facts_path: Path, work: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The select and evaluate stages with default settings; their predictions."""
    from freightml.stages.evaluate import evaluate_model
    from freightml.stages.select import load_selection, select_model

    settings = Settings()
    began = time.perf_counter()
    select_model(settings, facts_path, work / "selection")
    selected = time.perf_counter()
    evaluate_model(settings, facts_path, work / "evaluation", None, work / "selection")
    done = time.perf_counter()
    selection = load_selection(work / "selection")
    pred = pd.read_parquet(work / "evaluation" / "predictions.parquet")
    info = {
        "chosen": selection.chosen,
        "select_s": selected - began,
        "evaluate_s": done - selected,
        "candidates": selection.to_markdown(),
    }
    return pred, info


def _long(panel: SeriesPanel, day: int) -> pd.DataFrame:
    """Every series' history up to ``day`` (the last HISTORY_DAYS), absent days as 0."""
    first = max(0, day - HISTORY_DAYS + 1)
    values = panel.values[:, first : day + 1].astype(np.float64)
    started = np.arange(first, day + 1)[None, :] >= panel.first_day[:, None]
    values = np.where(started & np.isnan(values), 0.0, values)
    ok = ~np.isnan(values)
    keep = ok.sum(axis=1) >= 28
    rows = np.flatnonzero(keep)
    sub, mask = values[rows], ok[rows]
    dates = panel.start + pd.to_timedelta(np.arange(first, day + 1), unit="D")
    return pd.DataFrame(
        {
            "unique_id": np.repeat(rows, mask.sum(axis=1)),
            "ds": np.broadcast_to(dates.values, sub.shape)[mask],
            "y": sub[mask],
        }
    )


def _join(pred: pd.DataFrame, panel: SeriesPanel, forecasts: pd.DataFrame) -> pd.DataFrame:
    keys = panel.series[SERIES_KEY].astype(str).reset_index(drop=True)
    f = forecasts.merge(keys.reset_index().rename(columns={"index": "unique_id"}), on="unique_id")
    f = f.rename(columns={"ds": "target_date"}).drop(columns="unique_id")
    left = pred.astype({c: str for c in SERIES_KEY})
    return left.merge(f, on=[*SERIES_KEY, "target_date", "cutoff"], how="left")


def statsforecast_peers(facts: pd.DataFrame, pred: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS, AutoTheta, SeasonalWindowAverage

    panel = SeriesPanel.from_facts(facts)
    models = {
        "MSTL(7)": MSTL(season_length=7, alias="MSTL(7)"),
        "AutoETS(7)": AutoETS(season_length=7, alias="AutoETS(7)"),
        "AutoTheta(7)": AutoTheta(season_length=7, alias="AutoTheta(7)"),
        "SeasonalWindowAverage(7x4)": SeasonalWindowAverage(
            season_length=7, window_size=4, alias="SeasonalWindowAverage(7x4)"
        ),
    }
    frames, seconds = {name: [] for name in models}, dict.fromkeys(models, 0.0)
    for cutoff in sorted(pred["cutoff"].unique()):
        long = _long(panel, panel.day_index(pd.Timestamp(cutoff)))
        for name, model in models.items():
            began = time.perf_counter()
            sf = StatsForecast(models=[model], freq="D", n_jobs=-1)
            level = None if name.startswith("Seasonal") else [80, 95]
            out = sf.forecast(h=28, df=long, level=level)
            seconds[name] += time.perf_counter() - began
            frames[name].append(out.assign(cutoff=pd.Timestamp(cutoff)))
    for name in models:
        out = pd.concat(frames[name], ignore_index=True)
        rename = {name: f"yhat_{name}"}
        for lv, lo, hi in ((80, "p10", "p90"), (95, "p2_5", "p97_5")):
            rename[f"{name}-lo-{lv}"] = f"{name}_tonnes_{lo}"
            rename[f"{name}-hi-{lv}"] = f"{name}_tonnes_{hi}"
        out = out.rename(columns=rename)
        pred = _join(
            pred,
            panel,
            out[[c for c in out if c in {"unique_id", "ds", "cutoff"} or c in rename.values()]],
        )
    return pred, seconds


def lightgbm_peer(facts: pd.DataFrame, pred: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean, SeasonalRollingMean
    from mlforecast.target_transforms import LocalStandardScaler

    panel = SeriesPanel.from_facts(facts)
    frames, seconds = [], 0.0
    for cutoff in sorted(pred["cutoff"].unique()):
        long = _long(panel, panel.day_index(pd.Timestamp(cutoff)))
        began = time.perf_counter()
        fcst = MLForecast(
            models={"LightGBM": LGBMRegressor(objective="l1", verbose=-1, n_jobs=1)},
            freq="D",
            lags=[7, 14, 21, 28],
            lag_transforms={
                7: [
                    RollingMean(window_size=7),
                    RollingMean(window_size=28),
                    SeasonalRollingMean(season_length=7, window_size=4),
                    SeasonalRollingMean(season_length=7, window_size=8),
                ]
            },
            date_features=["dayofweek"],
            target_transforms=[LocalStandardScaler()],
        )
        fcst.fit(long, static_features=[])
        out = fcst.predict(28)
        seconds += time.perf_counter() - began
        frames.append(out.assign(cutoff=pd.Timestamp(cutoff)))
    out = pd.concat(frames, ignore_index=True).rename(columns={"LightGBM": "yhat_LightGBM"})
    return _join(pred, panel, out), seconds


def summarise(pred: pd.DataFrame, column: str, methodology: Any) -> dict[str, Any]:
    scored = pred.assign(yhat=pred[column].fillna(pred["yhat_baseline"]))
    overall = metric_table(scored, []).iloc[0]
    over_gate = over_085 = supported = 0
    for seg in methodology.segments:
        for row in metric_table(scored, [seg]).to_dict("records"):
            if segment_supported(row["tonnes_share"], row["n_series"], methodology.gates):
                supported += 1
                over_gate += (
                    row["wape_ratio"] > methodology.gates.max_segment_wape_ratio_to_baseline
                )
                over_085 += row["wape_ratio"] > 0.85
    name = column.removeprefix("yhat_") if column != "yhat" else ""
    bands = {}
    for q in ("p10", "p90", "p2_5", "p97_5"):
        source = f"tonnes_{q}" if column == "yhat" else f"{name}_tonnes_{q}"
        if source in pred:
            bands[f"tonnes_{q}"] = pred[source]
    cov = coverage(scored.assign(**bands)) if bands else {}
    return {
        "wape": overall["wape"],
        "ratio": overall["wape_ratio"],
        "bias": overall["bias"],
        f"segments > {methodology.gates.max_segment_wape_ratio_to_baseline:.2f}": (
            f"{over_gate} of {supported}"
        ),
        "segments > 0.85": f"{over_085} of {supported}",
        "coverage 80%": cov.get("coverage_80", np.nan),
        "coverage 95%": cov.get("coverage_95", np.nan),
    }


def run(source: str) -> None:
    methodology = load_methodology(Settings().methodology_path)
    facts = generate(source, seed=42) if source in SIZES else pd.read_parquet(source)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        facts_path = work / "facts.parquet"
        facts.to_parquet(facts_path, index=False)
        pred, info = freightml_default(facts_path, work)
    pred["cutoff"] = pd.to_datetime(pred["cutoff"])
    pred["target_date"] = pd.to_datetime(pred["target_date"])
    pred, stat_seconds = statsforecast_peers(facts, pred)
    pred, lgbm_seconds = lightgbm_peer(facts, pred)
    pred["yhat_mean(MSTL, LightGBM)"] = (pred["yhat_MSTL(7)"] + pred["yhat_LightGBM"]) / 2
    rows = [
        {
            "method": f"FreightML, default settings ({info['chosen']})",
            **summarise(pred, "yhat", methodology),
            "fit s": info["select_s"] + info["evaluate_s"],
        }
    ]
    for name, seconds in [*stat_seconds.items(), ("LightGBM", lgbm_seconds)]:
        label = "mlforecast + LightGBM" if name == "LightGBM" else f"statsforecast {name}"
        rows.append(
            {"method": label, **summarise(pred, f"yhat_{name}", methodology), "fit s": seconds}
        )
    rows.append(
        {
            "method": "mean of MSTL(7) and LightGBM",
            **summarise(pred, "yhat_mean(MSTL, LightGBM)", methodology),
            "fit s": stat_seconds["MSTL(7)"] + lgbm_seconds,
        }
    )
    table = pd.DataFrame(rows)
    n_missing = int(pred["yhat_LightGBM"].isna().sum())
    print(f"\n## {source}: {pred['cutoff'].nunique()} folds, {len(pred):,} scored rows")
    print(
        f"FreightML: select {info['select_s']:.0f} s, evaluate {info['evaluate_s']:.0f} s; "
        f"peer rows without a forecast (seasonal naive used): {n_missing}"
    )
    print(table.to_markdown(index=False, floatfmt=".4f"))
    print("\nFreightML's candidates on its validation folds:\n")
    print(info["candidates"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", action="append", required=True, help="facts .parquet or a synthetic size"
    )
    args = parser.parse_args(argv)
    for source in args.source:
        run(source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
