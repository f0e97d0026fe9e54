"""The ``compute`` section of the settings: where the heavy steps run.

``engine: pandas`` (the embedded default) runs them in this process; ``engine: spark`` runs
the same pandas code per shard of the series on Spark (:mod:`freightml.compute`), locally
on ``local[*]`` or on a cluster's master. docs/scale.md explains the setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ComputeSettings(BaseModel):
    """Compute engine of the heavy steps and, on Spark, where it runs."""

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
    submit: Literal["local", "operator"] = Field(
        "local",
        description="where a Spark step runs: local: a session in the step's own process "
        "(spark_master); operator: a SparkApplication of the Kubeflow Spark Operator per "
        "step, in the cluster (the KFP component submits it and waits)",
    )
    spark_namespace: str | None = Field(
        None,
        description="namespace of the SparkApplications (default: the submitting pod's own)",
    )
    spark_service_account: str = Field(
        "freightml-spark",
        min_length=1,
        description="service account of the Spark driver (it creates the executor pods)",
    )
    executors: int = Field(2, ge=1, le=1000, description="executor pods per SparkApplication")
    executor_cores: int = Field(1, ge=1, le=64, description="cores per executor pod")
    executor_memory: str = Field(
        "4g",
        pattern=r"^[0-9]+[kmgt]$",
        description="memory of an executor's Python work (its pod's memoryOverhead; the JVM "
        "keeps 1g): a task holds its shard's panel and rows, about 2.5g per 3 M facts",
    )
    driver_memory: str = Field(
        "4g",
        pattern=r"^[0-9]+[kmgt]$",
        description="memory of a SparkApplication driver's Python work (memoryOverhead; "
        "batch scoring reads every fact of the window there)",
    )
    object_store_secret: str = Field(
        "mlpipeline-minio-artifact",
        min_length=1,
        description="Secret with the object store's accesskey and secretkey (KFP's own by "
        "default): the Spark pods read and write the pipeline's artifacts with it",
    )
    timeout_seconds: int = Field(
        21600, ge=60, description="how long the component waits for a SparkApplication"
    )
