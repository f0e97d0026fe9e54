"""Compile pipelines, run them on the embedded default, or submit them to a KFP backend."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kfp import compiler, local

from freightml.config import Settings
from pipelines.batch_scoring import build_batch_scoring_pipeline
from pipelines.monitoring import build_monitoring_pipeline
from pipelines.training import build_training_pipeline

KFP_EXPERIMENT = "freightml"

BUILDERS: dict[str, Callable[[Settings], Callable]] = {
    "training": build_training_pipeline,
    "batch_scoring": build_batch_scoring_pipeline,
    "monitoring": build_monitoring_pipeline,
}


def pipeline_names() -> list[str]:
    return sorted(BUILDERS)


def _builder(name: str) -> Callable[[Settings], Callable]:
    try:
        return BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown pipeline {name!r}; known: {', '.join(pipeline_names())}"
        ) from None


def compile_pipelines(settings: Settings, out_dir: Path | None = None) -> list[Path]:
    """Write each pipeline's KFP IR YAML into ``out_dir`` (default build/pipelines)."""
    out = Path(out_dir or settings.pipeline.compile_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in pipeline_names():
        path = out / f"{name}.yaml"
        compiler.Compiler().compile(
            _builder(name)(settings),
            package_path=str(path),
            pipeline_parameters={"config": settings.to_json()},
        )
        written.append(path)
    return written


@dataclass
class LocalRun:
    """What a local run produced."""

    name: str
    seconds: float
    outputs: dict[str, Any]
    pipeline_root: Path
    task_dirs: dict[str, Path] = field(default_factory=dict)


def local_settings(settings: Settings) -> Settings:
    """Settings for the embedded default: absolute local paths, no retry back-off."""
    home = settings.home.resolve()
    pipeline = settings.pipeline.model_copy(update={"retries": 0})
    return settings.model_copy(
        update={
            "home": home,
            "methodology_path": settings.methodology_path.resolve(),
            "monitoring_path": settings.monitoring_path.resolve(),
            "retraining_path": settings.retraining_path.resolve(),
            "pipeline": pipeline,
        }
    )


def run_local(settings: Settings, name: str = "training", **arguments: Any) -> LocalRun:
    """Run a pipeline with kfp.local's SubprocessRunner in this Python environment;
    ``arguments`` are the pipeline's parameters besides ``config``."""
    settings = local_settings(settings)
    root = Path(settings.local_pipeline_root)
    root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=True,
        enable_caching=settings.pipeline.enable_caching,
    )
    pipeline = _builder(name)(settings)
    started = time.perf_counter()
    before = {p for p in root.iterdir() if p.is_dir()}
    with warnings.catch_warnings():
        # resource limits are cluster settings; the local runner says it ignores them
        warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
        # the cluster image is configured, but locally the tasks run in this very venv
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        task = pipeline(config=settings.to_json(), **arguments)
    seconds = time.perf_counter() - started
    new_dirs = sorted(
        {p for p in root.iterdir() if p.is_dir()} - before, key=lambda p: p.stat().st_mtime
    )
    run_dir = new_dirs[-1] if new_dirs else root
    outputs = dict(getattr(task, "outputs", {}) or {})
    return LocalRun(
        name=name,
        seconds=seconds,
        outputs=outputs,
        pipeline_root=run_dir,
        task_dirs={p.name: p for p in run_dir.iterdir() if p.is_dir()},
    )


class PipelineBackend(Protocol):
    """The part of a KFP backend FreightML uses: submit a compiled pipeline."""

    def submit(self, package: Path, run_name: str, arguments: dict[str, Any]) -> str: ...


class KfpClientBackend:
    """A Kubeflow Pipelines API server reached with kfp.Client."""

    def __init__(self, host: str, namespace: str | None = None) -> None:
        import kfp

        self._client = kfp.Client(host=host, namespace=namespace)

    def submit(self, package: Path, run_name: str, arguments: dict[str, Any]) -> str:
        result = self._client.create_run_from_pipeline_package(
            str(package), arguments=arguments, run_name=run_name, experiment_name=KFP_EXPERIMENT
        )
        return str(result.run_id)


def submit(
    settings: Settings,
    backend: PipelineBackend,
    name: str = "training",
    out_dir: Path | None = None,
    arguments: dict[str, Any] | None = None,
) -> str:
    """Compile ``name`` and submit it to ``backend`` with ``config`` and ``arguments`` (the
    pipeline's other parameters); returns the run id.

    On a cluster the tasks read MLflow's address and credentials from the Kubernetes Secret
    ``pipeline.mlflow_secret``; the config parameter carries no secret.
    """
    _builder(name)  # an unknown name fails before anything is compiled
    paths = {p.stem: p for p in compile_pipelines(settings, out_dir)}
    run_name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return backend.submit(
        paths[name], run_name, {"config": settings.to_json(), **(arguments or {})}
    )


def training_launcher(
    host: str | None, decision_id: str, say: Callable[[str], None] | None = None
) -> Callable[[Settings], Any]:
    """The ``launch`` of :func:`freightml.retraining.act.act`: the training pipeline on
    kfp.local (the version it registered for ``decision_id`` comes back), or a KFP run at
    ``host`` (only the run id comes back; the run goes on on the cluster)."""
    from freightml.retraining.act import Launched
    from freightml.tracking import configure_mlflow

    def launch(settings: Settings) -> Launched:
        window = settings.tracking.run_tags.get("retrain.window.reason")
        if window and say is not None:
            say(f"training window: {window}")
        if host:
            run_id = submit(settings, KfpClientBackend(host), "training")
            return Launched(run_id, None, f"submitted to {host}")
        run_local(settings, "training")
        model = settings.tracking.registered_model
        client = configure_mlflow(settings)
        for mv in client.search_model_versions(f"name='{model}'"):
            if mv.tags.get("retrain.decision_id") == decision_id:
                return Launched(mv.run_id, str(mv.version), mv.tags.get("freightml.decision"))
        raise RuntimeError(
            f"the training run of decision {decision_id} registered no version of {model}"
        )

    return launch
