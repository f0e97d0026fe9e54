"""Score: forecast every active series with the champion and store the forecasts."""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from freightml.compute import BatchForecasts, batch_forecasts
from freightml.compute.layout import filesystem_of
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


def champion_model(settings: Settings) -> tuple[str, str, Any]:
    """The registered model's name, its champion version and the model itself."""
    import mlflow.sklearn

    from freightml.tracking import champion_version, configure_mlflow  # noqa: PLC0415

    client = configure_mlflow(settings)
    name = settings.tracking.registered_model
    version = champion_version(client, name)
    if version is None:
        raise RuntimeError(
            f"no champion of {name!r} to score with: run the training pipeline first"
        )
    return name, version, mlflow.sklearn.load_model(f"models:/{name}/{version}")


def forecast_facts(
    settings: Settings, facts: pd.DataFrame, model: Any, *, staging_dir: str | None = None
) -> BatchForecasts:
    """The forecasts of every series of ``facts`` (the active ones) on the configured
    engine, from the window the predictor would build."""
    return batch_forecasts(
        facts,
        model,
        settings.compute,
        functools.partial(_window_of, settings, model),
        WindowRules(settings.serving.origin_quorum, settings.serving.min_history_days),
        staging_dir=staging_dir,
    )


def store_forecasts(
    settings: Settings, scored: BatchForecasts, name: str, version: str, digest: str
) -> ScoreInfo:
    """Write the forecasts into the collector's store with their lineage."""
    forecasts = scored.forecasts
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


def score_batch(
    settings: Settings,
    facts_path: str | Path,
    out_path: str | Path,
    facts_info: FactsInfo | dict[str, Any] | None = None,
) -> ScoreInfo:
    """Forecast every active series 1..horizon_max days after the last fact with the
    champion (with its 80% interval when it has one); write the forecasts as Parquet and
    into the collector's store with lineage."""
    name, version, model = champion_model(settings)
    with timed("score_batch"):
        facts = active_facts(pd.read_parquet(facts_path))
        scored = forecast_facts(settings, facts, model)
        scored.forecasts.to_parquet(out_path, index=False)
    digest = FactsInfo.model_validate(facts_info).digest if facts_info else digest_facts(facts)
    return store_forecasts(settings, scored, name, version, digest)


# -- on a cluster: the forecasts of a SparkApplication --------------------------------------
def _write_bytes(uri: str, data: bytes) -> None:
    filesystem, path = filesystem_of(uri)
    with filesystem.open_output_stream(path) as stream:
        stream.write(data)


def _read_bytes(uri: str) -> bytes:
    filesystem, path = filesystem_of(uri)
    with filesystem.open_input_stream(path) as stream:
        return bytes(stream.read())


def save_model(model: Any, uri: str) -> None:
    """``model`` as skops bytes at ``uri`` (a path or an object store URI)."""
    import skops.io  # noqa: PLC0415

    _write_bytes(uri, skops.io.dumps(model))


def load_model(uri: str) -> Any:
    """A model :func:`save_model` wrote (only FreightML's trusted types are loaded)."""
    import skops.io  # noqa: PLC0415

    from freightml.models import SKOPS_TRUSTED_TYPES  # noqa: PLC0415

    return skops.io.loads(_read_bytes(uri), trusted=SKOPS_TRUSTED_TYPES)


def score_on_spark(
    settings: Settings, facts_uri: str, model_uri: str, out_uri: str, staging_uri: str
) -> BatchForecasts:
    """The scoring job of a SparkApplication (:mod:`freightml.stages.spark_job`): the
    forecasts of the active series of ``facts_uri`` by the model at ``model_uri``, written
    as one Parquet file at ``out_uri`` and their origin, series count and data digest as
    JSON at ``<out_uri>.info.json``."""
    filesystem, path = filesystem_of(facts_uri)
    facts = active_facts(pq.read_table(path, filesystem=filesystem).to_pandas())
    scored = forecast_facts(settings, facts, load_model(model_uri), staging_dir=staging_uri)
    out_fs, out_path = filesystem_of(out_uri)
    pq.write_table(
        pa.Table.from_pandas(scored.forecasts, preserve_index=False), out_path, filesystem=out_fs
    )
    info = {
        "origin_date": scored.origin_date,
        "n_series": scored.n_series,
        "digest": digest_facts(facts),
    }
    _write_bytes(f"{out_uri}.info.json", json.dumps(info).encode())
    return scored


def forecasts_on_operator(
    settings: Settings,
    facts_uri: str,
    model: Any,
    out_uri: str,
    *,
    api: Any,
    poll_seconds: float = 5.0,
) -> tuple[BatchForecasts, str]:
    """``model``'s forecasts of ``facts_uri`` made by a SparkApplication
    (``compute.submit: operator``): the model goes to ``<out_uri>.model.skops``, the
    application writes the forecasts at ``out_uri``; returns them and the facts' digest."""
    from freightml.compute.application import submit_step  # noqa: PLC0415
    from freightml.image import IMAGE  # noqa: PLC0415

    model_uri = f"{out_uri}.model.skops"
    save_model(model, model_uri)
    submit_step(
        "scoring",
        settings.model_dump_json(),
        {"facts": facts_uri, "model": model_uri, "out": out_uri},
        settings.compute,
        api=api,
        image=IMAGE,
        object_store_endpoint=os.environ.get("AWS_ENDPOINT_URL"),
        poll_seconds=poll_seconds,
    )
    out_fs, out_path = filesystem_of(out_uri)
    forecasts = pq.read_table(out_path, filesystem=out_fs).to_pandas()
    info = json.loads(_read_bytes(f"{out_uri}.info.json"))
    scored = BatchForecasts(forecasts, str(info["origin_date"]), int(info["n_series"]))
    return scored, str(info["digest"])


def score_batch_on_operator(
    settings: Settings,
    facts_uri: str,
    out_uri: str,
    out_path: str | Path,
    facts_info: FactsInfo | dict[str, Any] | None = None,
    *,
    api: Any = None,
) -> ScoreInfo:
    """:func:`score_batch` with the forecasts made by a SparkApplication of the Kubeflow
    Spark Operator; this task resolves the champion, passes it on, then writes the
    forecasts (one row per series and horizon) to ``out_path`` and the store."""
    if api is None:
        from kubernetes import client, config  # noqa: PLC0415

        config.load_incluster_config()
        api = client.CustomObjectsApi()
    name, version, model = champion_model(settings)
    with timed("score_batch"):
        scored, digest = forecasts_on_operator(settings, facts_uri, model, out_uri, api=api)
        scored.forecasts.to_parquet(out_path, index=False)
    if facts_info:
        digest = FactsInfo.model_validate(facts_info).digest
    return store_forecasts(settings, scored, name, version, digest)
