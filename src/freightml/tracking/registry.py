"""Registry operations on aliases: challenger, champion, promotion and rollback.

Every change of the champion is an explicit operation that records who did it and why:
as tags on the model version and as a run in the audit experiment
``<registered model>-registry-audit``, so the history can be read back (and rollback
knows where to go).

A promotion refuses a version that could not serve (``check_servable``): one without
gate results (not registered by the training pipeline), one that failed its gates, one
that does not load, or whose input example does not score to finite numbers; a new
predictor replica would otherwise crash-loop on it. ``force`` (with the reason, recorded
as ``freightml.promote_forced``) overrides the check.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow.artifacts
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from freightml.domain import CHALLENGER, CHAMPION, TAG_FAILED_GATES, TAG_GATES

__all__ = [
    "AUDIT_SUFFIX",
    "CHALLENGER",
    "CHAMPION",
    "AuditEvent",
    "RegistryError",
    "audit_log",
    "champion_version",
    "check_servable",
    "list_versions",
    "promote",
    "rollback",
]
AUDIT_SUFFIX = "-registry-audit"


class RegistryError(RuntimeError):
    """A registry operation could not be done; the message says why and what to do."""


@dataclass(frozen=True)
class AuditEvent:
    """One change of the champion: what, which version replaced which, who, why, when."""

    action: str
    model: str
    version: str
    previous_version: str | None
    actor: str
    reason: str
    at: str


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def champion_version(client: MlflowClient, model: str) -> str | None:
    """The version that holds the champion alias, or None."""
    return _alias_version(client, model, CHAMPION)


def _alias_version(client: MlflowClient, model: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


def require_version(client: MlflowClient, model: str, version: str) -> None:
    try:
        client.get_model_version(model, str(version))
    except MlflowException as exc:
        known = [mv.version for mv in client.search_model_versions(f"name='{model}'")]
        raise RegistryError(
            f"model {model!r} has no version {version!r} (versions: {sorted(known, key=int)})"
        ) from exc


def _audit(client: MlflowClient, event: AuditEvent) -> None:
    name = event.model + AUDIT_SUFFIX
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    run = client.create_run(
        experiment_id,
        run_name=f"{event.action} v{event.version}",
        tags={"freightml.audit": "true", "mlflow.user": event.actor},
    )
    for key, value in (
        ("action", event.action),
        ("model", event.model),
        ("version", event.version),
        ("previous_version", event.previous_version or ""),
        ("actor", event.actor),
        ("reason", event.reason),
        ("at", event.at),
    ):
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)


def audit_log(client: MlflowClient, model: str) -> list[AuditEvent]:
    """Champion changes of ``model``, oldest first."""
    experiment = client.get_experiment_by_name(model + AUDIT_SUFFIX)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time ASC"], max_results=10000
    )
    events = []
    for run in runs:
        p = run.data.params
        events.append(
            AuditEvent(
                action=p["action"],
                model=p["model"],
                version=p["version"],
                previous_version=p.get("previous_version") or None,
                actor=p["actor"],
                reason=p["reason"],
                at=p["at"],
            )
        )
    return events


def _move_champion(
    client: MlflowClient,
    model: str,
    version: str,
    action: str,
    actor: str,
    reason: str,
    *,
    check: bool = False,
) -> AuditEvent:
    """Move the champion alias to ``version`` and record it; with ``check``, only a version
    that could serve (``check_servable``)."""
    if not reason.strip():
        raise RegistryError(f"{action} needs a reason: say why the champion changes")
    version = str(version)
    require_version(client, model, version)
    if check:
        check_servable(client, model, version)
    previous = champion_version(client, model)
    if previous == version:
        raise RegistryError(f"version {version} of {model!r} is already the champion")
    event = AuditEvent(
        action=action,
        model=model,
        version=version,
        previous_version=previous,
        actor=actor,
        reason=reason,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    client.set_registered_model_alias(model, CHAMPION, version)
    for key, value in (
        (f"freightml.{action}_by", actor),
        (f"freightml.{action}_reason", reason),
        (f"freightml.{action}_at", event.at),
    ):
        client.set_model_version_tag(model, version, key, value)
    _audit(client, event)
    return event


def promote(
    client: MlflowClient,
    model: str,
    version: str,
    *,
    reason: str,
    actor: str | None = None,
    force: bool = False,
) -> AuditEvent:
    """Give ``version`` the champion alias, recording who and why; a version that could
    not serve is refused (``check_servable``) unless ``force``."""
    event = _move_champion(
        client, model, version, "promote", actor or default_actor(), reason, check=not force
    )
    if force:
        client.set_model_version_tag(model, version, "freightml.promote_forced", "true")
    return event


def check_servable(client: MlflowClient, model: str, version: str) -> None:
    """Raise RegistryError naming what is missing for ``version`` to serve: its gate results
    (passed), a model that loads, an input example it scores to finite numbers."""
    tags = client.get_model_version(model, version).tags
    gates = tags.get(TAG_GATES)
    refuse = f"version {version} of {model!r} cannot become champion"
    force = "(or promote it with --force and a --reason that says why)"
    if gates is None:
        raise RegistryError(
            f"{refuse}: it has no gate results (tag {TAG_GATES}): only versions the training "
            f"pipeline registered and evaluated are promoted {force}"
        )
    if gates != "passed":
        failed = tags.get(TAG_FAILED_GATES) or "unnamed"
        raise RegistryError(f"{refuse}: it failed its gates ({failed}) {force}")

    uri = f"models:/{model}/{version}"
    try:
        estimator = mlflow.sklearn.load_model(uri)
        local = mlflow.artifacts.download_artifacts(uri)
        example = Model.load(local).load_input_example(local)
    except Exception as exc:  # any failure to load is what a new replica would meet
        raise RegistryError(
            f"{refuse}: it does not load ({type(exc).__name__}: {exc}); a predictor replica "
            f"starting on it would exit {force}"
        ) from exc
    if example is None:
        raise RegistryError(f"{refuse}: it has no input example to score {force}")
    try:
        scored = np.asarray(estimator.predict(example), dtype=np.float64)
    except Exception as exc:
        raise RegistryError(
            f"{refuse}: scoring its input example failed ({type(exc).__name__}: {exc}) {force}"
        ) from exc
    if scored.shape[0] != len(example) or not np.isfinite(scored).all():
        raise RegistryError(
            f"{refuse}: its input example scored to {scored.shape[0]} values, not all finite, "
            f"for {len(example)} rows {force}"
        )


def rollback(
    client: MlflowClient,
    model: str,
    *,
    reason: str,
    to: str | None = None,
    actor: str | None = None,
) -> AuditEvent:
    """Return the champion alias to the version it had before the current champion.

    Without ``to``, the target is the champion that the current champion replaced at its
    latest promotion, so repeated rollbacks walk back through the history.
    """
    current = champion_version(client, model)
    if current is None:
        raise RegistryError(f"model {model!r} has no champion to roll back")
    if to is None:
        promotions = [
            e for e in audit_log(client, model) if e.action == "promote" and e.version == current
        ]
        if not promotions or promotions[-1].previous_version is None:
            raise RegistryError(
                f"no champion before version {current} of {model!r} is recorded; "
                "name the version with --to"
            )
        to = promotions[-1].previous_version
    return _move_champion(client, model, to, "rollback", actor or default_actor(), reason)


def list_versions(client: MlflowClient, model: str) -> list[dict[str, str]]:
    """Versions of ``model`` with their aliases, run ids and key metrics, newest first."""
    try:
        registered = client.get_registered_model(model)
    except MlflowException as exc:
        raise RegistryError(
            f"no registered model {model!r} in this tracking store; run the training "
            "pipeline first (make demo)"
        ) from exc
    aliases: dict[str, list[str]] = {}
    for alias, version in (registered.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name='{model}'"):
        metrics: dict[str, float] = {}
        if mv.run_id:
            try:
                metrics = client.get_run(mv.run_id).data.metrics
            except MlflowException:
                metrics = {}
        rows.append(
            {
                "version": str(mv.version),
                "aliases": ",".join(sorted(aliases.get(str(mv.version), []))),
                "run_id": mv.run_id or "",
                "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(
                    timespec="seconds"
                ),
                "wape": _fmt(metrics.get("wape")),
                "wape_ratio": _fmt(metrics.get("wape_ratio")),
                "gates": mv.tags.get("freightml.gates", ""),
            }
        )
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def events_json(events: list[AuditEvent]) -> str:
    return json.dumps([e.__dict__ for e in events], indent=2)
