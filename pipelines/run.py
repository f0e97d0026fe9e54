"""Compile pipelines, run them on the embedded default, or submit them to a KFP backend."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import kfp
import yaml
from kfp import compiler, local

from freightml.config import Settings
from freightml.retraining.act import Launched
from freightml.retraining.policy import validate_cron
from freightml.retraining.schedule import (
    DEFAULT_CRON,
    RecurringRun,
    RecurringRunSpec,
    RunInfo,
    ScheduleBackend,
    ScheduleOutcome,
    reconcile,
)
from freightml.tracking import configure_mlflow
from pipelines.batch_scoring import build_batch_scoring_pipeline
from pipelines.monitoring import build_monitoring_pipeline
from pipelines.retraining import build_retraining_pipeline
from pipelines.training import build_training_pipeline

KFP_EXPERIMENT = "freightml"

BUILDERS: dict[str, Callable[[Settings], Callable]] = {
    "training": build_training_pipeline,
    "batch_scoring": build_batch_scoring_pipeline,
    "monitoring": build_monitoring_pipeline,
    "retraining": build_retraining_pipeline,
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
    """The part of a KFP backend FreightML uses to start a run: submit a compiled pipeline,
    and see which runs are still going (for the "at most one run in flight" guard)."""

    def submit(self, package: Path, run_name: str, arguments: dict[str, Any]) -> str: ...

    def runs_in_flight(self, pipeline_name: str | None = None) -> list[RunInfo]: ...


class SchedulingBackend(PipelineBackend, ScheduleBackend, Protocol):
    """A backend that also keeps pipelines (versions) and recurring runs."""

    def upload(self, package: Path, pipeline_name: str, version_name: str) -> tuple[str, str]: ...


def _filter_equals(key: str, value: str) -> str:
    # kfp.Client's own filters send the operation as its enum number (1 = EQUALS)
    return json.dumps({"predicates": [{"operation": 1, "key": key, "stringValue": value}]})


class KfpClientBackend:
    """A Kubeflow Pipelines API server reached with kfp.Client (REST API v2beta1).

    Everything FreightML creates lives in one experiment (``experiment``, default
    ``freightml``): runs, recurring runs, and the in-flight guard looks there.
    """

    page_size = 100

    def __init__(
        self, host: str, namespace: str | None = None, experiment: str = KFP_EXPERIMENT
    ) -> None:
        self._client = kfp.Client(host=host, namespace=namespace)
        self._experiment = experiment
        self._experiment_id: str | None = None
        self._pipeline_names: dict[str, str] = {}

    @property
    def experiment_id(self) -> str:
        """The experiment's id; created on first use (kfp.Client's get-or-create)."""
        if self._experiment_id is None:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints a UI link
                experiment = self._client.create_experiment(name=self._experiment)
            self._experiment_id = str(experiment.experiment_id)
        return self._experiment_id

    def submit(self, package: Path, run_name: str, arguments: dict[str, Any]) -> str:
        with contextlib.redirect_stdout(io.StringIO()):
            result = self._client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments,
                run_name=run_name,
                experiment_id=self.experiment_id,
            )
        return str(result.run_id)

    def _pages(self, list_call: Callable[..., Any], key: str, **kwargs: Any) -> list[Any]:
        items: list[Any] = []
        token = ""
        while True:
            page = list_call(page_token=token, page_size=self.page_size, **kwargs)
            items += getattr(page, key) or []
            token = page.next_page_token or ""
            if not token:
                return items

    # -- pipelines and versions ----------------------------------------------------------
    def upload(self, package: Path, pipeline_name: str, version_name: str) -> tuple[str, str]:
        """Upload ``package`` as version ``version_name`` of pipeline ``pipeline_name``
        (creating the pipeline on first use) unless that version exists; returns the
        pipeline and version ids."""
        with contextlib.redirect_stdout(io.StringIO()):
            pipeline_id = self._client.get_pipeline_id(pipeline_name)
            if pipeline_id is None:
                pipeline_id = self._client.upload_pipeline(
                    str(package), pipeline_name, description=f"FreightML {pipeline_name}"
                ).pipeline_id
            versions = self._pages(
                self._client.list_pipeline_versions, "pipeline_versions", pipeline_id=pipeline_id
            )
            for version in versions:
                if version_name in (version.display_name, getattr(version, "name", None)):
                    return str(pipeline_id), str(version.pipeline_version_id)
            created = self._client.upload_pipeline_version(
                str(package), version_name, pipeline_id=pipeline_id
            )
        return str(pipeline_id), str(created.pipeline_version_id)

    def _pipeline_name(self, pipeline_id: str) -> str:
        if pipeline_id not in self._pipeline_names:
            pipeline = self._client.get_pipeline(pipeline_id)
            self._pipeline_names[pipeline_id] = str(pipeline.display_name)
        return self._pipeline_names[pipeline_id]

    # -- runs ----------------------------------------------------------------------------
    def runs_in_flight(self, pipeline_name: str | None = None) -> list[RunInfo]:
        """Runs of the experiment not finished yet, of ``pipeline_name`` (its
        ``pipelineInfo.name``) or of any pipeline; newest first."""
        runs = self._pages(
            self._client.list_runs,
            "runs",
            experiment_id=self.experiment_id,
            sort_by="created_at desc",
        )
        found = []
        for run in runs:
            name = None
            if run.pipeline_spec:  # {"pipeline_spec": ..., "platform_spec": ...} as sent
                spec = run.pipeline_spec.get("pipeline_spec", run.pipeline_spec)
                name = (spec.get("pipelineInfo") or {}).get("name")
            elif run.pipeline_version_reference and run.pipeline_version_reference.pipeline_id:
                name = self._pipeline_name(run.pipeline_version_reference.pipeline_id)
            info = RunInfo(
                id=str(run.run_id),
                name=str(run.display_name),
                state=str(run.state or "RUNTIME_STATE_UNSPECIFIED"),
                pipeline_name=name,
                created_at=run.created_at.isoformat() if run.created_at else None,
            )
            if info.in_flight and (pipeline_name is None or name == pipeline_name):
                found.append(info)
        return found

    # -- recurring runs ------------------------------------------------------------------
    def find_recurring_runs(self, name: str) -> list[RecurringRun]:
        items = self._pages(
            self._client.list_recurring_runs,
            "recurring_runs",
            experiment_id=self.experiment_id,
            filter=_filter_equals("display_name", name),
        )
        found = []
        for item in items:
            if item.display_name != name:  # the filter is the server's; check it here too
                continue
            cron = item.trigger.cron_schedule if item.trigger else None
            reference = item.pipeline_version_reference
            found.append(
                RecurringRun(
                    id=str(item.recurring_run_id),
                    name=str(item.display_name),
                    cron=cron.cron if cron else None,
                    pipeline_version_id=reference.pipeline_version_id if reference else None,
                    parameters=dict((item.runtime_config and item.runtime_config.parameters) or {}),
                    max_concurrency=int(item.max_concurrency or 0),
                    no_catchup=bool(item.no_catchup),
                    enabled=item.status == "ENABLED"
                    or (item.status in (None, "STATUS_UNSPECIFIED") and item.mode == "ENABLE"),
                )
            )
        return found

    def create_recurring_run(self, spec: RecurringRunSpec, *, enabled: bool) -> str:
        created = self._client.create_recurring_run(
            experiment_id=self.experiment_id,
            job_name=spec.name,
            description=spec.description or None,
            cron_expression=spec.cron,
            max_concurrency=spec.max_concurrency,
            no_catchup=spec.no_catchup,
            params=spec.parameters,
            pipeline_id=spec.pipeline_id,
            version_id=spec.version_id,
            enabled=enabled,
        )
        return str(created.recurring_run_id)

    def set_recurring_run_enabled(self, recurring_run_id: str, enabled: bool) -> None:
        if enabled:
            self._client.enable_recurring_run(recurring_run_id)
        else:
            self._client.disable_recurring_run(recurring_run_id)

    def delete_recurring_run(self, recurring_run_id: str) -> None:
        self._client.delete_recurring_run(recurring_run_id)


class RunInFlightError(RuntimeError):
    """A run of the same pipeline is still going; starting another would break the
    "at most one run in flight" guard."""

    def __init__(self, name: str, runs: list[RunInfo]) -> None:
        self.runs = runs
        listed = ", ".join(f"{r.name} ({r.id}, {r.state})" for r in runs)
        super().__init__(
            f"{len(runs)} run(s) of pipeline {name} still in flight: {listed}; "
            "wait for it to finish or terminate it"
        )


def _pipeline_info(package: Path) -> tuple[str, set[str]]:
    """The compiled pipeline's name and its parameter names."""
    spec = next(iter(yaml.safe_load_all(package.read_text())))
    parameters = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return str(spec["pipelineInfo"]["name"]), set(parameters)


def submit(
    settings: Settings,
    backend: PipelineBackend,
    name: str = "training",
    out_dir: Path | None = None,
    arguments: dict[str, Any] | None = None,
    *,
    exclusive: bool = False,
) -> str:
    """Compile ``name`` and submit it to ``backend`` with ``config`` and ``arguments`` (the
    pipeline's other parameters); returns the run id. ``exclusive`` refuses
    (:class:`RunInFlightError`) while a run of the same pipeline is in flight.

    On a cluster the tasks read MLflow's address and credentials from the Kubernetes Secret
    ``pipeline.mlflow_secret``; the config parameter carries no secret.
    """
    _builder(name)  # an unknown name fails before anything is compiled
    paths = {p.stem: p for p in compile_pipelines(settings, out_dir)}
    if exclusive:
        pipeline_name, _ = _pipeline_info(paths[name])
        if running := backend.runs_in_flight(pipeline_name):
            raise RunInFlightError(pipeline_name, running)
    run_name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return backend.submit(
        paths[name], run_name, {"config": settings.to_json(), **(arguments or {})}
    )


def schedule(
    settings: Settings,
    backend: SchedulingBackend,
    name: str = "retraining",
    cron: str = DEFAULT_CRON,
    out_dir: Path | None = None,
    arguments: dict[str, Any] | None = None,
) -> ScheduleOutcome:
    """Create or update (never duplicate) the recurring run of pipeline ``name``.

    The compiled package is uploaded as a pipeline version named after its content hash
    (an unchanged pipeline reuses its version), the recurring run is named
    ``<pipeline name>-schedule`` in the experiment, runs one at a time
    (``max_concurrency=1``) without catch-up after a pause, on ``cron`` (6 fields), with
    ``config`` and ``arguments`` as fixed parameters. The scheduled-time placeholder is not
    resolved by the open-source backend, so a date-dependent pipeline takes its as-of date
    as a parameter: empty means the day the run starts (UTC).
    """
    _builder(name)
    cron = validate_cron(cron)
    paths = {p.stem: p for p in compile_pipelines(settings, out_dir)}
    package = paths[name]
    pipeline_name, accepted = _pipeline_info(package)
    parameters = {"config": settings.to_json(), **(arguments or {})}
    if unknown := sorted(set(parameters) - accepted):
        raise ValueError(
            f"pipeline {name} has no parameter(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted))}"
        )
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    pipeline_id, version_id = backend.upload(package, pipeline_name, f"{pipeline_name}-{digest}")
    spec = RecurringRunSpec(
        name=f"{pipeline_name}-schedule",
        cron=cron,
        pipeline_id=pipeline_id,
        version_id=version_id,
        parameters=parameters,
        description=f"FreightML {name} on schedule ({cron})",
    )
    return reconcile(backend, spec)


def training_launcher(
    host: str | None, decision_id: str, say: Callable[[str], None] | None = None
) -> Callable[[Settings], Any]:
    """The ``launch`` of :func:`freightml.retraining.act.act`: the training pipeline on
    kfp.local (the version it registered for ``decision_id`` comes back), or a KFP run at
    ``host`` (only the run id comes back; the run goes on on the cluster)."""

    def launch(settings: Settings) -> Launched:
        window = settings.tracking.run_tags.get("retrain.window.reason")
        if window and say is not None:
            say(f"training window: {window}")
        if host:
            # exclusive: refused while a training run is in flight on the cluster
            run_id = submit(settings, KfpClientBackend(host), "training", exclusive=True)
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
