"""Select: backtest the candidate portfolio on inner folds and pick the recipe to train.

The train stage fits the chosen recipe on every example; the evaluate stage backtests it on
the methodology's reported folds, which come after the inner ones, and applies the interval
calibration found here (freightml.evaluation.selection)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from freightml.config import Settings
from freightml.evaluation import load_methodology
from freightml.evaluation.selection import Selection, select_candidate
from freightml.stages.features import planned_feature_kwargs
from freightml.stages.result import StageResult
from freightml.timing import timed

SELECTION_FILE = "selection.json"


class SelectInfo(StageResult):
    chosen: str
    candidates: int
    inner_cutoffs: list[str]
    seconds: float


def load_selection(selection_dir: str | Path) -> Selection:
    """The select stage's result in ``selection_dir`` (a clear error when it is missing)."""
    path = Path(selection_dir) / SELECTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (did the select stage run?)")
    return Selection.model_validate_json(path.read_text())


def select_model(settings: Settings, facts_path: str | Path, out_dir: str | Path) -> SelectInfo:
    """Score the portfolio of ``settings.selection`` on the inner folds of the facts and
    write selection.json (the chosen recipe, every candidate's figures, the intervals) and
    selection.md (the candidates' table) into ``out_dir``."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methodology = load_methodology(settings.methodology_path)
    with timed("select_model"):
        facts = pd.read_parquet(facts_path)
        selection = select_candidate(
            facts,
            methodology,
            model_name=settings.model.name,
            model_params=settings.model.params,
            selection=settings.selection,
            feature_kwargs=planned_feature_kwargs(settings, facts),
        )
    (out / SELECTION_FILE).write_text(selection.model_dump_json(indent=2))
    (out / "selection.md").write_text(selection.to_markdown())
    return SelectInfo(
        chosen=selection.chosen,
        candidates=len(selection.candidates),
        inner_cutoffs=selection.inner_cutoffs,
        seconds=selection.seconds,
    )
