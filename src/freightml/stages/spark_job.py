"""The job of FreightML's SparkApplications (``compute.submit: operator``).

The Kubeflow Spark Operator starts it in the driver pod with spark-submit, in FreightML's own
image (:mod:`freightml.compute.application` writes the application; its main file is
``spark_main/launch.py``, which calls :func:`main`):

    launch.py features --settings JSON --facts URI --out URI --staging URI
    launch.py scoring --settings JSON --facts URI --model URI --out URI --staging URI

``features`` runs :func:`freightml.stages.features.build_features` with the settings'
``compute`` (engine spark) in the session spark-submit set up: the driver splits the facts
into shards under ``--staging``, the executors build and write the examples under ``--out``.
``scoring`` runs :func:`freightml.stages.score.score_on_spark`: the model at ``--model``
forecasts every active series, shard by shard, into one Parquet file at ``--out``.
Prints the step's result as one JSON line; exits 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from freightml.config import settings_from_json
from freightml.stages.features import build_features
from freightml.stages.score import score_on_spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launch.py", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["features", "scoring"])
    parser.add_argument("--settings", required=True, help="FreightML settings as JSON")
    parser.add_argument("--facts", required=True, help="the facts (Parquet), path or URI")
    parser.add_argument("--out", required=True, help="where the examples go, path or URI")
    parser.add_argument("--staging", required=True, help="where the shards of the facts go")
    parser.add_argument("--model", help="scoring: the model (skops), path or URI")
    args = parser.parse_args(argv)
    settings = settings_from_json(args.settings)
    if settings.compute.engine != "spark":
        parser.error("the settings' compute.engine must be spark in a SparkApplication")
    if args.step == "scoring":
        if not args.model:
            parser.error("scoring needs --model")
        scored = score_on_spark(settings, args.facts, args.model, args.out, args.staging)
        print(json.dumps({"series": scored.n_series, "origin": scored.origin_date}))
        return 0
    info = build_features(settings, args.facts, args.out, staging_dir=args.staging)
    print(json.dumps(info.to_metadata()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
