def retrain_gate(retrain: bool) -> bool:
    """Pass the decision's retrain flag on as this step's single output.

    The retraining pipeline's condition reads this output, not the decide step's named
    ``retrain`` output: kfp.local (2.17) resolves a condition on a task's single output
    only, and skips the branch silently when it names one output of several.

    Args:
        retrain: the decide step's ``retrain`` output.

    Returns:
        The same flag.
    """
    return retrain
