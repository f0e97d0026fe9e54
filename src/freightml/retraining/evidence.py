"""The evidence a retraining decision is judged on, gathered from the stores (I/O).

:func:`gather_evidence` reads what the decision needs (the latest monitoring snapshot, the
champion and its training window from the registry, facts after that window, past
decisions); :func:`decide_now` closes the decisions whose run registered a version elsewhere
(:func:`reconcile_in_flight`), gathers the evidence and applies the rules
(freightml.retraining.rules.decide).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from freightml.domain import SERIES_KEY
from freightml.monitoring.snapshots import SnapshotStore
from freightml.retraining.decisions import DecisionStore
from freightml.retraining.policy import Policy
from freightml.retraining.rules import decide
from freightml.retraining.types import (
    TAG_PREFIX,
    ChampionInfo,
    Decision,
    Evidence,
    FactCount,
    NewEntities,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from freightml.config import Settings
    from freightml.store import Store

MAX_NAMED = 20  # new stations named in the evidence


def champion_info(client: MlflowClient, model_name: str) -> ChampionInfo | None:
    """The champion of ``model_name`` with the training window its run recorded, or None
    when there is no champion. A champion whose run has no ``data_end`` parameter was not
    logged by the training pipeline: an error naming it."""
    from freightml.tracking.registry import champion_version  # noqa: PLC0415

    version = champion_version(client, model_name)
    if version is None:
        return None
    mv = client.get_model_version(model_name, version)
    params = client.get_run(mv.run_id).data.params if mv.run_id else {}
    if "data_end" not in params:
        raise ValueError(
            f"champion {model_name} v{version} (run {mv.run_id or 'none'}) has no data_end "
            "parameter: its training window is unknown (was it registered by the training "
            "pipeline?)"
        )
    start = params.get("data_start")
    return ChampionInfo(
        version=version,
        run_id=mv.run_id,
        window_start=date.fromisoformat(start) if start else None,
        window_end=date.fromisoformat(params["data_end"]),
        registered_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
    )


def new_entities(
    store: Store, champion: ChampionInfo, as_of: date, look_back_days: int
) -> NewEntities | None:
    """Shares of the tonnes of the last ``look_back_days`` after the champion's window
    (up to ``as_of``) carried by regions, stations and series that its window never had;
    None when there are no such facts."""
    start = max(champion.window_end + timedelta(days=1), as_of - timedelta(days=look_back_days - 1))
    if start > as_of:
        return None
    recent = store.facts.volume_by_series(start, as_of)
    total = float(recent["tonnes"].sum())
    if recent.empty or total <= 0:
        return None
    trained = store.facts.volume_by_series(champion.window_start or date.min, champion.window_end)
    regions = set(trained["origin_region"]) | set(trained["destination_region"])
    stations = set(trained["origin_station"]) | set(trained["destination_station"])
    series = set(trained[list(SERIES_KEY)].itertuples(index=False, name=None))

    def share(mask: pd.Series) -> float:
        return float(recent.loc[mask, "tonnes"].sum()) / total

    new_region = ~recent["origin_region"].isin(regions) | ~recent["destination_region"].isin(
        regions
    )
    new_station = ~recent["origin_station"].isin(stations) | ~recent["destination_station"].isin(
        stations
    )
    new_series = ~pd.Series(
        [key in series for key in recent[list(SERIES_KEY)].itertuples(index=False, name=None)],
        index=recent.index,
    )
    found_regions = sorted(
        (set(recent["origin_region"]) | set(recent["destination_region"])) - regions
    )
    station_tonnes: dict[str, float] = {}
    for column in ("origin_station", "destination_station"):
        part = recent[~recent[column].isin(stations)]
        for name, tonnes in part.groupby(column)["tonnes"].sum().items():
            station_tonnes[str(name)] = station_tonnes.get(str(name), 0.0) + float(tonnes)
    ranked = sorted(station_tonnes, key=lambda s: (-station_tonnes[s], s))
    return NewEntities(
        start=start,
        end=as_of,
        tonnes=total,
        region_share=share(new_region),
        station_share=share(new_station),
        series_share=share(new_series),
        new_regions=[str(r) for r in found_regions],
        new_stations=ranked[:MAX_NAMED],
        new_series=int(new_series.sum()),
    )


def gather_evidence(
    settings: Settings,
    store: Store,
    policy: Policy,
    *,
    as_of: date,
    client: MlflowClient | None = None,
) -> Evidence:
    """Read what :func:`decide` judges: the newest snapshot as of ``as_of``, the champion
    and its window, facts after that window and the recorded decisions of the model."""
    model = settings.tracking.registered_model
    champion = None
    if _tracking_exists(settings):  # a local tracking store that does not exist holds none
        from freightml.tracking import configure_mlflow  # noqa: PLC0415

        champion = champion_info(client or configure_mlflow(settings), model)
    new_facts = entities = None
    if champion is not None:
        counted = store.facts.days_between(champion.window_end + timedelta(days=1), as_of)
        new_facts = FactCount(
            rows=counted.rows, days=counted.days, first=counted.first, last=counted.last
        )
        entities = new_entities(store, champion, as_of, policy.triggers.new_entities.look_back_days)
    return Evidence(
        model_name=model,
        as_of=as_of,
        snapshot=SnapshotStore(store).latest(model, until=as_of),
        champion=champion,
        new_facts=new_facts,
        new_entities=entities,
        history=DecisionStore(store).history(model),
    )


def _tracking_exists(settings: Settings) -> bool:
    uri = settings.tracking_uri
    return not (uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists())


def reconcile_in_flight(
    settings: Settings, store: Store, *, client: MlflowClient | None = None
) -> list[tuple[str, str]]:
    """Mark ``finished`` every ``started`` decision of the model whose training run has
    registered a version: a version tagged ``retrain.decision_id`` with the decision's id.
    A run submitted to Kubeflow Pipelines (``retrain run --host``) goes on elsewhere and
    cannot record its outcome in the store; without this its decision would hold its key
    and the in-flight slot until ``guards.in_flight_expiry_hours``. Returns the (decision
    id, version) pairs it closed."""
    model = settings.tracking.registered_model
    started = [d for d in DecisionStore(store).history(model) if d.status == "started"]
    if not started or not _tracking_exists(settings):
        return []
    if client is None:
        from freightml.tracking import configure_mlflow  # noqa: PLC0415

        client = configure_mlflow(settings)
    closed = []
    for past in started:
        found = client.search_model_versions(
            f"name='{model}' and tags.`{TAG_PREFIX}decision_id` = '{past.id}'"
        )
        if not found:
            continue
        version = str(max(int(v.version) for v in found))
        DecisionStore(store).mark(
            past.id,
            "finished",
            model_version=version,
            message=f"version {version} registered (found in the registry by the decision's id)",
        )
        closed.append((past.id, version))
    return closed


def decide_now(
    settings: Settings,
    store: Store,
    policy: Policy,
    *,
    as_of: date,
    force: bool = False,
    reason: str | None = None,
    client: MlflowClient | None = None,
) -> Decision:
    """:func:`reconcile_in_flight`, :func:`gather_evidence`, then :func:`decide` (the
    decision itself is not recorded); both read the registry through one client."""
    if client is None and _tracking_exists(settings):
        from freightml.tracking import configure_mlflow  # noqa: PLC0415

        client = configure_mlflow(settings)
    reconcile_in_flight(settings, store, client=client)
    evidence = gather_evidence(settings, store, policy, as_of=as_of, client=client)
    return decide(policy, evidence, force=force, reason=reason)
