"""Shift-aware training window vs a plain full-window retrain, on the post-change backtest.

Synthetic facts (``--size``) with an abrupt change injected on day C: (a) every lane of one
cargo type scaled by ``--factor`` from C, (b) a new region whose lanes start on C and add
traffic, (c) a new region whose lanes start on C and take traffic from established lanes:
the lanes loading ``--diversion-cargo`` in ``--diversion-region`` keep
``--diversion-factor`` of their traffic from C (shippers there send part of it through the
new region instead, so the established lanes step down as the new ones open). The
retrain happens on the methodology's first backtest cutoff F (facts up to F); C lies ``age``
days before it. The window rule (freightml.retraining.window.choose_window) looks at the
facts up to F (and, for the new region, is told its name, as the retraining decision would)
and picks full_window, post_change or down_weight. Two recipes then go through the
methodology's rolling-origin backtest on the facts from their window's first day to the
end (3 folds of 28 days, every target after F, i.e. all post-change days): the configured
full window, and the rule's choice (WindowChoice.apply: window, weights and, after a level
shift, the level adjustment that the model then reads its history with, in training and
forecasting alike, as the retrain, the predictor and monitoring do; ``--no-level-adjust``
turns the adjustment off). Both arms are scored on the raw actuals. A control scenario
without a change checks that the rule leaves training alone when nothing happened.

    uv run python bench/retrain_window.py --size demo
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from freightml.config import Settings, load_settings
from freightml.data.synthetic import SIZES, generate
from freightml.evaluation import backtest_cutoffs, load_methodology
from freightml.evaluation.metrics import bias, wape
from freightml.retraining.window import FULL_WINDOW, WindowSettings, choose_window
from freightml.stages.evaluate import backtest_recipe

NEW_REGION = "Crimean"
ROW_KEY = ["cutoff", "origin_station", "destination_station", "cargo_type", "horizon"]


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "none", "shift", "region" or "diversion"
    age: int  # days from the change to the retrain (the first cutoff)


SCENARIOS = [
    Scenario("no change (control)", "none", 0),
    Scenario("level shift, 120 days before the retrain", "shift", 120),
    Scenario("level shift, 42 days before the retrain", "shift", 42),
    Scenario("level shift, 21 days before the retrain", "shift", 21),
    Scenario("new region, 120 days before the retrain", "region", 120),
    Scenario("new region, 60 days before the retrain", "region", 60),
    Scenario("new region, 28 days before the retrain", "region", 28),
    Scenario("new region taking traffic, 120 days before the retrain", "diversion", 120),
    Scenario("new region taking traffic, 60 days before the retrain", "diversion", 60),
    Scenario("new region taking traffic, 28 days before the retrain", "diversion", 28),
]


@dataclass(frozen=True)
class Diversion:
    """Established lanes that lose traffic to the new region from its first day."""

    cargo: str
    region: str
    factor: float


def scenario_facts(
    s: Scenario,
    size: str,
    seed: int,
    change: date,
    cargo: str,
    factor: float,
    diversion: Diversion | None = None,
) -> pd.DataFrame:
    if s.kind == "shift":
        return generate(size, seed=seed, level_shift=(change, factor), level_shift_cargo=cargo)
    if s.kind == "region":
        return generate(size, seed=seed, new_region=NEW_REGION, new_region_from=change)
    if s.kind == "diversion":
        if diversion is None:
            raise ValueError(f"{s.name}: a diversion scenario needs the diverted lanes")
        return generate(
            size,
            seed=seed,
            new_region=NEW_REGION,
            new_region_from=change,
            level_shift=(change, diversion.factor),
            level_shift_region=diversion.region,
            level_shift_origin_only=True,
            level_shift_cargo=diversion.cargo,
        )
    return generate(size, seed=seed)


def in_region(pred: pd.DataFrame, region: str) -> pd.Series:
    return (pred["origin_region"].astype(str) == region) | (
        pred["destination_region"].astype(str) == region
    )


def affected(
    pred: pd.DataFrame, s: Scenario, cargo: str, diversion: Diversion | None = None
) -> pd.Series:
    """The forecasts of the series the change touched: the shifted cargo's lanes, the new
    region's lanes, and with a diversion the lanes that lost traffic too."""
    if s.kind == "shift":
        return pred["cargo_type"].astype(str) == cargo
    if s.kind == "region":
        return in_region(pred, NEW_REGION)
    if s.kind == "diversion" and diversion is not None:
        diverted = (pred["origin_region"].astype(str) == diversion.region) & (
            pred["cargo_type"].astype(str) == diversion.cargo
        )
        return in_region(pred, NEW_REGION) | diverted
    return pd.Series(False, index=pred.index)


def scores(pred: pd.DataFrame, mask: pd.Series) -> dict[str, float]:
    def w(part: pd.DataFrame, col: str) -> float:
        return wape(part["y"], part[col]) if len(part) else float("nan")

    return {
        "wape": w(pred, "yhat"),
        "bias": bias(pred["y"], pred["yhat"]),
        "wape_affected": w(pred.loc[mask], "yhat"),
        "wape_rest": w(pred.loc[~mask], "yhat"),
        "wape_naive": w(pred, "yhat_baseline"),
        "affected_share": float(pred.loc[mask, "y"].sum() / pred["y"].sum()),
    }


def backtest(settings: Settings, facts: pd.DataFrame, first_day: date) -> pd.DataFrame:
    methodology = load_methodology(settings.methodology_path)
    window = facts.loc[facts["date"] >= pd.Timestamp(first_day)].reset_index(drop=True)
    return backtest_recipe(settings, window, methodology).predictions


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = load_settings(args.config)
    methodology = load_methodology(base.methodology_path)
    end = pd.Timestamp(SIZES[args.size].end)
    retrain = backtest_cutoffs(end, methodology)[0].date()  # F: the retrain's as-of date
    window_settings = WindowSettings(
        min_post_change_days=args.min_post_change_days,
        pre_change_weight=args.pre_change_weight,
        level_adjust=args.level_adjust,
    )
    diversion = Diversion(args.diversion_cargo, args.diversion_region, args.diversion_factor)
    rows = []
    for s in [SCENARIOS[i] for i in args.scenarios]:
        began = time.perf_counter()
        change = retrain - timedelta(days=s.age)
        facts = scenario_facts(s, args.size, args.seed, change, args.cargo, args.factor, diversion)
        known = facts.loc[facts["date"] <= pd.Timestamp(retrain)]
        choice = choose_window(
            known,
            as_of=retrain,
            settings=window_settings,
            new_segments=[NEW_REGION] if s.kind in ("region", "diversion") else (),
            cause="bench",
            train_window_days=base.data.train_window_days,
        )
        adjustments = choice.adjustments
        arms = {"full window": base, "shift-aware": choice.apply(base)}
        preds: dict[str, pd.DataFrame] = {}
        for arm, settings in arms.items():
            if arm == "shift-aware" and choice.rule == FULL_WINDOW:
                preds[arm] = preds["full window"]  # the same recipe: nothing to refit
                continue
            first = retrain - timedelta(days=settings.data.train_window_days - 1)
            preds[arm] = backtest(settings, facts, first)
        full, aware = preds["full window"], preds["shift-aware"]
        same_rows = full[ROW_KEY].astype(str).equals(aware[ROW_KEY].astype(str)) and np.allclose(
            full["y"].to_numpy(), aware["y"].to_numpy()
        )
        if not same_rows:
            raise RuntimeError(
                f"{s.name}: the two recipes were scored on different rows or actuals"
            )
        for arm, pred in preds.items():
            rows.append(
                {
                    "scenario": s.name,
                    "arm": arm,
                    "rule": choice.rule if arm == "shift-aware" else FULL_WINDOW,
                    "change found": "" if choice.change_date is None else str(choice.change_date),
                    "weight before": (
                        ""
                        if arm == "full window" or choice.pre_change_weight is None
                        else f"{choice.pre_change_weight:g}"
                    ),
                    "window days": arms[arm].data.train_window_days,
                    "level adjusted": (
                        "" if arm == "full window" else ", ".join(a.describe() for a in adjustments)
                    ),
                    **scores(pred, affected(pred, s, args.cargo, diversion)),
                    "rows": len(pred),
                }
            )
        print(
            f"{s.name}: injected {change if s.kind != 'none' else '-'}, {choice.rule} "
            f"({time.perf_counter() - began:.0f} s): {choice.reason}; WAPE full window "
            f"{rows[-2]['wape']:.4f}, shift-aware {rows[-1]['wape']:.4f}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cargo", default="coal", help="the cargo type whose level shifts")
    parser.add_argument("--factor", type=float, default=1.6, help="the level shift")
    parser.add_argument(
        "--diversion-cargo",
        default="coal",
        help="the cargo of the lanes the new region draws traffic from",
    )
    parser.add_argument(
        "--diversion-region",
        default="West Siberian",
        help="the region whose lanes loading that cargo lose traffic to the new region",
    )
    parser.add_argument(
        "--diversion-factor",
        type=float,
        default=0.7,
        help="what the diverted lanes keep of their traffic from the new region's first day",
    )
    parser.add_argument("--config", default=None, help="settings YAML (default: the project's)")
    defaults = WindowSettings()
    parser.add_argument(
        "--min-post-change-days",
        type=int,
        default=defaults.min_post_change_days,
        help="WindowSettings.min_post_change_days (post_change from this many days)",
    )
    parser.add_argument(
        "--pre-change-weight",
        type=float,
        default=defaults.pre_change_weight,
        help="WindowSettings.pre_change_weight (down_weight)",
    )
    parser.add_argument(
        "--level-adjust",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="WindowSettings.level_adjust: after a detected level shift, restate the shifted "
        "segment's pre-change facts (the model's level_adjustments) for training and forecasting",
    )
    parser.add_argument(
        "--scenarios",
        type=int,
        nargs="+",
        default=list(range(len(SCENARIOS))),
        help="which scenarios to run, by position: "
        + "; ".join(f"{i} {s.name}" for i, s in enumerate(SCENARIOS)),
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    table = pd.DataFrame(run(args))
    pd.set_option("display.width", 200)
    print(
        f"\nsize {args.size}, seed {args.seed}, {args.cargo} x{args.factor}, new region "
        f"{NEW_REGION} (taking {args.diversion_cargo} loaded in {args.diversion_region}: "
        f"x{args.diversion_factor}), min_post_change_days {args.min_post_change_days}, "
        "pre_change_weight "
        f"{args.pre_change_weight:g}, level_adjust {args.level_adjust}; WAPE on the "
        "post-change backtest (3 folds x 28 days), "
        f"{time.perf_counter() - began:.0f} s"
    )
    print(table.to_markdown(index=False, floatfmt=".4f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
