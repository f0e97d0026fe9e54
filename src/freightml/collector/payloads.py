"""Forecast rows out of the FreightML predictor's response bodies (V1 and V2 protocol).

V1: ``{"model_name", "model_version", "predictions": [{origin_station, destination_station,
cargo_type, origin_date, date, horizon, tonnes, wagons}, ...]}``.
V2 (Open Inference Protocol): ``{"model_name", "model_version", "id", "outputs": [{"name":
<column>, "datatype", "shape", "data": [...]}, ...]}`` with the same column names.
The target day may be called ``date`` or ``target_date`` in either protocol (the
predictor's V2 outputs use ``target_date``, its V1 predictions ``date``). Anything else
is not a forecast body: :func:`parse_forecast_body` returns None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal

REQUIRED = ("origin_station", "destination_station", "cargo_type", "origin_date", "date", "tonnes")
OPTIONAL = ("horizon", "wagons", "tonnes_p10", "tonnes_p90")
TARGET_ALIAS = "target_date"  # accepted in place of "date"
MAX_NAME_LENGTH = 128  # width of the station and cargo columns


class ForecastBodyError(ValueError):
    """A body shaped like a forecast response whose values are unusable."""


@dataclass(frozen=True)
class ForecastBody:
    """The forecasts of one response; rows use the forecasts table's column names."""

    protocol: Literal["v1", "v2"]
    model_name: str | None
    model_version: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)


def parse_forecast_body(body: Any) -> ForecastBody | None:
    """Forecast rows of a V1 or V2 response body (already JSON-decoded).

    Returns None when ``body`` is not a FreightML forecast response (other models, error
    bodies); raises ForecastBodyError when it is one but a value is missing or invalid.
    """
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("predictions"), list):
        records = _v1_records(body["predictions"])
        protocol: Literal["v1", "v2"] = "v1"
    elif isinstance(body.get("outputs"), list):
        records = _v2_records(body["outputs"])
        protocol = "v2"
    else:
        return None
    if records is None:
        return None
    rows = [_row(r, i) for i, r in enumerate(records)]
    return ForecastBody(
        protocol, _opt_str(body.get("model_name")), _opt_str(body.get("model_version")), rows
    )


def _missing(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return list(REQUIRED)
    return [k for k in REQUIRED if k not in record and not (k == "date" and TARGET_ALIAS in record)]


def _v1_records(predictions: list[Any]) -> list[dict[str, Any]] | None:
    if not predictions:
        return []
    if _missing(predictions[0]):
        return None
    for i, p in enumerate(predictions):
        if missing := _missing(p):
            raise ForecastBodyError(f"predictions[{i}] lacks {missing}")
    return predictions


def _v2_records(outputs: list[Any]) -> list[dict[str, Any]] | None:
    columns: dict[str, list[Any]] = {}
    for out in outputs:
        if isinstance(out, dict) and isinstance(out.get("name"), str):
            columns[out["name"]] = _flat(out.get("data"), out["name"])
    if "date" not in columns and TARGET_ALIAS in columns:
        columns["date"] = columns.pop(TARGET_ALIAS)
    if not all(k in columns for k in REQUIRED):
        return None
    names = [k for k in (*REQUIRED, *OPTIONAL) if k in columns]
    lengths = {k: len(columns[k]) for k in names}
    if len(set(lengths.values())) > 1:
        raise ForecastBodyError(f"outputs have different lengths: {lengths}")
    n = lengths[REQUIRED[0]]
    return [{k: columns[k][i] for k in names} for i in range(n)]


def _flat(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise ForecastBodyError(f"output {name!r} has no data list")
    if data and isinstance(data[0], list):  # shape [n, 1]
        return [v for inner in data for v in inner]
    return data


def _row(r: dict[str, Any], i: int) -> dict[str, Any]:
    target = r["date"] if "date" in r else r[TARGET_ALIAS]
    origin, target = _date(r["origin_date"], "origin_date", i), _date(target, "date", i)
    tonnes = r["tonnes"]
    if type(tonnes) is not float and (isinstance(tonnes, bool) or not isinstance(tonnes, int)):
        raise ForecastBodyError(f"forecast {i}: tonnes must be a number, got {tonnes!r}")
    if not math.isfinite(tonnes):
        raise ForecastBodyError(f"forecast {i}: tonnes must be finite, got {tonnes!r}")
    horizon, wagons = r.get("horizon"), r.get("wagons")
    try:
        horizon = (target - origin).days if horizon is None else int(horizon)
        if wagons is not None and type(wagons) is not int:
            wagons = round(float(wagons))
    except (TypeError, ValueError) as exc:
        raise ForecastBodyError(f"forecast {i}: horizon/wagons must be numbers ({exc})") from exc
    row = {"origin_station": r["origin_station"], "destination_station": r["destination_station"]}
    row["cargo_type"] = r["cargo_type"]
    for key, value in row.items():
        if type(value) is not str or not 0 < len(value) <= MAX_NAME_LENGTH:
            row[key] = _name(value, key, i)
    row["origin_date"], row["target_date"] = origin, target
    row["horizon"], row["tonnes"], row["wagons"] = horizon, float(tonnes), wagons
    for band in ("tonnes_p10", "tonnes_p90"):
        row[band] = _band(r.get(band), band, i)
    return row


def _band(value: Any, name: str, i: int) -> float | None:
    """An interval bound: a finite number, or None (absent, null or NaN: no interval)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ForecastBodyError(f"forecast {i}: {name} must be a number, got {value!r}")
    return float(value) if math.isfinite(value) else None


def _name(value: Any, name: str, i: int) -> str:
    text = value if type(value) is str else ("" if value is None else str(value))
    if not text or len(text) > MAX_NAME_LENGTH:
        raise ForecastBodyError(
            f"forecast {i}: {name} must be 1 to {MAX_NAME_LENGTH} characters, got {value!r}"
        )
    return text


def _date(value: Any, name: str, i: int) -> date:
    if type(value) is str:
        parsed = _iso_date(value)
        if parsed is not None:
            return parsed
    elif isinstance(value, datetime):
        return value.date()
    elif isinstance(value, date):
        return value
    raise ForecastBodyError(f"forecast {i}: {name} must be an ISO date, got {value!r}")


@lru_cache(maxsize=4096)
def _iso_date(text: str) -> date | None:
    """The same few dates repeat across responses: parse each once."""
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
