"""The predictor's request and response contract (KServe V1 and Open Inference Protocol V2).

A request names series (origin station, destination station, cargo type) and target days;
parsing turns it into row numbers of the history window's precomputed feature table, and
every problem becomes a :class:`RequestError` (HTTP 400) that says what was wrong and where.

V1 ``{"instances": [{"origin_station", "destination_station", "cargo_type",
"dates": ["YYYY-MM-DD", ...]} | {..., "horizon": n}]}``; V2: BYTES tensors
``origin_station``, ``destination_station``, ``cargo_type``, ``target_date`` of shape [n].
"""

from __future__ import annotations

# kserve parses sys.argv when first imported: the guard goes before every other import
import freightml._kserve  # noqa: F401  (first: see freightml/_kserve.py)

# isort: split

from datetime import date
from typing import Any

import numpy as np
import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import generate_uuid

from freightml.features.window import HistoryWindow
from freightml.models.wagons import wagons_for

KEY_FIELDS: tuple[str, str, str] = ("origin_station", "destination_station", "cargo_type")
V1_FIELDS = frozenset({*KEY_FIELDS, "dates", "horizon"})
V2_INPUTS: tuple[str, ...] = (*KEY_FIELDS, "target_date")
V2_OUTPUTS: dict[str, str] = {
    "origin_station": "BYTES",
    "destination_station": "BYTES",
    "cargo_type": "BYTES",
    "target_date": "BYTES",
    "origin_date": "BYTES",
    "horizon": "INT64",
    "tonnes": "FP64",
    "wagons": "INT64",
    # the calibrated quantiles (NaN from a model without intervals)
    "tonnes_p2_5": "FP64",
    "tonnes_p10": "FP64",
    "tonnes_p50": "FP64",
    "tonnes_p90": "FP64",
    "tonnes_p97_5": "FP64",
}
# quantile levels a response carries, as the columns above
ANSWERED_LEVELS: tuple[float, ...] = (0.025, 0.1, 0.5, 0.9, 0.975)
WAGON_QUANTILE = "wagon_quantile"  # request parameter: the quantile wagons are counted at
DEFAULT_MAX_ROWS = 100_000
_V1_EXAMPLE = (
    '{"instances": [{"origin_station": "...", "destination_station": "...", '
    '"cargo_type": "coal", "dates": ["YYYY-MM-DD"]} or {..., "horizon": 7}]}'
)


class RequestError(InvalidInput):
    """A bad forecast request; KServe answers it with HTTP 400 and this message."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


# -- series and dates ------------------------------------------------------------------
def series_position(window: HistoryWindow, key: tuple[Any, Any, Any], where: str) -> int:
    """Position of a series in the window, or a RequestError saying why there is none."""
    try:
        position = window.series_index.get(key)
    except TypeError:  # a list or an object where a string belongs (explained below)
        position = None
    if position is not None:
        return position
    for name, value in zip(KEY_FIELDS, key, strict=True):
        if not isinstance(value, str) or not value:
            raise RequestError(f"{where}: {name} must be a non-empty string, got {value!r}")
    origin, destination, cargo = key
    first = window.young.get(key)
    if first is not None:
        raise RequestError(
            f"{where}: series {origin} -> {destination} {cargo} has facts only since {first}; "
            f"a series is forecast once it has {window.min_history_days} days of history "
            f"before the forecast origin {window.origin_date} (serving.min_history_days)"
        )
    days = f"the history window ({window.window_days} days up to {window.origin_date})"
    for name, station in (("origin_station", origin), ("destination_station", destination)):
        if station not in window.stations:
            raise RequestError(
                f"{where}: unknown {name} {station!r}: no facts in {days} mention this station"
            )
    if cargo not in window.cargo_types:
        known = window.known_cargo_types
        if known and cargo not in known:
            raise RequestError(
                f"{where}: unknown cargo_type {cargo!r}; known cargo types: "
                f"{', '.join(sorted(window.cargo_types | known))}"
            )
        raise RequestError(
            f"{where}: no facts of cargo_type {cargo!r} in {days}; cargo types with facts: "
            f"{', '.join(sorted(window.cargo_types))}"
        )
    raise RequestError(
        f"{where}: no history for series {origin} -> {destination} {cargo} in "
        f"{days}; a series needs facts before it can be forecast"
    )


def horizon_of_date(window: HistoryWindow, value: object, where: str) -> int:
    """Horizon (days after the forecast origin) of an ISO date string, checked to 1..max."""
    known = window.date_horizon.get(value) if isinstance(value, str) else None
    if known is not None:
        return known
    if not isinstance(value, str):
        raise RequestError(
            f"{where}: date {value!r} is a {_json_type(value)}, expected a string YYYY-MM-DD"
        )
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise RequestError(f"{where}: {value!r} is not a date; expected YYYY-MM-DD") from None
    horizon = window.horizon_of(day)
    origin = window.origin_date
    if horizon < 1:
        raise RequestError(
            f"{where}: date {day} is not after the forecast origin {origin} (the last fact "
            f"date); forecasts cover {window.dates[1]} to {window.dates[-1]}"
        )
    if horizon > window.horizon_max:
        raise RequestError(
            f"{where}: date {day} is {horizon} days after the forecast origin {origin}; "
            f"the limit is {window.horizon_max} days ({window.dates[-1]})"
        )
    return horizon


def _check_rows(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise RequestError(
            f"the request asks for {n} forecast rows; the limit is {max_rows} per request: split it"
        )


# -- V1 ----------------------------------------------------------------------------------
def parse_v1(body: object, window: HistoryWindow, max_rows: int = DEFAULT_MAX_ROWS) -> np.ndarray:
    """Feature-table rows of a V1 body, in request order (instances, then their days)."""
    if isinstance(body, bytes | bytearray):  # a non-JSON content type reaches us undecoded
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(
                f"the request body is not JSON ({exc}); expected {_V1_EXAMPLE}"
            ) from None
    if not isinstance(body, dict):
        raise RequestError(f"the request body is a JSON {_json_type(body)}; expected {_V1_EXAMPLE}")
    if "instances" not in body:
        raise RequestError(f'the request body has no "instances"; expected {_V1_EXAMPLE}')
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(
            f'"instances" must be a non-empty list of objects, got {instances!r}'[:200]
        )
    h_max = window.horizon_max
    parts: list[np.ndarray] = []
    total = 0
    for i, instance in enumerate(instances):
        where = f"instances[{i}]"
        if not isinstance(instance, dict):
            raise RequestError(f"{where} is a JSON {_json_type(instance)}, expected an object")
        unknown = instance.keys() - V1_FIELDS
        if unknown:
            raise RequestError(
                f"{where} has unknown field(s) {sorted(unknown)}; allowed: {sorted(V1_FIELDS)}"
            )
        for name in KEY_FIELDS:
            if name not in instance:
                raise RequestError(f"{where} is missing the field {name!r}")
        key = (instance["origin_station"], instance["destination_station"], instance["cargo_type"])
        position = series_position(window, key, where)
        horizons = _instance_horizons(instance, window, where)
        total += len(horizons)
        _check_rows(total, max_rows)
        parts.append(position * h_max + horizons - 1)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _instance_horizons(instance: dict, window: HistoryWindow, where: str) -> np.ndarray:
    has_dates, has_horizon = "dates" in instance, "horizon" in instance
    if has_dates == has_horizon:
        raise RequestError(
            f'{where} needs exactly one of "dates" (a list of YYYY-MM-DD) or '
            f'"horizon" (1..{window.horizon_max} days after the forecast origin '
            f"{window.origin_date})"
        )
    if has_horizon:
        h = instance["horizon"]
        if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= window.horizon_max:
            raise RequestError(
                f"{where}: horizon must be an integer from 1 to {window.horizon_max}, got {h!r}"
            )
        return np.arange(1, h + 1, dtype=np.int64)
    dates = instance["dates"]
    if not isinstance(dates, list) or not dates:
        raise RequestError(
            f"{where}: dates must be a non-empty list of YYYY-MM-DD strings, got {dates!r}"[:300]
        )
    lookup = window.date_horizon
    try:
        return np.fromiter((lookup[d] for d in dates), dtype=np.int64, count=len(dates))
    except (KeyError, TypeError):  # slow path: explain the first bad date, accept the rest
        hs = [horizon_of_date(window, d, f"{where}.dates[{j}]") for j, d in enumerate(dates)]
        return np.asarray(hs, dtype=np.int64)


def wagon_quantile(parameters: object) -> float | None:
    """The ``wagon_quantile`` request parameter (None when absent); a clear error when it is
    not a number in (0, 1)."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise RequestError(f'"parameters" must be an object, got a {_json_type(parameters)}')
    q = parameters.get(WAGON_QUANTILE)
    if q is None:
        return None
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q < 1:
        raise RequestError(f"{WAGON_QUANTILE} must be a number between 0 and 1, got {q!r}")
    return float(q)


def v1_response(
    window: HistoryWindow,
    rows: np.ndarray,
    tonnes: np.ndarray,
    model_name: str,
    version: str,
    bands: dict[str, np.ndarray] | None = None,
    wagon_tonnes: np.ndarray | None = None,
) -> dict[str, Any]:
    """The V1 response: one prediction object per requested series-day; with ``bands``
    (column -> tonnes per row) the quantiles too, and wagons counted from ``wagon_tonnes``
    (a quantile of the forecast) instead of the point forecast when given."""
    h_max = window.horizon_max
    positions = rows // h_max
    horizons = (rows % h_max + 1).tolist()
    counted = tonnes if wagon_tonnes is None else wagon_tonnes
    wagons = wagons_for(counted, window.capacity[positions]).tolist()
    keys, days, origin = window.series_keys, window.dates, window.origin_date
    predictions = [
        {
            "origin_station": keys[p][0],
            "destination_station": keys[p][1],
            "cargo_type": keys[p][2],
            "origin_date": origin,
            "date": days[h],
            "horizon": h,
            "tonnes": t,
            "wagons": w,
        }
        for p, h, t, w in zip(positions.tolist(), horizons, tonnes.tolist(), wagons, strict=True)
    ]
    for column, values in (bands or {}).items():
        for prediction, value in zip(predictions, values.tolist(), strict=True):
            prediction[column] = value
    return {"model_name": model_name, "model_version": version, "predictions": predictions}


# -- V2 ----------------------------------------------------------------------------------
def _strings(tensor: Any) -> list:
    """Values of a BYTES input as a flat list (JSON strings, or bytes from binary data)."""
    data = tensor.data
    if data is None and getattr(tensor, "_raw_data", None) is not None:
        data = tensor.as_numpy().ravel().tolist()
    if not isinstance(data, list):
        raise RequestError(f"input {tensor.name!r} has no data list")
    if data and isinstance(data[0], list):
        data = [v for inner in data for v in (inner if isinstance(inner, list) else [inner])]
    shape = list(tensor.shape or [])
    if int(np.prod(shape)) != len(data) or len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise RequestError(
            f"input {tensor.name!r} has shape {shape} and {len(data)} values; "
            "expected shape [n] (or [n, 1]) with n values"
        )
    out = []
    for value in data:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError(
                    f"input {tensor.name!r} holds bytes that are not UTF-8"
                ) from None
        out.append(value)
    return out


def parse_v2(
    request: InferRequest, window: HistoryWindow, max_rows: int = DEFAULT_MAX_ROWS
) -> np.ndarray:
    """Feature-table rows of a V2 request: one row per (series, target_date) element."""
    columns: dict[str, list] = {}
    for tensor in request.inputs:
        if tensor.name not in V2_INPUTS:
            raise RequestError(
                f"unknown input {tensor.name!r}; expected BYTES inputs {list(V2_INPUTS)}"
            )
        if tensor.name in columns:
            raise RequestError(f"input {tensor.name!r} is given twice")
        if tensor.datatype != "BYTES":
            raise RequestError(
                f"input {tensor.name!r} has datatype {tensor.datatype}; expected BYTES"
            )
        columns[tensor.name] = _strings(tensor)
    missing = [name for name in V2_INPUTS if name not in columns]
    if missing:
        raise RequestError(
            f"missing input(s) {missing}; a request needs BYTES inputs "
            f"{list(V2_INPUTS)} of equal length"
        )
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise RequestError(f"inputs must have the same length, got {lengths}")
    n = lengths["target_date"]
    if n == 0:
        raise RequestError("the inputs are empty: nothing to forecast")
    _check_rows(n, max_rows)
    for out in request.request_outputs or []:
        if out.name not in V2_OUTPUTS:
            raise RequestError(
                f"unknown output {out.name!r} requested; outputs: {list(V2_OUTPUTS)}"
            )
    h_max = window.horizon_max
    rows = np.empty(n, dtype=np.int64)
    keys = zip(
        columns["origin_station"],
        columns["destination_station"],
        columns["cargo_type"],
        strict=True,
    )
    for i, (key, day) in enumerate(zip(keys, columns["target_date"], strict=True)):
        position = series_position(window, key, f"row {i}")
        rows[i] = position * h_max + horizon_of_date(window, day, f"row {i}") - 1
    return rows


def v2_response(
    request: InferRequest,
    window: HistoryWindow,
    rows: np.ndarray,
    tonnes: np.ndarray,
    model_name: str,
    version: str,
    bands: dict[str, np.ndarray] | None = None,
    wagon_tonnes: np.ndarray | None = None,
) -> InferResponse:
    """The V2 response: one element per requested row in every output tensor (quantiles NaN
    without ``bands``; wagons from ``wagon_tonnes`` when given, as in ``v1_response``)."""

    h_max = window.horizon_max
    positions = rows // h_max
    horizons = rows % h_max + 1
    keys = window.series_keys
    n = len(rows)
    values: dict[str, Any] = {
        "origin_station": [keys[p][0] for p in positions.tolist()],
        "destination_station": [keys[p][1] for p in positions.tolist()],
        "cargo_type": [keys[p][2] for p in positions.tolist()],
        "target_date": [window.dates[h] for h in horizons.tolist()],
        "origin_date": [window.origin_date] * n,
        "horizon": horizons.astype(np.int64),
        "tonnes": np.asarray(tonnes, dtype=np.float64),
        "wagons": wagons_for(
            tonnes if wagon_tonnes is None else wagon_tonnes, window.capacity[positions]
        ),
    }
    for column in V2_OUTPUTS:
        if column.startswith("tonnes_p"):
            band = (bands or {}).get(column)
            values[column] = np.full(n, np.nan) if band is None else np.asarray(band, np.float64)
    outputs = [
        InferOutput(name=name, shape=[n], datatype=datatype, data=values[name])
        for name, datatype in V2_OUTPUTS.items()
    ]
    return InferResponse(
        response_id=request.id or generate_uuid(),
        model_name=model_name,
        model_version=version,
        infer_outputs=outputs,
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )
