"""A bare kserve.Model around the same MLflow model: the baseline of bench/serving_bench.py.

What a minimal custom predictor looks like (KServe defaults otherwise): V1 ``instances`` are
the model's feature rows (dicts), one DataFrame, ``model.predict``, a list back.

    python bench/serving_bare_kserve.py MODEL_DIR PORT
"""

from __future__ import annotations

import sys
from typing import Any

import kserve
import mlflow.sklearn
import pandas as pd


class BareModel(kserve.Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.model: Any = None

    def load(self) -> bool:
        self.model = mlflow.sklearn.load_model(self.path)
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict, headers: dict | None = None, response_headers: dict | None = None
    ) -> dict:
        frame = pd.DataFrame.from_records(payload["instances"])
        return {"predictions": self.model.predict(frame).tolist()}


if __name__ == "__main__":
    model = BareModel("freight-volume", sys.argv[1])
    model.load()
    kserve.ModelServer(
        http_port=int(sys.argv[2]), grpc_port=int(sys.argv[2]) + 1, enable_grpc=False
    ).start([model])
