"""The ``compute`` section of the settings: where the heavy steps run.

``engine: pandas`` (the embedded default) runs them in this process; ``engine: spark`` runs
the same pandas code per shard of the series on Spark (:mod:`freightml.compute`), locally
on ``local[*]`` or on a cluster's master. docs/scale.md explains the setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ComputeSettings(BaseModel):
    """Compute engine of the feature build (more steps follow it onto Spark)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: Literal["pandas", "spark"] = Field(
        "pandas",
        description="pandas: one process (the embedded default); spark: the same code per "
        "shard of the series with pyspark (the `spark` extra)",
    )
    shards: int = Field(
        16,
        ge=1,
        le=4096,
        description="shards of the series on Spark (a hash of the series key); results do "
        "not depend on it",
    )
    spark_master: str = Field(
        "local[*]", min_length=1, description="Spark master URL (local[*]: this machine)"
    )
    spark_driver_memory: str = Field(
        "4g", pattern=r"^[0-9]+[kmgt]$", description="spark.driver.memory of a local session"
    )
