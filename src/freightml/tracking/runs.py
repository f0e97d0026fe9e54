"""What a training run records in MLflow and how it is read back.

The register stage logs a run's parameters with these names; :func:`champion_recipe`
reads them back to re-backtest the champion, and the experiment manager tags its runs
the same way, so the names live here once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset

from freightml.config import Settings
from freightml.tracking.registry import champion_version
from freightml.tracking.session import configure_mlflow

if TYPE_CHECKING:
    from mlflow.data.meta_dataset import MetaDataset

DATASET_NAME = "freight-facts"
# run parameters the champion's recipe is read from
PARAM_MODEL = "model"
PARAM_MODEL_PARAMS = "model_params"
PARAM_CUTOFFS = "backtest_cutoffs"
PARAM_DATA_DIGEST = "data_digest"


@dataclass(frozen=True)
class ChampionRecipe:
    """The current champion's model, parameters, backtest window and recorded metrics."""

    version: str
    run_id: str
    model: str
    params: dict[str, Any]
    cutoffs: tuple[str, ...]
    data_digest: str
    metrics: dict[str, float] = field(default_factory=dict)


def champion_recipe(settings: Settings) -> ChampionRecipe | None:
    """The champion of ``settings.tracking.registered_model``, or None when there is none."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None  # a local store that does not exist yet holds no champion

    client = configure_mlflow(settings)
    name = settings.tracking.registered_model
    version = champion_version(client, name)
    if version is None:
        return None
    mv = client.get_model_version(name, version)
    if not mv.run_id:
        raise ValueError(f"champion {name} v{version} has no run: register models from runs")
    run = client.get_run(mv.run_id)
    params = run.data.params
    if PARAM_MODEL not in params:
        raise ValueError(
            f"champion {name} v{version} (run {mv.run_id}) has no {PARAM_MODEL!r} parameter: "
            "it was not logged by the training pipeline or the experiment manager"
        )
    cutoffs = params.get(PARAM_CUTOFFS, "")
    return ChampionRecipe(
        version=version,
        run_id=mv.run_id,
        model=params[PARAM_MODEL],
        params=json.loads(params.get(PARAM_MODEL_PARAMS, "{}")),
        cutoffs=tuple(cutoffs.split(",")) if cutoffs else (),
        data_digest=params.get(PARAM_DATA_DIGEST, ""),
        metrics=dict(run.data.metrics),
    )


def dataset_input(source_uri: str, digest: str) -> MetaDataset:
    """The facts as an MLflow dataset input: their source and content digest."""

    try:
        source = resolve_dataset_source(source_uri)
    except Exception:
        source = HTTPDatasetSource(url=source_uri)
    # MetaDataset is MLflow's dataset for data that is not logged itself; its stubs mark
    # ``profile`` abstract, but the class implements it
    return MetaDataset(source=source, name=DATASET_NAME, digest=digest[:32])  # type: ignore[abstract]


def tag_environment(env: dict[str, str]) -> None:
    """Tag the active run with the environment (``freightml.<key>``) and its git commit."""
    mlflow.set_tags({f"freightml.{k}": v for k, v in env.items()})
    if env.get("git_commit", "unknown") != "unknown":
        mlflow.set_tag("mlflow.source.git.commit", env["git_commit"])
