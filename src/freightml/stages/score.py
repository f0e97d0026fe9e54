"""Score: forecast every active series with the champion and store the forecasts."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from freightml.compute import batch_forecasts
from freightml.config import Settings
from freightml.data.sources import digest_facts
from freightml.domain import ACTIVE_DAYS, SERIES_KEY
from freightml.features.levels import adjustments_of
from freightml.features.window import HistoryWindow, WindowCalendar, WindowRules
from freightml.stages.ingest import FactsInfo
from freightml.stages.result import StageResult
from freightml.store import Store
from freightml.timing import timed

if TYPE_CHECKING:
    from freightml.features.window import HistoryWindow

log = logging.getLogger("freightml")


class ScoreInfo(StageResult):
    run_id: str
    model_version: str
    rows: int
    new_rows: int
    series: int
    origin: str


def active_facts(facts: pd.DataFrame, days: int = ACTIVE_DAYS) -> pd.DataFrame:
    """Facts of the series that carried anything in the last ``days`` days."""
    key = list(SERIES_KEY)
    recent = facts.loc[facts["date"] > facts["date"].max() - pd.Timedelta(days=days)]
    active = recent.loc[recent["volume_tonnes"] > 0, key].drop_duplicates()
    return facts.merge(active, on=key, how="inner")


def scoring_window(
    settings: Settings,
    facts: pd.DataFrame,
    model: Any,
    calendar: WindowCalendar | None = None,
) -> HistoryWindow:
    """The feature rows batch scoring forecasts from: the facts as ``model`` reads them
    (its level adjustments, the statistical forecasts it blends) with the training's holiday
    calendar, as the predictor does; ``calendar``: a shard's part of the network's window."""
    from freightml.models.statistical import StatisticalColumns  # noqa: PLC0415

    return HistoryWindow.build(
        facts,
        horizon_max=settings.features.horizon_max,
        holiday_country=settings.features.holiday_country,
        known_cargo_types=settings.data.known_cargo_types,
        rules=WindowRules(settings.serving.origin_quorum, settings.serving.min_history_days),
        level_adjustments=adjustments_of(model),
        origin_columns=StatisticalColumns.of(model),
        calendar=calendar,
    )


def _window_of(
    settings: Settings, model: Any, facts: pd.DataFrame, calendar: WindowCalendar | None
) -> HistoryWindow:
    return scoring_window(settings, facts, model, calendar)


def score_batch(
    settings: Settings,
    facts_path: str | Path,
    out_path: str | Path,
    facts_info: FactsInfo | dict[str, Any] | None = None,
) -> ScoreInfo:
    """Forecast every active series 1..horizon_max days after the last fact with the
    champion (with its 80% interval when it has one); write the forecasts as Parquet and
    into the collector's store with lineage."""
    import mlflow.sklearn

    from freightml.tracking import champion_version, configure_mlflow  # noqa: PLC0415

    client = configure_mlflow(settings)
    name = settings.tracking.registered_model
    version = champion_version(client, name)
    if version is None:
        raise RuntimeError(
            f"no champion of {name!r} to score with: run the training pipeline first"
        )
    with timed("score_batch"):
        facts = active_facts(pd.read_parquet(facts_path))
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
        scored = batch_forecasts(
            facts,
            model,
            settings.compute,
            functools.partial(_window_of, settings, model),
            WindowRules(settings.serving.origin_quorum, settings.serving.min_history_days),
        )
        forecasts = scored.forecasts
        forecasts.to_parquet(out_path, index=False)
    digest = FactsInfo.model_validate(facts_info).digest if facts_info else digest_facts(facts)
    run_id = f"batch-{scored.origin_date}-v{version}-{digest[:12]}"
    with timed("score_batch.store", kind="tracking"):
        store = Store(settings.collector_store_url).create_all()
        written = store.forecasts.write(
            forecasts,
            run_id=run_id,
            model_name=name,
            model_version=version,
            lineage=json.dumps({"data_digest": digest, "model_uri": f"models:/{name}/{version}"}),
            source="batch",
        )
    log.info(
        "scored %s series x %s days with %s v%s: %s new forecasts (run %s)",
        scored.n_series,
        settings.features.horizon_max,
        name,
        version,
        written,
        run_id,
    )
    return ScoreInfo(
        run_id=run_id,
        model_version=version,
        rows=len(forecasts),
        new_rows=int(written),
        series=int(scored.n_series),
        origin=str(scored.origin_date),
    )
