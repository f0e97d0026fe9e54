"""Does the demo loop's realised WAPE recover after the switch, and thanks to what?

An offline replay of `freightml demo --loop`'s forecasts, without the services: for each
recipe (GlobalGBM ``loss:target_base``) the first version is trained on the loop's
history as the training pipeline does (the freshest ``data.train_window_days`` of facts,
the configured example cutting), then every simulated day it forecasts horizons 1-7 from
the day before for every series active in the last 28 days, on the facts known by then,
and the day's realised WAPE is scored as the loop scores it
(:func:`freightml.demo.loop.realised`). On ``--retrain-day`` (the day the loop's
decision fires, day 7 with the default policy) the second version is trained on the facts
up to that day with the policy's window rule (the new region named, as the decision
names it); from the next day it answers. The same days are also forecast by the first
version alone ("v1 kept"), which splits the recovery into what the second version adds
and what the recipe's base adapting to the new level gives any version.

With the loop's defaults the replay reproduces the loop's timeline (the same facts,
models and forecasts; the recorded runs agree to the third decimal).

    uv run python bench/loop_recovery.py
    uv run python bench/loop_recovery.py --recipe squared_error:level absolute_error:weekday_level
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import date, timedelta

import pandas as pd

from freightml.config import Settings, load_settings
from freightml.data.sources import freshest_window
from freightml.demo.loop import (
    PLAN_DAYS,
    LoopScenario,
    _shifted_series,
    active_series,
    loop_facts,
    realised,
)
from freightml.features.build import SERIES_KEY, build_examples, build_inference_frame
from freightml.features.levels import adjust_levels, adjustments_of
from freightml.retraining.policy import load_policy
from freightml.retraining.window import choose_window
from freightml.stages.features import feature_kwargs
from freightml.stages.train import make_estimator

KEYS = list(SERIES_KEY)


def train(settings: Settings, facts: pd.DataFrame):
    """Fit the configured model on the freshest training window, as the pipeline does
    (restated by the recipe's level adjustments, if any)."""
    window = freshest_window(facts, settings.data.train_window_days)
    examples = build_examples(
        adjust_levels(window, adjustments_of(make_estimator(settings))),
        seed=settings.model.params.get("random_state", 0),
        **feature_kwargs(settings),
    )
    return make_estimator(settings).fit(examples)


def forecast(settings: Settings, model, known: pd.DataFrame, origin: date, series) -> pd.DataFrame:
    """Horizons 1-``PLAN_DAYS`` from ``origin`` for ``series`` (the predictor's answer)."""
    history = known.loc[
        (known["date"] > pd.Timestamp(origin - timedelta(days=400)))
        & (known["date"] <= pd.Timestamp(origin))
    ]
    frame = build_inference_frame(
        adjust_levels(history, adjustments_of(model)),  # as the predictor reads it
        pd.Timestamp(origin),
        horizons=range(1, PLAN_DAYS + 1),
        series=pd.DataFrame(series, columns=KEYS),
        holiday_country=settings.features.holiday_country,
    )
    out = frame[KEYS].astype(str)
    out["date"] = pd.Timestamp(origin) + pd.to_timedelta(frame["horizon"].to_numpy(), unit="D")
    out["forecast"] = model.predict(frame)
    return out


def replay(base: Settings, scenario: LoopScenario, retrain_day: int) -> pd.DataFrame:
    """Realised WAPE per day with the switch ("served") and with the first version only."""
    params = {**base.model.params, "loss": scenario.loss, "target_base": scenario.target_base}
    settings = base.model_copy(update={"model": base.model.model_copy(update={"params": params})})
    facts = loop_facts(scenario)
    shifted = _shifted_series(facts.later, scenario)
    first = train(settings, facts.history)
    second = None
    known = facts.history
    made: dict[str, list[pd.DataFrame]] = {"served": [], "v1 kept": []}
    rows = []
    for day in range(1, scenario.days + 1):
        today = facts.origin + timedelta(days=day)
        origin = today - timedelta(days=1)
        series = active_series(known, origin)
        by_first = forecast(settings, first, known, origin, series)
        made["v1 kept"].append(by_first)
        made["served"].append(
            by_first if second is None else forecast(settings, second, known, origin, series)
        )
        todays = facts.later.loc[facts.later["date"] == pd.Timestamp(today)]
        known = pd.concat([known, todays], ignore_index=True)
        row = {
            "day": day,
            "phase": "shifted" if today >= facts.shift_date else "before shift",
            "version": "v1" if second is None else "v2",
        }
        for name, forecasts in made.items():
            row[name], row[f"{name}, shifted"] = realised(pd.concat(forecasts), todays, shifted)
        rows.append(row)
        if day == retrain_day:
            choice = choose_window(
                known,
                as_of=today,
                settings=load_policy(settings.retraining_path).window,
                new_segments=[scenario.new_region],
                cause="new_regions",
                train_window_days=settings.data.train_window_days,
            )
            second = train(choice.apply(settings), known)
    return pd.DataFrame(rows)


def periods(days: pd.DataFrame) -> dict[str, float]:
    """Mean realised WAPE: before the shift, shifted days before the switch, after it."""
    switch = days.loc[days["version"] == "v2", "day"].min()
    parts = {
        "before shift": days["phase"] == "before shift",
        "shifted, v1 serving": (days["phase"] == "shifted") & (days["day"] < switch),
        "after switch": days["day"] >= switch,
    }
    out = {}
    for part, rows in parts.items():
        out[f"all: {part}"] = days.loc[rows, "served"].mean()
        out[f"shifted: {part}"] = days.loc[rows, "served, shifted"].mean()
    after = parts["after switch"]
    out["all: after switch, v1 kept"] = days.loc[after, "v1 kept"].mean()
    out["shifted: after switch, v1 kept"] = days.loc[after, "v1 kept, shifted"].mean()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipe",
        nargs="+",
        default=[f"{LoopScenario.loss}:{LoopScenario.target_base}"],
        help="GlobalGBM loss:target_base, e.g. squared_error:level",
    )
    parser.add_argument("--days", type=int, default=LoopScenario.days, help="simulated days")
    parser.add_argument("--retrain-day", type=int, default=7, help="day the retrain is decided")
    parser.add_argument("--config", default=None, help="settings file (default: the defaults)")
    parser.add_argument("--csv", default=None, help="write the per-day figures here")
    args = parser.parse_args()
    settings = load_settings(args.config)
    summaries, frames = {}, []
    for recipe in args.recipe:
        loss, _, target_base = recipe.partition(":")
        scenario = replace(LoopScenario(), days=args.days, loss=loss, target_base=target_base)
        started = time.perf_counter()
        days = replay(settings, scenario, args.retrain_day)
        print(f"{recipe} ({time.perf_counter() - started:.0f} s)")
        print(days.round(3).to_string(index=False), flush=True)
        summaries[recipe] = periods(days)
        frames.append(days.assign(recipe=recipe))
    print(pd.DataFrame(summaries).round(3).to_string())
    if args.csv:
        pd.concat(frames).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
