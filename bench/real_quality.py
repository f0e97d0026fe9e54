"""Forecast quality by the methodology: model vs seasonal-naive vs same-weekday mean.

Runs the methodology's rolling-origin backtest (3 folds, horizons 1-28) on a facts file or a
synthetic size and prints WAPE, ratio to seasonal naive, bias and per-horizon buckets for
the model and both baselines, plus an ablation: the model refitted with one feature group
blanked (set to missing, so the trees cannot use it).

    uv run python bench/real_quality.py --source .freightml/data/real-flights.parquet \
        --config configs/real-data.yaml --ablation
    uv run python bench/real_quality.py --source small
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from freightml.config import load_settings
from freightml.data.synthetic import SIZES, generate
from freightml.evaluation import load_methodology, run_backtest
from freightml.evaluation.metrics import bias, wape
from freightml.features.build import EWM_HALFLIVES, WEEKLY_FEATURES
from freightml.models import make_model
from freightml.models.baseline import SameWeekdayMean
from freightml.stages.features import feature_kwargs

GROUPS: dict[str, list[str]] = {
    "weekday profile": [c for c in WEEKLY_FEATURES if c.startswith("weekday_profile")],
    "same-weekday lags": [c for c in WEEKLY_FEATURES if c.startswith(("lag_", "same_weekday_"))],
    "ewm levels": [f"ewm_{h}_ratio" for h in EWM_HALFLIVES],
    "zero share at weekday": [c for c in WEEKLY_FEATURES if c.startswith("zero_share_")],
    "holiday distance": ["days_to_holiday", "days_from_holiday"],
}
GROUPS["all new"] = [c for cols in GROUPS.values() for c in cols]
BUCKETS = [(1, 7), (8, 14), (15, 28)]


class Blanked:
    """The model with some input columns set to missing at fit and predict."""

    def __init__(self, model: Any, columns: list[str]) -> None:
        self.model, self.columns = model, columns

    def _blank(self, examples: pd.DataFrame) -> pd.DataFrame:
        return examples.assign(**{c: np.float32(np.nan) for c in self.columns})

    def fit(self, examples: pd.DataFrame) -> Blanked:
        self.model.fit(self._blank(examples))
        return self

    def predict(self, examples: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(self._blank(examples)))


def scores(pred: pd.DataFrame, column: str) -> dict[str, float]:
    out = {"wape": wape(pred["y"], pred[column]), "bias": bias(pred["y"], pred[column])}
    for lo, hi in BUCKETS:
        part = pred.loc[pred["horizon"].between(lo, hi)]
        out[f"h{lo}-{hi}"] = wape(part["y"], part[column])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="facts .parquet or a synthetic size")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--ablation", action="store_true")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    methodology = load_methodology(settings.methodology_path)
    facts = generate(args.source, seed=42) if args.source in SIZES else pd.read_parquet(args.source)
    kw = {**feature_kwargs(settings), "seed": settings.model.params.get("random_state", 0)}
    params = settings.model.params

    def model() -> Any:
        return make_model(settings.model.name, params)

    result = run_backtest(facts, model, methodology, kw)
    pred = result.predictions
    pred = pred.assign(
        yhat_same_weekday=run_backtest(facts, SameWeekdayMean, methodology, kw)
        .predictions["yhat"]
        .to_numpy()
    )
    naive = wape(pred["y"], pred["yhat_baseline"])
    rows = []
    for name, col in [
        ("model", "yhat"),
        ("seasonal naive", "yhat_baseline"),
        ("same-weekday mean (2)", "yhat_same_weekday"),
    ]:
        s = scores(pred, col)
        rows.append({"forecast": name, **s, "ratio": s["wape"] / naive})
    print(f"source {args.source}: {pred['cutoff'].nunique()} folds, {len(pred):,} scored rows")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))
    if args.ablation:
        abl = [{"without": "(nothing)", "ratio": rows[0]["ratio"]}]
        for group, cols in GROUPS.items():
            r = run_backtest(facts, lambda cols=cols: Blanked(model(), cols), methodology, kw)
            abl.append({"without": group, "ratio": r.summary().iloc[0]["wape_ratio"]})
        print(pd.DataFrame(abl).to_string(index=False, float_format="%.4f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
