"""Acting on a decision: record it, start the training run with the decision in its
settings, and record how it ended.

The runner is passed in (``launch``): `freightml retrain run` gives kfp.local or a KFP
submission (pipelines/run.py), a test or the demo loop may give another; this package never
imports kfp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from freightml.data.sources import load_source
from freightml.retraining.decisions import DecisionStore
from freightml.retraining.policy import Policy
from freightml.retraining.rules import run_tags
from freightml.retraining.types import Decision
from freightml.retraining.window import choose_window

if TYPE_CHECKING:
    from freightml.config import Settings
    from freightml.store import Store


@dataclass(frozen=True)
class Launched:
    """What starting the training run gave: its id, and the registered version when the
    run has finished here (None when it was submitted and goes on elsewhere)."""

    run_id: str | None
    version: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How acting on a decision ended: the status stored, the run and the version."""

    decision: Decision
    status: str  # skipped | started (submitted) | finished
    run_id: str | None = None
    version: str | None = None
    message: str | None = None


def retrain_settings(settings: Settings, decision: Decision) -> Settings:
    """``settings`` for the training run ``decision`` starts: facts up to its as-of date
    (``data.end_date``) and its ``retrain.*`` tags on the run and the version."""
    data = settings.data.model_copy(update={"end_date": decision.as_of})
    tags = {**settings.tracking.run_tags, **run_tags(decision)}
    tracking = settings.tracking.model_copy(update={"run_tags": tags})
    return settings.model_copy(update={"data": data, "tracking": tracking})


def shift_aware_window(policy: Policy) -> Callable[[Settings, Decision], Settings]:
    """An ``adjust`` for :func:`act`: the policy's training window rule
    (:func:`~freightml.retraining.window.choose_window`) over the facts the training run
    will read, applied to its settings and recorded as ``retrain.window.*`` tags."""

    def adjust(settings: Settings, decision: Decision) -> Settings:
        facts = load_source(settings.data).facts
        known = set()
        for column in (
            "origin_region",
            "destination_region",
            "origin_station",
            "destination_station",
        ):
            known |= set(facts[column].astype(str))
        choice = choose_window(
            facts,
            as_of=decision.as_of,
            settings=policy.window,
            # a name the training facts lack (the store and the source differ) is no change
            new_segments=[n for n in decision.new_segments if n in known],
            cause=decision.trigger or "none",
            train_window_days=settings.data.train_window_days,
        )
        adjusted = choice.apply(settings)
        tags = {**adjusted.tracking.run_tags, **choice.as_params()}
        tracking = adjusted.tracking.model_copy(update={"run_tags": tags})
        return adjusted.model_copy(update={"tracking": tracking})

    return adjust


@dataclass(frozen=True)
class Start:
    """A recorded decision and, when its run may start, that run's settings."""

    decision: Decision
    status: str  # the status stored: started (run it with ``settings``) or skipped
    settings: Settings | None = None
    message: str | None = None


def start_retrain(
    settings: Settings,
    store: Store,
    policy: Policy,
    decision: Decision,
    *,
    adjust: Callable[[Settings, Decision], Settings] | None = None,
    run_id: str | None = None,
) -> Start:
    """Record ``decision`` and, when it says retrain and the key and an in-flight slot are
    still free, claim them (``started``, with ``run_id`` when the run acting on it is
    known already) and return the training run's settings: :func:`retrain_settings`, then
    ``adjust`` (e.g. :func:`shift_aware_window`). A decision not to retrain, or one another
    process beat to the key, is ``skipped``. An error while adjusting marks the decision
    ``failed`` and is raised."""
    decisions = DecisionStore(store)
    if not decision.retrain:
        decisions.record(decision, "skipped", message=decision.reason)
        return Start(decision, "skipped", message=decision.reason)
    status = decisions.record(
        decision, "started", max_in_flight=policy.guards.max_in_flight, run_id=run_id
    )
    if status == "skipped":  # another process claimed the key or the in-flight slot first
        row = decisions.get(decision.id)
        return Start(decision, "skipped", message=None if row is None else row["message"])
    try:
        run_settings = retrain_settings(settings, decision)
        if adjust is not None:
            run_settings = adjust(run_settings, decision)
    except BaseException as exc:
        fail_retrain(store, decision.id, exc)
        raise
    return Start(decision, "started", run_settings)


def finish_retrain(
    store: Store,
    decision_id: str,
    *,
    version: str,
    run_id: str | None = None,
    message: str | None = None,
) -> None:
    """Record that the decision's run registered ``version`` (``message``: its promotion
    decision)."""
    DecisionStore(store).mark(
        decision_id, "finished", run_id=run_id, model_version=version, message=message
    )


def fail_retrain(store: Store, decision_id: str, error: BaseException | str) -> None:
    """Record that the decision's run failed, with the error."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    DecisionStore(store).mark(decision_id, "failed", message=text)


def act_on_decision(
    settings: Settings,
    store: Store,
    policy: Policy,
    decision: Decision,
    launch: Callable[[Settings], Launched],
    *,
    adjust: Callable[[Settings, Decision], Settings] | None = None,
) -> Outcome:
    """:func:`start`, then run the training through ``launch`` and record the outcome:
    ``finished`` with the version, ``started`` with the run id of a submitted run,
    ``failed`` (and the error re-raised)."""
    began = start_retrain(settings, store, policy, decision, adjust=adjust)
    if began.settings is None:
        return Outcome(decision, began.status, message=began.message)
    try:
        launched = launch(began.settings)
    except BaseException as exc:
        fail_retrain(store, decision.id, exc)
        raise
    if launched.version is None:
        DecisionStore(store).mark(
            decision.id, "started", run_id=launched.run_id, message=launched.message
        )
        return Outcome(decision, "started", launched.run_id, None, launched.message)
    finish_retrain(
        store,
        decision.id,
        version=launched.version,
        run_id=launched.run_id,
        message=launched.message,
    )
    return Outcome(decision, "finished", launched.run_id, launched.version, launched.message)
