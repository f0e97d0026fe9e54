def record_retraining(config: str, decision_id: str, model_version: str, promoted: bool) -> str:
    """Record how the retrain a decision started ended: the version it registered.

    Args:
        config: FreightML settings as JSON.
        decision_id: the decision the training steps ran for.
        model_version: the version the register step created.
        promoted: whether the gates promoted it to champion.

    Returns:
        The outcome in words, as stored with the decision.
    """
    from freightml.config import settings_from_json
    from freightml.stages.decide import record_retraining as run

    return run(
        settings_from_json(config),
        decision_id=decision_id,
        model_version=model_version,
        promoted=promoted,
    )
