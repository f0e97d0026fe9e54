"""Argo CD: the Application health check that makes sync waves wait.

Argo CD (since 1.8) gives an ``argoproj.io/Application`` no health of its own, so in an
app-of-apps the parent's sync waves order creation only: the next wave syncs at once.
Argo CD's documentation ("Sync Phases and Waves", app of apps) says to restore the health
assessment with a Lua script under the ``argocd-cm`` key below. manifests/argocd ships it
(``application-health.lua``), and :func:`problems` runs that script in Lua 5.1 (Argo CD runs
gopher-lua, a Lua 5.1) over the states an Application goes through.
"""

from __future__ import annotations

from typing import Any

HEALTH_KEY = "resource.customizations.health.argoproj.io_Application"
WAVE = "argocd.argoproj.io/sync-wave"

# Application status -> the health the next wave must see
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("just created (no status yet)", {}, "Progressing"),
    (
        "syncing",
        {"health": {"status": "Progressing"}, "sync": {"status": "OutOfSync"}},
        "Progressing",
    ),
    (
        "healthy but still out of sync",
        {"health": {"status": "Healthy"}, "sync": {"status": "OutOfSync"}},
        "Progressing",
    ),
    (
        "synced and healthy",
        {"health": {"status": "Healthy"}, "sync": {"status": "Synced"}},
        "Healthy",
    ),
    (
        "a workload failed",
        {"health": {"status": "Degraded", "message": "x"}, "sync": {"status": "Synced"}},
        "Degraded",
    ),
    (
        "a resource is missing",
        {"health": {"status": "Missing"}, "sync": {"status": "OutOfSync"}},
        "Missing",
    ),
]


def _lua_table(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _lua_table(runtime, v) for k, v in value.items()})
    return value


def evaluate(script: str, status: dict[str, Any]) -> tuple[str, str]:
    """Run a health script on an Application with ``status``; (status, message)."""
    from lupa import lua51  # noqa: PLC0415 (a tools-extra package)

    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    obj: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application"}
    if status:
        obj["status"] = status
    runtime.globals().obj = _lua_table(runtime, obj)
    result = runtime.execute(script)
    if result is None:
        raise ValueError("the health script returned nothing")
    return str(result["status"]), str(result["message"] or "")


def problems(docs_apps: list[dict[str, Any]], docs_bootstrap: list[dict[str, Any]]) -> list[str]:
    """Why the sync waves of ``docs_apps`` (manifests/argocd/apps) would not wait, given what
    the bootstrap (manifests/argocd) applies; empty when they do."""
    waves = [
        d["metadata"]["name"]
        for d in docs_apps
        if d.get("kind") == "Application" and WAVE in (d["metadata"].get("annotations") or {})
    ]
    if not waves:
        return []
    config = next(
        (
            d
            for d in docs_bootstrap
            if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "argocd-cm"
        ),
        None,
    )
    script = ((config or {}).get("data") or {}).get(HEALTH_KEY)
    if script is None:
        return [
            f"Applications {', '.join(waves)} use sync waves, but manifests/argocd applies no "
            f"argocd-cm with {HEALTH_KEY}: Argo CD would sync every wave at once"
        ]
    found = []
    for what, status, expected in CASES:
        try:
            got, _ = evaluate(script, status)
        except Exception as exc:  # a Lua error is what Argo CD would hit too
            found.append(f"{HEALTH_KEY}: the script fails on an Application {what}: {exc}")
            continue
        if got != expected:
            found.append(f"{HEALTH_KEY}: an Application {what} is {got}, expected {expected}")
    return found
