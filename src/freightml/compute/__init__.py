"""Where the heavy steps run (settings ``compute``, docs/scale.md).

``engine: pandas`` runs :func:`freightml.features.build.build_examples` in this process;
``engine: spark`` runs the same function once per shard of the series on Spark
(:mod:`freightml.compute.spark`) and gives the same rows in the same order: the features of
a series read only that series' own history, the origins come from the whole panel, and the
sampled horizons depend on the series, the origin and the seed only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from freightml.compute_settings import ComputeSettings
from freightml.features.build import build_examples, default_origins


def panel_span(facts: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last fact day: the calendar of the whole panel."""
    dates = pd.to_datetime(facts["date"])
    return dates.min().normalize(), dates.max().normalize()


def example_origins(
    facts: pd.DataFrame, origin_step_days: int = 7, train_window_days: int | None = None
) -> list[pd.Timestamp]:
    """The origins :func:`build_examples` picks by default for the whole panel."""
    start, last = panel_span(facts)
    return default_origins(last, start, origin_step_days, train_window_days)


def training_examples(
    facts: pd.DataFrame,
    compute: ComputeSettings,
    *,
    origins: Sequence[pd.Timestamp] | None = None,
    origin_step_days: int = 7,
    train_window_days: int | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`build_examples` on the configured engine (the same rows either way)."""
    if compute.engine == "pandas":
        return build_examples(
            facts,
            origins=origins,
            origin_step_days=origin_step_days,
            train_window_days=train_window_days,
            **kwargs,
        )
    try:
        from freightml.compute.spark import examples_on_spark  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(
            f"compute.engine is spark but pyspark is not installed ({exc}): install the "
            "`spark` extra (make install, or uv sync --extra spark)"
        ) from exc

    if origins is None:
        origins = example_origins(facts, origin_step_days, train_window_days)
    return examples_on_spark(facts, compute, origins=list(origins), **kwargs)
