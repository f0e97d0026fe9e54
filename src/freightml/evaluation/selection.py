"""Nested selection: backtest the candidate portfolio on inner folds, keep the best.

The reported backtest (freightml.evaluation.backtest) scores one recipe on the methodology's
cutoffs. To choose that recipe without looking at those folds, every candidate is scored on
``inner`` validation folds that end on the first reported cutoff: inner cutoff ``k`` is
``step_days * k`` days before it, scored on horizons 1..H, so its last target day is at most
the first reported cutoff. Whatever wins there is then backtested on the reported folds, an
estimate the choice never saw.

Candidates (settings ``selection``):

- ML: the configured model's recipe with each override of ``selection.ml_recipes`` (the
  global GBM: what the trees correct, which loss), and, with ``calendar_ablation``, the
  best of them without the holiday features (kept only where they help). On a panel with
  less than a year of history the ML candidates read neither the yearly nor the holiday
  calendar (the values ahead are ones training never saw);
- statistical: per-series statsforecast models fitted at each inner cutoff
  (freightml.models.statistical), and mlforecast's recursive LightGBM, plain and reading the
  holiday flags;
- ensembles: the best statistical and the best ML candidate, as their mean and with the
  weight that minimises WAPE on the inner folds (a grid of 0.05).

All candidates are scored on the same rows (a fixed random sample of at most
``max_series`` series, every horizon) against seasonal naive. The winner has the lowest
WAPE; candidates within ``selection.tolerance`` of it count as tied, and the simplest of
them wins (ML before statistical before a blend, in portfolio order): a difference that
small is noise, and a simpler model is cheaper to fit, serve and explain. The winner's
inner-fold residuals calibrate the prediction intervals (freightml.models.intervals).

The holiday calendar (``features.holiday_country``) is first put to the test on the history
before the first validation cutoff (freightml.features.calendar.holiday_evidence: do the
panel's daily totals depart from the same weekday more on its holidays than on ordinary
days?). Where it does not measurably move the panel (another country's calendar, too few
holidays yet), no candidate reads it: the holiday-aware LightGBM is not offered and the ML
candidates drop the holiday features. Where it does, the holiday-aware LightGBM comes before
the plain one, so it wins a tie: validation folds a few weeks apart rarely hold a holiday
period that could tell the two apart, and the test has already shown the holidays matter.

Which history a series needs (``min_history_days`` of the training examples) adapts to the
panel: the configured value, or less on a short panel so that the first inner fold still
has training origins (never under 28 days). ``history_plan`` computes it from the facts
alone, so the features stage and the selection agree without talking to each other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from freightml.evaluation.backtest import backtest_cutoffs
from freightml.evaluation.gates import segment_supported
from freightml.evaluation.methodology import Methodology
from freightml.evaluation.metrics import metric_table
from freightml.features.build import SERIES_KEY, SeriesPanel, build_examples, default_origins
from freightml.features.calendar import CALENDAR_COLUMNS, HOLIDAY_COLUMNS, holiday_evidence
from freightml.models import make_model
from freightml.models.baseline import SeasonalNaive
from freightml.models.intervals import IntervalTable, calibrate
from freightml.models.portfolio import ML_MODELS
from freightml.models.recursive import HOLIDAY_AWARE, RECURSIVE_MODELS
from freightml.models.statistical import add_statistical, stat_column

log = logging.getLogger("freightml")

MIN_HISTORY_FLOOR = 28
WEIGHT_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)
# The yearly cycle and the holidays: with less than a year of history (plus a horizon)
# before a forecast, the yearly features take values at forecast time that training never
# saw (the trees extend the last season's leaves to them), and the holidays ahead are others
# than the ones training saw (a holiday's effect is learnt from the same holiday a year
# earlier), so the ML candidates do not read either on such panels.
YEARLY_CALENDAR = ["month", "day_of_year", "days_to_new_year", "days_since_new_year"]
YEARLY_MIN_DAYS = 365 + 28
# The holiday calendar: on longer panels the ablation drops it; it stays only where it helps.
HOLIDAY_CALENDAR = HOLIDAY_COLUMNS
assert set(YEARLY_CALENDAR + HOLIDAY_CALENDAR) < set(CALENDAR_COLUMNS)


@dataclass(frozen=True)
class HistoryPlan:
    """The folds and the history rule a panel allows."""

    reported: list[pd.Timestamp]
    inner: list[pd.Timestamp]
    min_history_days: int


def history_plan(
    start: pd.Timestamp,
    last_date: pd.Timestamp,
    methodology: Methodology,
    *,
    min_history_days: int,
    inner_folds: int,
) -> HistoryPlan:
    """Reported cutoffs, the inner cutoffs that fit before them (at most ``inner_folds``)
    and the training examples' history rule: ``min_history_days``, lowered on a short panel
    so the first inner fold has ``horizon`` days of training targets, never under 28.
    Raises when not even one inner fold fits."""
    spec = methodology.backtest
    reported = backtest_cutoffs(last_date, methodology)
    start = pd.Timestamp(start).normalize()
    inner: list[pd.Timestamp] = []
    for k in range(inner_folds, 0, -1):
        cutoff = reported[0] - pd.Timedelta(days=spec.step_days * k)
        if (cutoff - start).days - spec.horizon_days >= MIN_HISTORY_FLOOR:
            inner.append(cutoff)
    if not inner:
        need = MIN_HISTORY_FLOOR + spec.horizon_days + spec.step_days
        raise ValueError(
            f"facts {start.date()}..{pd.Timestamp(last_date).date()} are too short for a "
            f"validation fold before the first reported cutoff {reported[0].date()}: it needs "
            f"{need} days of history before that cutoff"
        )
    room = (inner[0] - start).days - spec.horizon_days
    return HistoryPlan(reported, inner, int(min(min_history_days, room)))


class CandidateScore(BaseModel):
    """One candidate on the inner folds."""

    label: str
    kind: str  # ml | statistical | recursive | ensemble
    params: dict[str, Any]  # the Portfolio parameters that make it
    wape: float
    wape_ratio: float
    bias: float
    segments_over: int  # supported segments above the methodology's segment limit
    segments: int
    chosen: bool = False
    why: str = ""


class Selection(BaseModel):
    """What the select stage found; the train and evaluate stages read it."""

    recipe: dict[str, Any]  # Portfolio parameters of the chosen candidate
    chosen: str
    candidates: list[CandidateScore]
    inner_cutoffs: list[str]
    min_history_days: int
    scored_series: int
    scored_rows: int
    intervals: IntervalTable
    seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            "| candidate | kind | WAPE | ratio to seasonal naive | bias | segments over the "
            "limit | chosen | why |",
            "|---|---|---:|---:|---:|---:|---|---|",
        ]
        for c in self.candidates:
            lines.append(
                f"| {c.label} | {c.kind} | {c.wape:.4f} | {c.wape_ratio:.3f} | "
                f"{c.bias:+.1%} | {c.segments_over} of {c.segments} | "
                f"{'**yes**' if c.chosen else 'no'} | {c.why} |"
            )
        return "\n".join(lines) + "\n"


def _score(frame: pd.DataFrame, column: str, methodology: Methodology) -> dict[str, Any]:
    scored = frame.assign(yhat=frame[column])
    overall = metric_table(scored, []).iloc[0]
    over = total = 0
    for seg in methodology.segments:
        for row in metric_table(scored, [seg]).to_dict("records"):
            if segment_supported(row["tonnes_share"], row["n_series"], methodology.gates):
                total += 1
                over += bool(
                    row["wape_ratio"] > methodology.gates.max_segment_wape_ratio_to_baseline
                )
    return {
        "wape": float(overall["wape"]),
        "wape_ratio": float(overall["wape_ratio"]),
        "bias": float(overall["bias"]),
        "segments_over": over,
        "segments": total,
    }


def select_candidate(
    facts: pd.DataFrame,
    methodology: Methodology,
    *,
    model_name: str,
    model_params: Mapping[str, Any],
    selection: Any,
    feature_kwargs: Mapping[str, Any],
) -> Selection:
    """Score the portfolio of ``selection`` (a SelectionSettings) on the inner folds of
    ``facts`` and return the winner with its interval calibration (module docstring).
    ``feature_kwargs`` are the training examples' options (stages.features.feature_kwargs)."""
    began = time.perf_counter()
    panel = SeriesPanel.from_facts(facts)
    horizon = methodology.backtest.horizon_days
    plan = history_plan(
        panel.start,
        panel.last_date,
        methodology,
        min_history_days=int(feature_kwargs["min_history_days"]),
        inner_folds=selection.inner_folds if selection.enabled else 1,
    )
    holiday = feature_kwargs["holiday_country"]
    # does the holiday calendar move this panel? (judged on the history before validation)
    days = panel.start + pd.to_timedelta(np.arange(panel.n_days), unit="D")
    before = days <= plan.inner[0]
    totals = pd.Series(np.nansum(panel.values[:, before], axis=0), index=days[before])
    evidence = holiday_evidence(totals, holiday)
    train_all = build_examples(
        panel,
        origins=default_origins(plan.inner[-1], panel.start, feature_kwargs["origin_step_days"]),
        horizon_max=horizon,
        horizons_per_origin=feature_kwargs["horizons_per_origin"],
        min_history_days=plan.min_history_days,
        seed=int(model_params.get("random_state", 0) or 0),
        holiday_country=holiday,
    )
    train_all = train_all.loc[train_all["y"].notna()]
    test = build_examples(
        panel,
        origins=plan.inner,
        horizon_max=horizon,
        min_history_days=plan.min_history_days,
        holiday_country=holiday,
    )
    test = test.loc[test["y"].notna()].reset_index(drop=True)
    series_id = test.groupby(SERIES_KEY, sort=True).ngroup().to_numpy()
    n_series = int(series_id.max()) + 1 if len(series_id) else 0
    if n_series > selection.max_series:
        keep = np.random.default_rng(0).choice(n_series, selection.max_series, replace=False)
        test = test.loc[np.isin(series_id, keep)].reset_index(drop=True)
    if test.empty:
        raise ValueError("selection: no series has enough history at the inner cutoffs")

    stat_names = list(selection.statistical) if selection.enabled else []
    if not evidence.moves:
        stat_names = [n for n in stat_names if n != HOLIDAY_AWARE]
    elif HOLIDAY_AWARE in stat_names and "lightgbm" in stat_names:
        # the calendar measurably moves the panel: on a tie the holiday-aware model wins
        # (validation folds rarely hold a holiday period that could tell them apart)
        stat_names.remove(HOLIDAY_AWARE)
        stat_names.insert(stat_names.index("lightgbm"), HOLIDAY_AWARE)
    if stat_names:
        log.info(
            "selection: statistical candidates %s on %d series x %d inner folds",
            ", ".join(stat_names),
            test[SERIES_KEY].drop_duplicates().shape[0],
            len(plan.inner),
        )
        test = add_statistical(
            test,
            panel,
            stat_names,
            horizon_max=horizon,
            history_days=selection.stat_history_days,
            n_jobs=selection.n_jobs,
            holiday_country=holiday,
        )
    test["yhat_baseline"] = SeasonalNaive().fit(test).predict(test)

    base = dict(model_params)
    notes = [evidence.describe()]
    if model_name == "gbm" and not evidence.moves:
        base["exclude_features"] = sorted(
            {*(base.get("exclude_features") or []), *HOLIDAY_CALENDAR}
        )
    short = (plan.inner[0] - panel.start).days < YEARLY_MIN_DAYS
    if model_name == "gbm" and short:
        calendar = [*YEARLY_CALENDAR, *HOLIDAY_CALENDAR]
        base["exclude_features"] = sorted({*(base.get("exclude_features") or []), *calendar})
        notes.append(
            "the ML candidates do not read the yearly and holiday calendar "
            f"({', '.join(calendar)}): less than {YEARLY_MIN_DAYS} days of history before "
            "the first validation cutoff"
        )

    def ml_candidates() -> dict[str, tuple[str, dict[str, Any]]]:
        if not selection.enabled or model_name != "gbm":
            return {model_name: (model_name, base)}
        out = {}
        for label, overrides in selection.ml_recipes.items():
            other = overrides.get("model", model_name)
            params = {k: v for k, v in overrides.items() if k != "model"}
            out[label] = (other, {**base, **params} if other == model_name else params)
        return out

    # every candidate of a fold fits on the same training rows: at most max_train_rows of
    # the examples whose target is on or before the inner cutoff, drawn once
    rng = np.random.default_rng(0)
    fold_train = {}
    for cutoff in plan.inner:
        rows = np.flatnonzero((train_all["target_date"] <= cutoff).to_numpy())
        if len(rows) > selection.max_train_rows:
            rows = np.sort(rng.choice(rows, selection.max_train_rows, replace=False))
        fold_train[cutoff] = train_all.iloc[rows]
    fold_test = {c: (test["origin_date"] == c).to_numpy() for c in plan.inner}

    def fit_predict(name: str, params: dict[str, Any]) -> np.ndarray:
        out = np.empty(len(test))
        for cutoff in plan.inner:
            rows = fold_test[cutoff]
            model = make_model(name, params).fit(fold_train[cutoff])
            out[rows] = np.asarray(model.predict(test.loc[rows]), dtype=np.float64)
        return out

    scores: list[CandidateScore] = []
    columns: dict[str, str] = {}

    def record(label: str, kind: str, params: dict[str, Any], column: str) -> None:
        columns[label] = column
        s = CandidateScore(
            label=label, kind=kind, params=params, **_score(test, column, methodology)
        )
        scores.append(s)
        log.info(
            "selection: %-34s WAPE %.4f (ratio %.3f), %d of %d segments over the limit",
            label,
            s.wape,
            s.wape_ratio,
            s.segments_over,
            s.segments,
        )

    for label, (name, params) in ml_candidates().items():
        test[f"yhat_{label}"] = fit_predict(name, params)
        record(label, "ml", _recipe(name, params, None, 1.0, selection, label), f"yhat_{label}")
    ml_best = min((s for s in scores if s.kind == "ml"), key=lambda s: s.wape)
    name, params = ml_candidates()[ml_best.label]
    if (
        selection.enabled
        and selection.calendar_ablation
        and name == "gbm"
        and not short
        and evidence.moves
    ):
        excluded = sorted({*(params.get("exclude_features") or []), *HOLIDAY_CALENDAR})
        label = f"{ml_best.label}_no_holidays"
        ablated = {**params, "exclude_features": excluded}
        test[f"yhat_{label}"] = fit_predict(name, ablated)
        record(label, "ml", _recipe(name, ablated, None, 1.0, selection, label), f"yhat_{label}")
        ml_best = min((s for s in scores if s.kind == "ml"), key=lambda s: s.wape)
    if ml_best.params["ml"] not in ML_MODELS:  # e.g. a custom model: not a portfolio part
        raise ValueError(
            f"selection: the best ML candidate {ml_best.label!r} is a {ml_best.params['ml']!r} "
            f"model; a portfolio's ML part is one of {list(ML_MODELS)}"
        )
    for stat in stat_names:
        column = f"yhat_{stat}"
        # a series too young for the statistical model: seasonal naive, as Portfolio does
        test[column] = test[stat_column(stat)].fillna(test["yhat_baseline"])
        # the recipe keeps the level adjustments: serving and scoring read its facts that way
        kept = {k: base[k] for k in ("level_adjustments",) if base.get(k)}
        recipe = _recipe(None, kept or None, stat, 0.0, selection, stat)
        record(stat, "recursive" if stat in RECURSIVE_MODELS else "statistical", recipe, column)
    stats = [s for s in scores if s.kind in ("statistical", "recursive")]
    if selection.enabled and selection.ensembles and stats:
        stat_best = min(stats, key=lambda s: s.wape)
        ml_name = ml_best.params["ml"]
        ml_params = ml_best.params["ml_params"]
        ml_yhat = test[columns[ml_best.label]].to_numpy()
        stat_raw = test[stat_column(stat_best.label)].to_numpy()

        def blend(w: float) -> np.ndarray:
            return np.where(np.isnan(stat_raw), ml_yhat, w * ml_yhat + (1 - w) * stat_raw)

        y = test["y"].to_numpy()
        errors = [np.abs(blend(w) - y).sum() for w in WEIGHT_GRID]
        learned = float(WEIGHT_GRID[int(np.argmin(errors))])
        for label, w in (
            (f"mean({ml_best.label}, {stat_best.label})", 0.5),
            (f"weighted({ml_best.label} x {learned:.2f}, {stat_best.label})", learned),
        ):
            if w in (0.0, 1.0):
                continue  # the learned weight is a single candidate already scored
            test[f"yhat_{label}"] = blend(w)
            recipe = _recipe(ml_name, ml_params, stat_best.label, w, selection, label)
            record(label, "ensemble", recipe, f"yhat_{label}")
    lowest = min(scores, key=lambda s: (s.wape, s.segments_over))
    # ties within the tolerance go to the simplest candidate: scores are in that order
    best = next(s for s in scores if s.wape <= lowest.wape * (1 + selection.tolerance))
    for s in scores:
        s.chosen = s is best
        if s.chosen:
            s.why = (
                "lowest WAPE on the validation folds"
                if s is lowest
                else f"simplest within {selection.tolerance:.1%} of the lowest WAPE "
                f"({lowest.label}, {s.wape / lowest.wape - 1:+.2%})"
            )
        else:
            s.why = f"WAPE {s.wape / best.wape - 1:+.1%} vs the chosen"
    residuals = test.assign(yhat=test[columns[best.label]])
    intervals = calibrate(residuals, selection.interval_segment)
    seconds = time.perf_counter() - began
    log.info(
        "selection: chose %s (inner WAPE %.4f, ratio %.3f) in %.1f s",
        best.label,
        best.wape,
        best.wape_ratio,
        seconds,
    )
    return Selection(
        recipe=best.params,
        chosen=best.label,
        candidates=scores,
        inner_cutoffs=[str(c.date()) for c in plan.inner],
        min_history_days=plan.min_history_days,
        scored_series=int(test[SERIES_KEY].drop_duplicates().shape[0]),
        scored_rows=len(test),
        intervals=intervals,
        seconds=round(seconds, 1),
        notes=notes,
    )


def _recipe(
    ml: str | None,
    ml_params: dict[str, Any] | None,
    statistical: str | None,
    ml_weight: float,
    selection: Any,
    label: str,
) -> dict[str, Any]:
    """Portfolio parameters (freightml.models.portfolio) of one candidate."""
    return {
        "ml": ml,
        "ml_params": dict(ml_params) if ml_params is not None else None,
        "statistical": statistical,
        "ml_weight": float(ml_weight),
        "stat_history_days": selection.stat_history_days,
        "n_jobs": selection.n_jobs,
        "label": label,
    }
