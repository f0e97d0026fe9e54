"""Evaluate: backtest the candidate by the methodology, check the gates and put the
current champion on the same window, so the register stage compares like with like."""

from __future__ import annotations

import base64
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import Field

from freightml.config import Settings
from freightml.data.sources import digest_facts
from freightml.evaluation import (
    BacktestResult,
    GateReport,
    Methodology,
    evaluate_gates,
    load_methodology,
    plot_backtest,
    run_backtest,
)
from freightml.features.levels import adjustments_of
from freightml.models.intervals import IntervalTable
from freightml.monitoring.config import load_monitoring_config
from freightml.monitoring.profile import expectations_from_backtest
from freightml.monitoring.types import Expectation
from freightml.stages.features import planned_feature_kwargs
from freightml.stages.result import StageResult
from freightml.stages.select import load_selection
from freightml.stages.train import make_estimator
from freightml.timing import timed
from freightml.tracking.registry import RegistryError, require_version
from freightml.tracking.runs import ChampionRecipe, champion_recipe

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("freightml")
EVALUATION_FILE = "evaluation.json"
HEADLINE = ("wape", "wape_baseline", "wape_ratio", "bias", "mae")
RECORDED = "recorded metrics (same data digest and cutoffs)"
REBACKTESTED = "champion's model and parameters backtested on this window"


class ChampionOnWindow(StageResult):
    """The champion's recipe and its metrics on the candidate's backtest window."""

    recipe: ChampionRecipe
    metrics: dict[str, float]
    how: str  # RECORDED or REBACKTESTED


class EvaluationResult(StageResult):
    """Everything the evaluation found; the register stage and the cards read only this."""

    metrics: dict[str, float]
    gates: GateReport
    cutoffs: tuple[str, ...]
    data_digest: str
    champion: ChampionOnWindow | None
    by_horizon: list[dict[str, Any]]
    by_segment: dict[str, list[dict[str, Any]]]
    # the select stage's choice: the recipe's label and every candidate's inner-fold figures
    chosen: str = ""
    recipe: dict[str, Any] = Field(default_factory=dict)  # the chosen Portfolio's parameters
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    selection_notes: list[str] = Field(default_factory=list)  # e.g. the holiday evidence
    # share of actuals inside the central intervals, overall ("all") and per segment value
    coverage: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    # WAPE and bias per (segment incl. "all", horizon bucket of configs/monitoring.yaml): the
    # reference profile's expectations
    expectations: list[Expectation] = Field(default_factory=list)

    @property
    def failed_gates(self) -> list[str]:
        return [c.name for c in self.gates.failed]

    def headline(self) -> dict[str, float]:
        out = {k: float(self.metrics[k]) for k in HEADLINE}
        out["gates_passed"] = float(self.gates.passed)
        return out

    @classmethod
    def load_from(cls, evaluation_dir: str | Path) -> EvaluationResult:
        return cls.load(Path(evaluation_dir) / EVALUATION_FILE)


def backtest_recipe(
    settings: Settings,
    facts: pd.DataFrame,
    methodology: Methodology,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    intervals: IntervalTable | None = None,
) -> BacktestResult:
    """The methodology's rolling-origin backtest of ``model`` with ``params`` (default: the
    configured model) on ``facts``, the model reading them with its level adjustments and
    the panel's history rule (``planned_feature_kwargs``); ``intervals`` add quantiles."""

    return run_backtest(
        facts,
        lambda: make_estimator(settings, model, params),
        methodology,
        planned_feature_kwargs(settings, facts),
        level_adjustments=adjustments_of(make_estimator(settings, model, params)),
        intervals=intervals,
    )


def cutoff_dates(result: BacktestResult) -> tuple[str, ...]:
    return tuple(str(pd.Timestamp(c).date()) for c in result.cutoffs)


def champion_on_window(
    settings: Settings,
    facts: pd.DataFrame,
    cutoffs: tuple[str, ...],
    methodology: Methodology,
) -> ChampionOnWindow | None:
    """The champion's metrics on this window: its recorded ones when its run used the same
    data and cutoffs, else its recipe backtested again (its own artifact has seen part of
    the window, so it cannot be scored on it fairly). None when there is no champion."""

    with timed("evaluate_model.champion", kind="tracking"):
        recipe = champion_recipe(settings)
    if recipe is None:
        return None
    if recipe.cutoffs == cutoffs and recipe.data_digest == digest_facts(facts):
        return ChampionOnWindow(recipe=recipe, metrics=recipe.metrics, how=RECORDED)
    with timed("evaluate_model.champion_backtest"):
        result = backtest_recipe(settings, facts, methodology, recipe.model, recipe.params)
    return ChampionOnWindow(recipe=recipe, metrics=result.metrics_dict(), how=REBACKTESTED)


def _plots_page(paths: list[Path]) -> str:
    images = "\n".join(
        f'<h2>{p.stem.replace("_", " ")}</h2><img src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}" style="max-width:100%">'
        for p in paths
    )
    head = "<head><meta charset='utf-8'><title>Backtest</title></head>"
    return f"<!doctype html><html>{head}<body>{images}</body></html>"


def _segment_records(result: BacktestResult, column: str) -> list[dict[str, Any]]:
    table = result.by_segment(column).rename(columns={column: "segment"})
    table["segment"] = table["segment"].astype(str)
    return table.sort_values("actual_tonnes", ascending=False).to_dict("records")


def _write_tables(result: BacktestResult, methodology: Methodology, out: Path) -> list[Path]:
    """Predictions, per-horizon and per-segment tables and PNG plots (logged to MLflow)."""

    result.predictions.to_parquet(out / "predictions.parquet", index=False)
    result.by_horizon().to_csv(out / "by_horizon.csv", index=False)
    for column in methodology.segments:
        result.by_segment(column).to_csv(out / f"by_segment_{column}.csv", index=False)
    return plot_backtest(result, out / "plots")


def _coverage_records(result: BacktestResult, methodology: Methodology) -> dict[str, list]:
    if not result.has_intervals:
        return {}
    out: dict[str, list[dict[str, Any]]] = {"all": [{"n": len(result.predictions)}]}
    out["all"][0].update(result.coverage())
    for column in ["horizon_bucket", *methodology.segments]:
        frame = result.predictions
        if column == "horizon_bucket":
            frame = frame.assign(
                horizon_bucket=pd.cut(
                    frame["horizon"], [0, 7, 14, 28], labels=["1-7", "8-14", "15-28"]
                ).astype(str)
            )
        table = BacktestResult(frame, result.cutoffs, methodology).coverage_by(column)
        out[column] = (
            table.rename(columns={column: "segment"}).astype({"segment": str}).to_dict("records")
        )
    return out


def evaluate_model(
    settings: Settings,
    facts_path: str | Path,
    out_dir: str | Path,
    plots_html_path: str | Path | None = None,
    selection_dir: str | Path | None = None,
) -> EvaluationResult:
    """Backtest by the methodology, check the gates and put the champion on the same window.

    With ``selection_dir`` (the select stage's result) the backtest is of the chosen recipe
    and its predictions carry the selection's calibrated quantiles (coverage is reported and
    gated); without one, of the configured model without intervals.

    Writes evaluation.json (the :class:`EvaluationResult`, with the expectations per
    segment and horizon bucket for the reference profile), predictions, per-horizon and
    per-segment tables and PNG plots into ``out_dir``.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methodology = load_methodology(settings.methodology_path)
    with timed("evaluate_model"):
        facts = pd.read_parquet(facts_path)
        model, params, intervals, chosen, candidates = None, None, None, "", []
        notes: list[str] = []
        if selection_dir is not None:
            selection = load_selection(selection_dir)
            model, params, intervals = "portfolio", selection.recipe, selection.intervals
            chosen = selection.chosen
            candidates = [c.model_dump(mode="json") for c in selection.candidates]
            notes = list(selection.notes)
            (out / "selection.md").write_text(selection.to_markdown())
        result = backtest_recipe(settings, facts, methodology, model, params, intervals)
        plots = _write_tables(result, methodology, out)
        cutoffs = cutoff_dates(result)
        evaluation = EvaluationResult(
            metrics=result.metrics_dict(),
            gates=evaluate_gates(result, methodology),
            cutoffs=cutoffs,
            data_digest=digest_facts(facts),
            champion=None,
            by_horizon=result.by_horizon().to_dict("records"),
            by_segment={c: _segment_records(result, c) for c in methodology.segments},
            chosen=chosen,
            recipe=dict(params or {}),
            candidates=candidates,
            selection_notes=notes,
            coverage=_coverage_records(result, methodology),
            expectations=expectations_from_backtest(
                result.predictions,
                load_monitoring_config(settings.monitoring_path),
                methodology.segments,
            ),
        )
    champion = champion_on_window(settings, facts, cutoffs, methodology)
    evaluation = evaluation.model_copy(update={"champion": champion})
    evaluation.save(out / EVALUATION_FILE)
    if plots_html_path:
        Path(plots_html_path).write_text(_plots_page(plots))
    h = evaluation.headline()
    log.info(
        "backtest WAPE %.4f (baseline %.4f, ratio %.3f), bias %+.2f%%, gates %s",
        h["wape"],
        h["wape_baseline"],
        h["wape_ratio"],
        100 * h["bias"],
        "passed" if evaluation.gates.passed else "FAILED: " + ", ".join(evaluation.failed_gates),
    )
    return evaluation


def version_summary(client: MlflowClient, model: str, version: str) -> dict[str, Any]:
    """What a version's backtest found, as JSON data: WAPE, baseline WAPE and ratio, bias,
    per-segment ratios, gate results, interval coverage per level and the chosen candidate
    with every candidate's validation figures (from the run's evaluation/evaluation.json)."""

    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    require_version(client, model, version)
    mv = client.get_model_version(model, version)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = download_artifacts(
                run_id=mv.run_id, artifact_path="evaluation/evaluation.json", dst_path=tmp
            )
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"{model} v{version} (run {mv.run_id}) has no evaluation/evaluation.json"
            ) from exc
        evaluation = EvaluationResult.load(path)
    metrics = evaluation.metrics
    registered = client.get_registered_model(model)
    aliases = sorted(a for a, v in (registered.aliases or {}).items() if str(v) == str(version))
    return {
        "model": model,
        "version": str(version),
        "aliases": aliases,
        "run_id": mv.run_id,
        "backtest": {
            "cutoffs": list(evaluation.cutoffs),
            "wape": metrics.get("wape"),
            "wape_baseline": metrics.get("wape_baseline"),
            "wape_ratio": metrics.get("wape_ratio"),
            "bias": metrics.get("bias"),
        },
        "segments": {
            column: {str(row["segment"]): row.get("wape_ratio") for row in rows}
            for column, rows in evaluation.by_segment.items()
        },
        "gates": evaluation.gates.to_dict(),
        "coverage": {k: metrics[k] for k in sorted(metrics) if k.startswith("coverage_")},
        "coverage_by": evaluation.coverage,
        "chosen": evaluation.chosen,
        "recipe": evaluation.recipe,
        "candidates": [
            {
                k: c[k]
                for k in (
                    "label",
                    "kind",
                    "wape",
                    "wape_ratio",
                    "bias",
                    "segments_over",
                    "segments",
                    "chosen",
                    "why",
                )
            }
            for c in evaluation.candidates
        ],
    }
