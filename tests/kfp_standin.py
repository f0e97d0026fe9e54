"""A stand-in of the Kubeflow Pipelines REST API (v2beta1) on 127.0.0.1, for tests.

A real Kubeflow Pipelines cannot run here, so the real ``kfp.Client`` talks HTTP to this
small, stateful, in-memory server instead. It speaks the paths and JSON shapes that
``kfp_server_api`` 2.x sends and reads (``/apis/v2beta1/...``, snake_case fields, the
``recurringRuns`` key of a recurring-run list, int64 fields as strings, list filters as
JSON predicates, page tokens) and records every request it receives, so a test can assert
what the client sent. It does not execute pipelines: a run stays PENDING until a test moves
it with :meth:`KfpStandin.set_run_state`.

    with KfpStandin() as kfp_api:
        client = kfp.Client(host=kfp_api.url)
        ...
        [upload] = kfp_api.requests_to("POST", "/apis/v2beta1/pipelines/upload")
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

import yaml
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from helpers import uvicorn_in_thread

API = "/apis/v2beta1"

# kfp.Client sends filter operations as the enum's numbers (kfp/client/client.py)
OPERATIONS = {
    1: "EQUALS",
    2: "NOT_EQUALS",
    3: "GREATER_THAN",
    5: "GREATER_THAN_EQUALS",
    6: "LESS_THAN",
    7: "LESS_THAN_EQUALS",
    8: "IN",
    9: "IS_SUBSTRING",
}
RUN_STATES = {
    "RUNTIME_STATE_UNSPECIFIED",
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "SKIPPED",
    "FAILED",
    "CANCELING",
    "CANCELED",
    "PAUSED",
}


@dataclass
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None  # the JSON body, or for an upload {"filename", "content"}


@dataclass
class _State:
    pipelines: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, dict] = field(default_factory=dict)
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    recurring_runs: dict[str, dict] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return str(uuid.uuid4())


def _predicate_value(predicate: dict) -> Any:
    for key in ("string_value", "stringValue", "int_value", "intValue", "long_value"):
        if key in predicate:
            return predicate[key]
    for key in ("string_values", "stringValues"):
        if key in predicate:
            return predicate[key].get("values", [])
    raise HTTPException(400, f"filter predicate has no value: {predicate}")


def _matches(item: dict, filter_json: str | None) -> bool:
    """Apply a KFP list filter (JSON predicates, all must hold) to one item."""
    if not filter_json:
        return True
    try:
        predicates = json.loads(filter_json).get("predicates", [])
    except (json.JSONDecodeError, AttributeError) as exc:
        raise HTTPException(400, f"filter is not JSON predicates: {filter_json!r}") from exc
    for predicate in predicates:
        op = predicate.get("operation") or predicate.get("op")
        op = OPERATIONS.get(op, op) if isinstance(op, int) else op
        key, value = predicate.get("key"), _predicate_value(predicate)
        have = item.get(key)
        if op == "EQUALS":
            ok = have == value
        elif op == "NOT_EQUALS":
            ok = have != value
        elif op == "IN":
            ok = have in value
        elif op == "IS_SUBSTRING":
            ok = isinstance(have, str) and str(value) in have
        else:
            raise HTTPException(400, f"filter operation {op!r} is not supported by the stand-in")
        if not ok:
            return False
    return True


def _page(items: list[dict], request: Request, key: str) -> dict:
    """Filter, sort by creation and page like the API server (page_token = an offset)."""
    query = request.query_params
    selected = [i for i in items if _matches(i, query.get("filter"))]
    sort_by = query.get("sort_by") or ""
    if sort_by:
        field_name, _, order = sort_by.partition(" ")
        selected.sort(key=lambda i: str(i.get(field_name, "")), reverse=order == "desc")
    size = int(query.get("page_size") or 0) or len(selected) or 1
    start = int(query.get("page_token") or 0)
    chunk = selected[start : start + size]
    body: dict[str, Any] = {"total_size": len(selected)}
    if chunk:
        body[key] = chunk
    if start + size < len(selected):
        body["next_page_token"] = str(start + size)
    return body


class KfpStandin:
    """``with KfpStandin() as api:`` a stateful KFP v2beta1 API on a free loopback port."""

    def __init__(self, *, multi_user: bool = False) -> None:
        self.multi_user = multi_user
        self.url = ""
        self.requests: list[Recorded] = []
        self.state = _State()
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self.app = self._build()

    def __enter__(self) -> Self:
        self.url = self._stack.enter_context(uvicorn_in_thread(self.app))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- for tests -----------------------------------------------------------------------
    def requests_to(self, method: str, path: str) -> list[Recorded]:
        """The recorded requests with this method and path (path without the query)."""
        return [r for r in self.requests if r.method == method and r.path == path]

    def set_run_state(self, run_id: str, state: str) -> None:
        """Move a run to ``state``, as the backend would while it executes."""
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}; known: {sorted(RUN_STATES)}")
        with self._lock:
            self.state.runs[run_id]["state"] = state

    def iter_recurring_runs(self) -> Iterator[dict]:
        yield from list(self.state.recurring_runs.values())

    # -- the API -------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        """One closure per endpoint, over the in-memory state."""
        app = FastAPI(title="KFP v2beta1 stand-in")
        state = self.state

        @app.middleware("http")
        async def record(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            raw = await request.body()
            body: Any = None
            content_type = request.headers.get("content-type", "")
            if raw and content_type.startswith("application/json"):
                body = json.loads(raw)
            elif raw and content_type.startswith("multipart/form-data"):
                form = await request.form()
                upload = form.get("uploadfile")
                if upload is not None and not isinstance(upload, str):
                    body = {"filename": upload.filename, "content": await upload.read()}
                    await upload.seek(0)
            with self._lock:
                self.requests.append(
                    Recorded(request.method, request.url.path, dict(request.query_params), body)
                )
            return await call_next(request)

        @app.exception_handler(HTTPException)
        async def error(_: Request, exc: HTTPException) -> JSONResponse:
            # the API server's error body: a google.rpc.Status
            return JSONResponse(
                {"error": exc.detail, "code": exc.status_code, "message": exc.detail},
                status_code=exc.status_code,
            )

        def get(table: dict[str, dict], key: str, what: str) -> dict:
            try:
                return table[key]
            except KeyError:
                raise HTTPException(404, f"{what} {key} not found") from None

        @app.get(f"{API}/healthz")
        def healthz() -> dict:
            return {"multi_user": self.multi_user, "pipeline_store": "database"}

        # pipelines and versions
        async def read_package(request: Request) -> dict:
            form = await request.form()
            upload = form.get("uploadfile")
            if upload is None or isinstance(upload, str):
                raise HTTPException(400, "multipart field 'uploadfile' is missing")
            text = (await upload.read()).decode()
            try:
                spec = next(iter(yaml.safe_load_all(text)))
            except yaml.YAMLError as exc:
                raise HTTPException(400, f"the uploaded package is not YAML: {exc}") from exc
            if not isinstance(spec, dict) or "pipelineInfo" not in spec:
                raise HTTPException(400, "the uploaded package is not a KFP pipeline spec")
            return spec

        def add_version(pipeline_id: str, name: str, description: str, spec: dict) -> dict:
            version = {
                "pipeline_id": pipeline_id,
                "pipeline_version_id": _new_id(),
                "display_name": name,
                "name": name,
                "description": description,
                "created_at": _now(),
                "pipeline_spec": spec,
            }
            state.versions[version["pipeline_version_id"]] = version
            return version

        @app.post(f"{API}/pipelines/upload")
        async def upload_pipeline(request: Request) -> dict:
            query = request.query_params
            spec = await read_package(request)
            name = query.get("display_name") or query.get("name") or spec["pipelineInfo"]["name"]
            with self._lock:
                if any(p["display_name"] == name for p in state.pipelines.values()):
                    raise HTTPException(409, f"a pipeline named {name!r} already exists")
                pipeline = {
                    "pipeline_id": _new_id(),
                    "display_name": name,
                    "name": query.get("name") or name,
                    "description": query.get("description") or "",
                    "created_at": _now(),
                    "namespace": query.get("namespace") or "",
                }
                state.pipelines[pipeline["pipeline_id"]] = pipeline
                add_version(pipeline["pipeline_id"], name, pipeline["description"], spec)
            return pipeline

        @app.post(f"{API}/pipelines/upload_version")
        async def upload_version(request: Request) -> dict:
            query = request.query_params
            pipeline_id = query.get("pipelineid")
            if not pipeline_id:
                raise HTTPException(400, "query parameter 'pipelineid' is missing")
            spec = await read_package(request)
            name = query.get("display_name") or query.get("name")
            if not name:
                raise HTTPException(400, "query parameter 'name' is missing")
            with self._lock:
                get(state.pipelines, pipeline_id, "pipeline")
                taken = {
                    v["display_name"]
                    for v in state.versions.values()
                    if v["pipeline_id"] == pipeline_id
                }
                if name in taken:
                    raise HTTPException(409, f"pipeline version {name!r} already exists")
                return add_version(pipeline_id, name, query.get("description") or "", spec)

        @app.get(f"{API}/pipelines")
        def list_pipelines(request: Request) -> dict:
            return _page(list(state.pipelines.values()), request, "pipelines")

        @app.get(f"{API}/pipelines/{{pipeline_id}}")
        def get_pipeline(pipeline_id: str) -> dict:
            return get(state.pipelines, pipeline_id, "pipeline")

        @app.delete(f"{API}/pipelines/{{pipeline_id}}")
        def delete_pipeline(pipeline_id: str) -> dict:
            with self._lock:
                get(state.pipelines, pipeline_id, "pipeline")
                if any(v["pipeline_id"] == pipeline_id for v in state.versions.values()):
                    raise HTTPException(400, f"pipeline {pipeline_id} still has versions")
                del state.pipelines[pipeline_id]
            return {}

        @app.get(f"{API}/pipelines/{{pipeline_id}}/versions")
        def list_versions(pipeline_id: str, request: Request) -> dict:
            get(state.pipelines, pipeline_id, "pipeline")
            versions = [v for v in state.versions.values() if v["pipeline_id"] == pipeline_id]
            return _page(versions, request, "pipeline_versions")

        @app.get(f"{API}/pipelines/{{pipeline_id}}/versions/{{version_id}}")
        def get_version(pipeline_id: str, version_id: str) -> dict:
            version = get(state.versions, version_id, "pipeline version")
            if version["pipeline_id"] != pipeline_id:
                raise HTTPException(404, f"pipeline version {version_id} not in {pipeline_id}")
            return version

        # experiments
        @app.post(f"{API}/experiments")
        async def create_experiment(request: Request) -> dict:
            body = await request.json()
            name = body.get("display_name")
            if not name:
                raise HTTPException(400, "experiment display_name is empty")
            with self._lock:
                if any(e["display_name"] == name for e in state.experiments.values()):
                    raise HTTPException(409, f"an experiment named {name!r} already exists")
                experiment = {
                    "experiment_id": _new_id(),
                    "display_name": name,
                    "description": body.get("description") or "",
                    "namespace": body.get("namespace") or "",
                    "created_at": _now(),
                    "storage_state": "AVAILABLE",
                }
                state.experiments[experiment["experiment_id"]] = experiment
            return experiment

        @app.get(f"{API}/experiments")
        def list_experiments(request: Request) -> dict:
            return _page(list(state.experiments.values()), request, "experiments")

        @app.get(f"{API}/experiments/{{experiment_id}}")
        def get_experiment(experiment_id: str) -> dict:
            return get(state.experiments, experiment_id, "experiment")

        # runs and recurring runs
        def check_source(body: dict, what: str) -> None:
            spec, ref = body.get("pipeline_spec"), body.get("pipeline_version_reference")
            if bool(spec) == bool(ref):
                raise HTTPException(
                    400,
                    f"a {what} needs exactly one of pipeline_spec or pipeline_version_reference",
                )
            if ref:
                version = get(state.versions, ref.get("pipeline_version_id", ""), "version")
                if version["pipeline_id"] != ref.get("pipeline_id"):
                    raise HTTPException(400, f"version {version['pipeline_version_id']} mismatch")
            if body.get("experiment_id"):
                get(state.experiments, body["experiment_id"], "experiment")

        @app.post(f"{API}/runs")
        async def create_run(request: Request) -> dict:
            body = await request.json()
            check_source(body, "run")
            with self._lock:
                run = {
                    **body,
                    "run_id": _new_id(),
                    "state": "PENDING",
                    "storage_state": "AVAILABLE",
                    "created_at": _now(),
                }
                state.runs[run["run_id"]] = run
            return run

        @app.get(f"{API}/runs")
        def list_runs(request: Request) -> dict:
            runs = list(state.runs.values())
            if experiment_id := request.query_params.get("experiment_id"):
                runs = [r for r in runs if r.get("experiment_id") == experiment_id]
            return _page(runs, request, "runs")

        @app.get(f"{API}/runs/{{run_id}}")
        def get_run(run_id: str) -> dict:
            return get(state.runs, run_id, "run")

        @app.post(f"{API}/recurringruns")
        async def create_recurring_run(request: Request) -> dict:
            body = await request.json()
            check_source(body, "recurring run")
            trigger = body.get("trigger") or {}
            if bool(trigger.get("cron_schedule")) == bool(trigger.get("periodic_schedule")):
                raise HTTPException(400, "a recurring run needs a cron or a periodic schedule")
            cron = (trigger.get("cron_schedule") or {}).get("cron")
            if cron and len(cron.split()) != 6:
                raise HTTPException(400, f"cron {cron!r} must have 6 fields")
            mode = body.get("mode") or "ENABLE"
            if mode not in ("ENABLE", "DISABLE"):
                raise HTTPException(400, f"unknown recurring run mode {mode!r}")
            with self._lock:
                recurring = {
                    **body,
                    "recurring_run_id": _new_id(),
                    "max_concurrency": str(body.get("max_concurrency") or 1),
                    "no_catchup": bool(body.get("no_catchup")),
                    "mode": mode,
                    "status": "ENABLED" if mode == "ENABLE" else "DISABLED",
                    "created_at": _now(),
                    "updated_at": _now(),
                }
                state.recurring_runs[recurring["recurring_run_id"]] = recurring
            return recurring

        @app.get(f"{API}/recurringruns")
        def list_recurring_runs(request: Request) -> dict:
            items = list(state.recurring_runs.values())
            if experiment_id := request.query_params.get("experiment_id"):
                items = [r for r in items if r.get("experiment_id") == experiment_id]
            # grpc-gateway writes this one field in camelCase (see V2beta1ListRecurringRunsResponse)
            return _page(items, request, "recurringRuns")

        def set_mode(recurring_run_id: str, enabled: bool) -> dict:
            with self._lock:
                recurring = get(state.recurring_runs, recurring_run_id, "recurring run")
                recurring["mode"] = "ENABLE" if enabled else "DISABLE"
                recurring["status"] = "ENABLED" if enabled else "DISABLED"
                recurring["updated_at"] = _now()
            return {}

        @app.post(f"{API}/recurringruns/{{recurring_run_id}}:enable")
        def enable(recurring_run_id: str) -> dict:
            return set_mode(recurring_run_id, True)

        @app.post(f"{API}/recurringruns/{{recurring_run_id}}:disable")
        def disable(recurring_run_id: str) -> dict:
            return set_mode(recurring_run_id, False)

        @app.get(f"{API}/recurringruns/{{recurring_run_id}}")
        def get_recurring_run(recurring_run_id: str) -> dict:
            return get(state.recurring_runs, recurring_run_id, "recurring run")

        @app.delete(f"{API}/recurringruns/{{recurring_run_id}}")
        def delete_recurring_run(recurring_run_id: str) -> dict:
            with self._lock:
                get(state.recurring_runs, recurring_run_id, "recurring run")
                del state.recurring_runs[recurring_run_id]
            return {}

        return app
