"""The retraining decision's rules: pure functions of the evidence and the policy.

:func:`decide` judges every trigger (one small rule each, the ``TRIGGERS`` table) and
guard (the ``GUARDS`` table) over an :class:`~freightml.retraining.types.Evidence` and a
:class:`~freightml.retraining.policy.Policy`, with values against thresholds, and returns the
:class:`~freightml.retraining.types.Decision`; :func:`run_tags` turns a decision into the
tags of the training run it starts. Nothing here reads a database, the registry or a file:
the evidence is gathered by freightml.retraining.evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from freightml.monitoring.types import DriftReport, Snapshot
from freightml.retraining.policy import Policy
from freightml.retraining.types import (
    IN_FLIGHT,
    KEY_USED,
    MANUAL,
    RAN,
    TAG_PREFIX,
    TRIGGER_ORDER,
    Decision,
    Evidence,
    GuardResult,
    TriggerResult,
)

# a trigger: judged from the policy and the evidence alone
TriggerRule = Callable[[Policy, Evidence], TriggerResult]
# a guard: judged from the policy, the evidence, the decision's key, whether it is forced
# and the time of the decision
GuardRule = Callable[[Policy, Evidence, str, bool, datetime], GuardResult]


def idempotency_key(model_name: str, trigger: str | None, as_of: date) -> str:
    """``<model>:<trigger>:<as-of>``: the same cause on the same day is one run."""
    return f"{model_name}:{trigger or 'none'}:{as_of.isoformat()}"


# -- triggers ---------------------------------------------------------------------------
def _supported(report: DriftReport) -> set[str]:
    return {r.segment for r in report.results} - set(report.unsupported_segments)


def input_drift_shares(snapshot: Snapshot) -> dict[str, float]:
    """Per supported segment, the share of its input features that drifted (any statistic
    over its threshold), the larger of the facts and the requests windows."""
    shares: dict[str, float] = {}
    for report in snapshot.drift:
        supported = _supported(report)
        features: dict[str, dict[str, bool]] = {}
        for r in report.results:
            if r.role == "input" and r.segment in supported:
                seg = features.setdefault(r.segment, {})
                seg[r.feature] = seg.get(r.feature, False) or r.drifted
        for segment, drifted in features.items():
            share = sum(drifted.values()) / len(drifted)
            shares[segment] = max(shares.get(segment, 0.0), share)
    return shares


def prediction_drift_segments(snapshot: Snapshot) -> list[str]:
    """Supported segments where the served forecasts drifted by monitoring's deciding
    statistic (the requests window's Wasserstein distance; the PSI of the forecasts, and
    the facts window's forecasts, are reported by monitoring but decide nothing)."""
    found = {
        r.segment
        for report in snapshot.drift
        if report.source == "requests"
        for r in report.results
        if r.role == "prediction"
        and r.statistic == "wasserstein"
        and r.drifted
        and r.segment in _supported(report)
    }
    return sorted(found)


def quality_streaks(snapshot: Snapshot) -> dict[str, int]:
    """Per segment, how many consecutive scored days up to its newest scored day exceeded
    their expected WAPE (0 when the newest one did not)."""
    if snapshot.quality is None:
        return {}
    by_segment: dict[str, list[tuple[date, bool]]] = {}
    for day in snapshot.quality.daily:
        if day.wape is not None:
            by_segment.setdefault(day.segment, []).append((day.date, day.exceeds))
    streaks = {}
    for segment, days in by_segment.items():
        streak = 0
        previous: date | None = None
        for when, exceeds in sorted(days, reverse=True):
            if not exceeds or (previous is not None and (previous - when).days != 1):
                break
            streak += 1
            previous = when
        streaks[segment] = streak
    return streaks


def _monitoring_usable(policy: Policy, evidence: Evidence) -> str | None:
    """None when the snapshot may be judged, else why not."""
    snapshot = evidence.snapshot
    if snapshot is None:
        return "no monitoring snapshot"
    age = (evidence.as_of - snapshot.as_of).days
    if age > policy.triggers.max_snapshot_age_days:
        return (
            f"the newest snapshot is as of {snapshot.as_of}, {age} days before {evidence.as_of} "
            f"(limit {policy.triggers.max_snapshot_age_days})"
        )
    champion = evidence.champion
    if champion is not None and snapshot.model_version not in (None, champion.version):
        return (
            f"the newest snapshot monitors v{snapshot.model_version}, the champion is "
            f"v{champion.version}"
        )
    return None


def _top(items: Iterable[tuple[str, float]], fmt: str = "{:.2f}") -> str:
    ranked = sorted(items, key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k} ({fmt.format(v)})" for k, v in ranked[:5])
    return text + (f" and {len(ranked) - 5} more" if len(ranked) > 5 else "")


# -- the triggers: one function each, (policy, evidence) -> TriggerResult ------------------
def _no_champion(policy: Policy, evidence: Evidence) -> TriggerResult:
    champion = evidence.champion
    return TriggerResult(
        name="no_champion",
        enabled=True,
        fired=champion is None,
        value=None,
        threshold=None,
        detail="no champion: train the first one"
        if champion is None
        else f"champion v{champion.version}",
    )


def _new_entity_trigger(name: str, share_field: str) -> TriggerRule:
    """The trigger ``name``: the share of tonnes after the champion's window carried by
    entities it never saw (``NewEntities.<share_field>``)."""

    def judge(policy: Policy, evidence: Evidence) -> TriggerResult:
        limits = policy.triggers.new_entities
        threshold = float(getattr(limits, share_field))
        new_entities = evidence.new_entities
        if new_entities is None:
            return TriggerResult(
                name=name,
                enabled=limits.enabled,
                fired=False,
                value=None,
                threshold=threshold,
                detail="no champion window or no facts after it",
            )
        share = float(getattr(new_entities, share_field))
        named = {
            "new_regions": ", ".join(new_entities.new_regions) or "none",
            "new_stations": ", ".join(new_entities.new_stations) or "none",
            "new_series": f"{new_entities.new_series} series",
        }[name]
        return TriggerResult(
            name=name,
            enabled=limits.enabled,
            fired=limits.enabled and share >= threshold,
            value=share,
            threshold=threshold,
            detail=f"share of {new_entities.tonnes:,.0f} t in "
            f"{new_entities.start}..{new_entities.end}: {named}",
        )

    return judge


def _unjudged(name: str, enabled: bool, threshold: float, why: str) -> TriggerResult:
    return TriggerResult(
        name=name,
        enabled=enabled,
        fired=False,
        value=None,
        threshold=threshold,
        detail=f"not judged: {why}",
    )


def _usable_snapshot(policy: Policy, evidence: Evidence) -> tuple[Snapshot | None, str]:
    """The snapshot the monitoring triggers read, or None and why not."""
    unusable = _monitoring_usable(policy, evidence)
    if unusable is not None or evidence.snapshot is None:
        return None, unusable or "no monitoring snapshot"
    return evidence.snapshot, ""


def _quality(policy: Policy, evidence: Evidence) -> TriggerResult:
    limits = policy.triggers.quality
    threshold = float(limits.consecutive_days)
    snapshot, why = _usable_snapshot(policy, evidence)
    if snapshot is None:
        return _unjudged("quality", limits.enabled, threshold, why)
    streaks = quality_streaks(snapshot)
    longest = max(streaks.values(), default=0)
    return TriggerResult(
        name="quality",
        enabled=limits.enabled,
        fired=limits.enabled and longest >= limits.consecutive_days,
        value=float(longest),
        threshold=threshold,
        detail=(
            "consecutive days over expectation: "
            + (_top(((s, float(n)) for s, n in streaks.items() if n), "{:.0f}") or "none")
            if snapshot.quality is not None
            else "no realised quality in the snapshot (no mature forecasts)"
        ),
    )


def _input_drift(policy: Policy, evidence: Evidence) -> TriggerResult:
    limits = policy.triggers.input_drift
    threshold = float(limits.min_segments)
    snapshot, why = _usable_snapshot(policy, evidence)
    if snapshot is None:
        return _unjudged("input_drift", limits.enabled, threshold, why)
    shares = input_drift_shares(snapshot)
    counted = {s: v for s, v in shares.items() if v >= limits.feature_share}
    return TriggerResult(
        name="input_drift",
        enabled=limits.enabled,
        fired=limits.enabled and len(counted) >= limits.min_segments,
        value=float(len(counted)),
        threshold=threshold,
        detail=f"segments with >= {limits.feature_share:.0%} of input features "
        f"drifted: {_top(counted.items()) or 'none'} (of {len(shares)} supported)",
    )


def _prediction_drift(policy: Policy, evidence: Evidence) -> TriggerResult:
    limits = policy.triggers.prediction_drift
    threshold = float(limits.min_segments)
    snapshot, why = _usable_snapshot(policy, evidence)
    if snapshot is None:
        return _unjudged("prediction_drift", limits.enabled, threshold, why)
    predicted = prediction_drift_segments(snapshot)
    return TriggerResult(
        name="prediction_drift",
        enabled=limits.enabled,
        fired=limits.enabled and len(predicted) >= limits.min_segments,
        value=float(len(predicted)),
        threshold=threshold,
        detail="forecasts drifted in: " + (", ".join(predicted[:5]) or "none"),
    )


def _champion_age(policy: Policy, evidence: Evidence) -> TriggerResult:
    age_limit = float(policy.schedule.max_champion_age_days)
    champion = evidence.champion
    if champion is None:
        return TriggerResult(
            name="champion_age",
            enabled=True,
            fired=False,
            value=None,
            threshold=age_limit,
            detail="no champion",
        )
    age = (evidence.as_of - champion.window_end).days
    return TriggerResult(
        name="champion_age",
        enabled=True,
        fired=age >= age_limit,
        value=float(age),
        threshold=age_limit,
        detail=f"days from the end of v{champion.version}'s training window "
        f"({champion.window_end}) to {evidence.as_of}",
    )


def _new_facts(policy: Policy, evidence: Evidence) -> TriggerResult:
    limits = policy.triggers.new_facts
    new_facts = evidence.new_facts
    return TriggerResult(
        name="new_facts",
        enabled=limits.enabled,
        fired=limits.enabled and new_facts is not None and new_facts.days >= limits.min_days,
        value=None if new_facts is None else float(new_facts.days),
        threshold=float(limits.min_days),
        detail="no champion window"
        if new_facts is None
        else "days with facts after the training window: "
        f"{new_facts.rows:,} facts, {new_facts.first}..{new_facts.last}"
        if new_facts.days
        else "no facts after the training window",
    )


TRIGGERS: dict[str, TriggerRule] = {
    "no_champion": _no_champion,
    "new_regions": _new_entity_trigger("new_regions", "region_share"),
    "new_stations": _new_entity_trigger("new_stations", "station_share"),
    "new_series": _new_entity_trigger("new_series", "series_share"),
    "quality": _quality,
    "input_drift": _input_drift,
    "prediction_drift": _prediction_drift,
    "champion_age": _champion_age,
    "new_facts": _new_facts,
}
assert tuple(TRIGGERS) == TRIGGER_ORDER


def judge_triggers(policy: Policy, evidence: Evidence) -> list[TriggerResult]:
    """Every trigger of the policy (the ``TRIGGERS`` table), judged on ``evidence``, in
    TRIGGER_ORDER."""
    return [TRIGGERS[name](policy, evidence) for name in TRIGGER_ORDER]


# -- guards -----------------------------------------------------------------------------
# -- the guards: one function each, (policy, evidence, key, forced, now) -> GuardResult ----
def _in_flight(
    policy: Policy, evidence: Evidence, key: str, forced: bool, now: datetime
) -> GuardResult:
    spec = policy.guards
    expiry = now - timedelta(hours=spec.in_flight_expiry_hours)
    in_flight = [
        d for d in evidence.history if d.status in IN_FLIGHT and _utc(d.updated_at) > expiry
    ]
    return GuardResult(
        name="in_flight",
        blocked=len(in_flight) >= spec.max_in_flight,
        value=float(len(in_flight)),
        limit=float(spec.max_in_flight),
        detail="runs in flight: " + (", ".join(d.key for d in in_flight) or "none"),
    )


def _dedupe(
    policy: Policy, evidence: Evidence, key: str, forced: bool, now: datetime
) -> GuardResult:
    spec = policy.guards
    used = [d for d in evidence.history if d.key == key and d.status in KEY_USED]
    return GuardResult(
        name="dedupe",
        blocked=spec.dedupe and bool(used),
        value=float(len(used)),
        limit=0.0 if spec.dedupe else None,
        detail=f"key {key} already {used[0].status} (decision {used[0].id})"
        if used
        else f"key {key} not used yet",
    )


def _cooldown(
    policy: Policy, evidence: Evidence, key: str, forced: bool, now: datetime
) -> GuardResult:
    spec = policy.guards
    ran = [d for d in evidence.history if d.status in RAN]
    last = max(ran, key=lambda d: d.as_of, default=None)
    since = None if last is None else (evidence.as_of - last.as_of).days
    return GuardResult(
        name="cooldown",
        blocked=not forced and since is not None and since < spec.cooldown_days,
        value=None if since is None else float(since),
        limit=float(spec.cooldown_days),
        detail="no retrain yet"
        if last is None
        else f"days since the retrain as of {last.as_of}" + (" (forced: not applied)" * forced),
    )


def _min_new_facts(
    policy: Policy, evidence: Evidence, key: str, forced: bool, now: datetime
) -> GuardResult:
    spec = policy.guards
    new_facts = evidence.new_facts
    return GuardResult(
        name="min_new_facts",
        blocked=not forced and new_facts is not None and new_facts.days < spec.min_new_fact_days,
        value=None if new_facts is None else float(new_facts.days),
        limit=float(spec.min_new_fact_days),
        detail="no champion window: not applied"
        if new_facts is None
        else "days with facts after the champion's training window"
        + (" (forced: not applied)" * forced),
    )


# a forced retrain skips the cool-down and the minimum of new facts, never the in-flight
# limit nor the key
GUARDS: dict[str, GuardRule] = {
    "in_flight": _in_flight,
    "dedupe": _dedupe,
    "cooldown": _cooldown,
    "min_new_facts": _min_new_facts,
}


def judge_guards(
    policy: Policy, evidence: Evidence, key: str, *, forced: bool, now: datetime
) -> list[GuardResult]:
    """Every guard of the ``GUARDS`` table against a retrain under ``key``."""
    return [rule(policy, evidence, key, forced, now) for rule in GUARDS.values()]


def decide(
    policy: Policy,
    evidence: Evidence,
    *,
    force: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
) -> Decision:
    """Retrain when an enabled trigger fired (or ``force``, which needs a ``reason``) and
    no guard blocked; every trigger and guard is in the decision with its value."""
    if force and not (reason and reason.strip()):
        raise ValueError("a forced retrain needs a reason: say why (--reason)")
    now = now or datetime.now(UTC)
    triggers = judge_triggers(policy, evidence)
    fired = [t for t in triggers if t.fired]
    trigger = MANUAL if force else (fired[0].name if fired else None)
    key = idempotency_key(evidence.model_name, trigger, evidence.as_of)
    guards = judge_guards(policy, evidence, key, forced=force, now=now)
    blocked = [g for g in guards if g.blocked]
    wanted = force or bool(fired)
    retrain = wanted and not blocked
    if force:
        why = f"forced: {reason}"
    elif fired:
        why = "; ".join(f"{t.name} {_num(t.value)} >= {_num(t.threshold)}" for t in fired)
    else:
        why = "no trigger fired"
    if wanted and blocked:
        why += " -- blocked by " + "; ".join(
            f"{g.name} ({_num(g.value)} vs {_num(g.limit)}: {g.detail})" for g in blocked
        )
    return Decision(
        id=uuid.uuid4().hex,
        decided_at=now,
        model_name=evidence.model_name,
        as_of=evidence.as_of,
        retrain=retrain,
        forced=force,
        trigger=trigger,
        key=key,
        reason=why,
        triggers=triggers,
        guards=guards,
        new_segments=_new_segments(evidence, fired),
        evidence=_evidence_summary(evidence),
    )


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def _new_segments(evidence: Evidence, fired: list[TriggerResult]) -> list[str]:
    new_entities = evidence.new_entities
    if new_entities is None:
        return []
    names = {t.name for t in fired}
    return [
        *(new_entities.new_regions if "new_regions" in names else []),
        *(new_entities.new_stations if "new_stations" in names else []),
    ]


def _evidence_summary(evidence: Evidence) -> dict[str, Any]:
    champion, snapshot = evidence.champion, evidence.snapshot
    return {
        "champion_version": None if champion is None else champion.version,
        "champion_run_id": None if champion is None else champion.run_id,
        "window_start": None if champion is None else str(champion.window_start),
        "window_end": None if champion is None else str(champion.window_end),
        "snapshot_id": None if snapshot is None else snapshot.id,
        "snapshot_as_of": None if snapshot is None else str(snapshot.as_of),
        "snapshot_status": None if snapshot is None else snapshot.status,
        "new_fact_days": None if evidence.new_facts is None else evidence.new_facts.days,
        "new_fact_rows": None if evidence.new_facts is None else evidence.new_facts.rows,
        "new_entities": None
        if evidence.new_entities is None
        else evidence.new_entities.model_dump(mode="json"),
    }


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def run_tags(decision: Decision) -> dict[str, str]:
    """The ``retrain.*`` tags of the training run a decision starts (and of its model
    version): the model card's "why this version exists"."""
    fired = decision.fired
    tags = {
        "decision_id": decision.id,
        "key": decision.key,
        "trigger": decision.trigger or "",
        "triggers_fired": ",".join(t.name for t in fired),
        "reason": decision.reason,
        "as_of": decision.as_of.isoformat(),
        "forced": str(decision.forced).lower(),
        "champion_before": str(decision.evidence.get("champion_version") or ""),
        "snapshot_id": str(decision.evidence.get("snapshot_id") or ""),
    }
    for t in fired:
        tags[f"value.{t.name}"] = f"{_num(t.value)} (threshold {_num(t.threshold)})"
    # MLflow limits a tag value to 8000 characters (5000 on older servers)
    return {TAG_PREFIX + k: v[:4000] for k, v in tags.items()}
