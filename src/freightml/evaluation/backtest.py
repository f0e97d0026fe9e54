"""Rolling-origin backtest: refit at each cutoff, forecast 1..H days ahead, score vs baseline.

``run_backtest(facts, model_factory, methodology, feature_kwargs=...)`` builds everything
itself from the facts: one sampled set of training examples (origins every
``origin_step_days`` up to the last cutoff) and one full test set (every series with enough
history, origin = each cutoff, all horizons). Fold ``c`` trains on examples whose *target*
date is <= c (so neither features nor labels see anything after c) and is scored on the
examples with origin c. The baseline is scored on exactly the same rows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from freightml.evaluation.methodology import Methodology
from freightml.evaluation.metrics import metric_table
from freightml.features.build import (
    REGION_COLUMNS,
    SERIES_KEY,
    SeriesPanel,
    build_examples,
    default_origins,
)
from freightml.features.levels import LevelAdjustment, adjust_levels
from freightml.models.baseline import SeasonalNaive
from freightml.models.intervals import CENTRAL, IntervalTable, coverage, quantile_column
from freightml.models.statistical import add_statistical

FEATURE_KWARGS: dict[str, Any] = {
    "origin_step_days": 7,
    "horizons_per_origin": 7,
    "min_history_days": 91,
    "seed": 0,
    "train_window_days": None,
    "holiday_country": "RU",
}
PREDICTION_COLUMNS = [
    "fold",
    "cutoff",
    *SERIES_KEY,
    *REGION_COLUMNS,
    "horizon",
    "target_date",
    "y",
    "scale",
    "yhat",
    "yhat_baseline",
]


def backtest_cutoffs(last_date: pd.Timestamp, methodology: Methodology) -> list[pd.Timestamp]:
    """Forecast origins of the folds, oldest first; the last one leaves a full horizon."""
    spec = methodology.backtest
    last_cutoff = pd.Timestamp(last_date).normalize() - pd.Timedelta(days=spec.horizon_days)
    return [
        last_cutoff - pd.Timedelta(days=spec.step_days * k) for k in range(spec.folds - 1, -1, -1)
    ]


@dataclass
class BacktestResult:
    """Predictions of every fold plus the views the methodology reports on."""

    predictions: pd.DataFrame
    cutoffs: list[pd.Timestamp]
    methodology: Methodology
    fold_info: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """One row: overall model and baseline metrics and the WAPE ratio."""
        return metric_table(self.predictions, [])

    def by_horizon(self) -> pd.DataFrame:
        return metric_table(self.predictions, ["horizon"])

    def by_fold(self) -> pd.DataFrame:
        return metric_table(self.predictions, ["fold", "cutoff"])

    def by_segment(self, column: str) -> pd.DataFrame:
        return metric_table(self.predictions, [column])

    def metrics_dict(self) -> dict[str, float]:
        """Flat, MLflow-legal metric names: overall, ``fold_<i>_*``, ``h<hh>_*``, ``seg_*``."""
        out: dict[str, float] = {}
        overall = self.summary().iloc[0]
        for name in [
            "wape",
            "mae",
            "bias",
            "wape_baseline",
            "mae_baseline",
            "bias_baseline",
            "wape_ratio",
            "n",
            "actual_tonnes",
        ]:
            out[name] = float(overall[name])
        for row in self.by_fold().itertuples():
            for name in ["wape", "wape_baseline", "wape_ratio", "bias"]:
                out[f"fold_{row.fold}_{name}"] = float(getattr(row, name))
        for row in self.by_horizon().itertuples():
            for name in ["wape", "wape_baseline"]:
                out[f"h{row.horizon:02d}_{name}"] = float(getattr(row, name))
        for column in self.methodology.segments:
            for row in self.by_segment(column).to_dict("records"):
                prefix = metric_name(f"seg_{column}_{row[column]}")
                for name in ["wape", "wape_baseline", "wape_ratio", "bias", "tonnes_share"]:
                    out[f"{prefix}_{name}"] = float(row[name])
        out.update(self.coverage())
        return out

    @property
    def has_intervals(self) -> bool:
        return all(
            quantile_column(q) in self.predictions for pair in CENTRAL.values() for q in pair
        )

    def coverage(self) -> dict[str, float]:
        """``coverage_80`` / ``coverage_95``: the share of actuals inside the central
        intervals (empty without intervals)."""
        return coverage(self.predictions) if self.has_intervals else {}

    def coverage_by(self, column: str) -> pd.DataFrame:
        """Coverage of each central interval per value of ``column`` (and n)."""
        rows = []
        for value, part in self.predictions.groupby(column, observed=True, sort=True):
            rows.append({column: value, "n": int(part["y"].notna().sum()), **coverage(part)})
        return pd.DataFrame(rows)


_CYRILLIC = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "y",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "shch",
            "",
            "y",
            "",
            "e",
            "yu",
            "ya",
        ],
        strict=True,
    )
)


def metric_name(text: str) -> str:
    """An MLflow-legal metric name: Cyrillic transliterated, anything else odd -> '_'."""
    latin = "".join(
        _CYRILLIC.get(ch.lower(), ch).capitalize() if ch.isupper() else _CYRILLIC.get(ch, ch)
        for ch in str(text)
    )
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_.\-/]", "_", latin)).strip("_")


def run_backtest(
    facts: pd.DataFrame | SeriesPanel,
    model_factory: Callable[[], Any],
    methodology: Methodology,
    feature_kwargs: Mapping[str, Any] | None = None,
    *,
    baseline_factory: Callable[[], Any] = SeasonalNaive,
    level_adjustments: Sequence[LevelAdjustment] = (),
    intervals: IntervalTable | None = None,
) -> BacktestResult:
    """Backtest a model recipe on the facts by the methodology (see the module docstring).

    ``model_factory`` returns a fresh unfitted estimator with ``fit(examples)`` and
    ``predict(examples)``. ``feature_kwargs`` shape the training examples: origin_step_days,
    horizons_per_origin, min_history_days, seed, train_window_days (applied per fold:
    training origins within that many days before the cutoff), holiday_country; defaults in
    ``FEATURE_KWARGS``; horizon_max may be given but must equal the backtest horizon.
    Scored series need ``methodology.backtest.min_history_days``.

    ``level_adjustments`` (the recipe's, freightml.features.levels) restate the facts the
    model learns and forecasts from, in the folds whose cutoff is on or after the change
    (``before``): a fold before it could not have known the step. The actuals a fold is
    scored on and the seasonal-naive baseline stay raw, so recipes with and without
    adjustments compare on the same numbers.
    """
    kw = {**FEATURE_KWARGS, **(feature_kwargs or {})}
    horizon = methodology.backtest.horizon_days
    if kw.pop("horizon_max", horizon) != horizon:
        raise ValueError(f"feature_kwargs horizon_max must equal backtest.horizon_days={horizon}")
    unknown = sorted(set(kw) - set(FEATURE_KWARGS))
    if unknown:
        raise ValueError(f"unknown feature_kwargs {unknown}; allowed: {sorted(FEATURE_KWARGS)}")
    if level_adjustments and isinstance(facts, SeriesPanel):
        raise ValueError("level adjustments need the facts, not a SeriesPanel")
    panel = facts if isinstance(facts, SeriesPanel) else SeriesPanel.from_facts(facts)
    cutoffs = backtest_cutoffs(panel.last_date, methodology)
    need = kw["min_history_days"] + horizon
    earliest_train = panel.start + pd.Timedelta(days=need)
    if cutoffs[0] < earliest_train:
        raise ValueError(
            f"facts {panel.start.date()}..{panel.last_date.date()} are too short for "
            f"{len(cutoffs)} folds: the first cutoff {cutoffs[0].date()} must be on or after "
            f"{earliest_train.date()} (the training examples' min_history_days + horizon "
            "after the first fact)"
        )

    def test_examples(history: SeriesPanel) -> pd.DataFrame:
        """Every scored series at every cutoff, all horizons."""
        return build_examples(
            history,
            origins=cutoffs,
            horizon_max=horizon,
            min_history_days=methodology.backtest.min_history_days,
            holiday_country=kw["holiday_country"],
        )

    raw_test = test_examples(panel)
    known = raw_test["y"].notna()
    key = ["origin_date", "target_date", *SERIES_KEY]
    cache: dict[tuple[LevelAdjustment, ...], tuple[pd.DataFrame, pd.DataFrame, SeriesPanel]] = {}

    def model_examples(
        adjustments: tuple[LevelAdjustment, ...],
    ) -> tuple[pd.DataFrame, pd.DataFrame, SeriesPanel]:
        """Training examples and test features from the history the model reads."""
        if adjustments not in cache:
            history = (
                SeriesPanel.from_facts(adjust_levels(facts, adjustments)) if adjustments else panel
            )
            train_all = build_examples(
                history,
                origins=default_origins(cutoffs[-1], panel.start, kw["origin_step_days"]),
                horizon_max=horizon,
                horizons_per_origin=kw["horizons_per_origin"],
                min_history_days=kw["min_history_days"],
                seed=kw["seed"],
                holiday_country=kw["holiday_country"],
            )
            model_test = raw_test
            if adjustments:  # the same rows, features from the restated history
                model_test = test_examples(history)
                if not model_test[key].equals(raw_test[key]):
                    raise RuntimeError(
                        "the level-adjusted test examples do not line up with the raw ones"
                    )
            cache[adjustments] = (
                train_all.loc[train_all["y"].notna()],
                model_test.loc[known],
                history,
            )
        return cache[adjustments]

    test_all = raw_test.loc[known]
    frames, info = [], []
    for fold, cutoff in enumerate(cutoffs):
        # a fold restates only the changes that had happened by its cutoff: before the
        # change, the step was not yet knowable
        train_all, model_test_all, history = model_examples(
            tuple(a for a in level_adjustments if pd.Timestamp(a.before) <= cutoff)
        )
        keep = train_all["target_date"] <= cutoff
        if kw["train_window_days"] is not None:
            keep &= train_all["origin_date"] >= cutoff - pd.Timedelta(days=kw["train_window_days"])
        train = train_all.loc[keep]
        test = test_all.loc[test_all["origin_date"] == cutoff]
        model_test = model_test_all.loc[model_test_all["origin_date"] == cutoff]
        if train.empty or test.empty:
            raise ValueError(f"fold {fold} (cutoff {cutoff.date()}): no training or test rows")
        began = time.perf_counter()
        model = model_factory()
        model.fit(train)
        names = getattr(model, "statistical_models", [])
        if names:
            model_test = add_statistical(
                model_test,
                history,
                names,
                horizon_max=horizon,
                history_days=getattr(model, "stat_history_days", 182),
                n_jobs=getattr(model, "n_jobs", 1),
                holiday_country=kw["holiday_country"],
            )
        yhat = np.asarray(model.predict(model_test), dtype=np.float64)
        seconds = time.perf_counter() - began
        baseline = baseline_factory().fit(train).predict(test)
        frame = test.assign(fold=fold, cutoff=cutoff, yhat=yhat, yhat_baseline=baseline)[
            PREDICTION_COLUMNS
        ]
        if intervals is not None:
            frame = pd.concat([frame, intervals.quantiles(model_test, yhat)], axis=1)
        frames.append(frame)
        info.append(
            {
                "fold": fold,
                "cutoff": cutoff,
                "train_rows": len(train),
                "test_rows": len(test),
                "fit_predict_seconds": round(seconds, 2),
            }
        )
    predictions = pd.concat(frames, ignore_index=True)
    return BacktestResult(predictions, cutoffs, methodology, info)
