from typing import NamedTuple

from kfp.dsl import Artifact, Input, Output


def decide_retraining(
    config: str, as_of: str, snapshot: Input[Artifact], decision: Output[Artifact]
) -> NamedTuple("Decision", [("retrain", bool), ("as_of", str)]):
    """Decide by the retraining policy whether the champion needs retraining.

    Args:
        config: FreightML settings as JSON.
        as_of: the day judged (YYYY-MM-DD), empty for the snapshot's own as-of date.
        snapshot: the monitoring snapshot of this run (JSON).
        decision: the decision with every reason and its evidence (JSON).

    Returns:
        Whether to retrain, and the as-of date the decision judged.
    """
    from collections import namedtuple

    from freightml.config import settings_from_json
    from freightml.stages.decide import decide_retraining as run

    info = run(
        settings_from_json(config),
        as_of=as_of,
        snapshot_path=snapshot.path,
        decision_path=decision.path,
    )
    decision.metadata.update(retrain=info.retrain, as_of=info.as_of, snapshot=info.snapshot_id)
    out = namedtuple("Decision", ["retrain", "as_of"])
    return out(info.retrain, info.as_of)
