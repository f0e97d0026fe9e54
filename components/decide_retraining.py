from typing import NamedTuple

from kfp.dsl import Artifact, Input, Output


def decide_retraining(
    config: str,
    as_of: str,
    snapshot: Input[Artifact],
    decision: Output[Artifact],
    run_id: str = "",
) -> NamedTuple(
    "Decision",
    [
        ("retrain", bool),
        ("as_of", str),
        ("train_config", str),
        ("decision_id", str),
    ],
):
    """Decide by the retraining policy whether the champion needs retraining, and record it.

    Args:
        config: FreightML settings as JSON.
        as_of: the day judged (YYYY-MM-DD), empty for the snapshot's own as-of date.
        snapshot: the monitoring snapshot of this run (JSON).
        decision: the decision with every trigger and guard and its evidence (JSON).
        run_id: the pipeline run's id, stored with a started decision for the exit step.

    Returns:
        Whether to retrain, the as-of date judged, the settings of the training steps
        (facts up to the as-of date, the decision's retrain.* tags) as JSON, and the
        decision's id.
    """
    from collections import namedtuple

    from freightml.config import settings_from_json
    from freightml.stages.decide import decide_retraining as run

    info, train_settings = run(
        settings_from_json(config),
        as_of=as_of,
        snapshot_path=snapshot.path,
        decision_path=decision.path,
        run_id=run_id,
    )
    decision.metadata.update(info.to_metadata())
    out = namedtuple("Decision", ["retrain", "as_of", "train_config", "decision_id"])
    return out(info.retrain, info.as_of, train_settings.to_json(), info.decision_id)
