"""Request parsing and validation of the predictor (V1 and V2), and the response shapes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from freightml.data.schema import FACT_COLUMNS
from freightml.features.window import HistoryWindow
from freightml.serving.schema import (
    RequestError,
    parse_v1,
    parse_v2,
    v1_response,
    v2_response,
    wagons_for,
)

pytestmark = pytest.mark.unit

ORIGIN = "2025-03-31"
SERIES = [
    ("WSB-001", "OCT-004", "coal", "West Siberian", "October"),
    ("WSB-001", "MOS-002", "oil", "West Siberian", "Moscow"),
    ("MOS-002", "OCT-004", "containers", "Moscow", "October"),
]


def _facts(days: int = 120) -> pd.DataFrame:
    dates = pd.date_range(end=ORIGIN, periods=days, freq="D")
    rows = []
    for i, (o, d, c, ro, rd) in enumerate(SERIES):
        for k, day in enumerate(dates):
            tonnes = 100.0 * (i + 1) + 10 * (k % 7)
            rows.append((day, o, d, ro, rd, c, tonnes, round(tonnes / 60)))
    return pd.DataFrame(rows, columns=list(FACT_COLUMNS))


@pytest.fixture(scope="module")
def window() -> HistoryWindow:
    return HistoryWindow.build(_facts())


def _instance(**over: object) -> dict:
    return {
        "origin_station": "WSB-001",
        "destination_station": "OCT-004",
        "cargo_type": "coal",
        **over,
    }


def _v2(columns: dict[str, list], **kw: object):
    from kserve.protocol.infer_type import InferInput, InferRequest

    inputs = [InferInput(name, [len(v)], "BYTES", data=v) for name, v in columns.items()]
    return InferRequest("freight-volume", inputs, **kw)


def _v2_columns(n: int = 2) -> dict[str, list]:
    return {
        "origin_station": ["WSB-001"] * n,
        "destination_station": ["OCT-004"] * n,
        "cargo_type": ["coal"] * n,
        "target_date": ["2025-04-01", "2025-04-28"][:n],
    }


def _key_rows(window: HistoryWindow, key: tuple[str, str, str], horizons: list[int]) -> list:
    p = window.series_index[key]
    return [p * window.horizon_max + h - 1 for h in horizons]


def test_window_knows_origin_series_and_dates(window: HistoryWindow) -> None:
    assert window.origin_date == ORIGIN
    assert window.n_series == 3 and len(window.features) == 3 * 28
    assert window.dates[1] == "2025-04-01" and window.dates[28] == "2025-04-28"
    assert window.stations == {"WSB-001", "OCT-004", "MOS-002"}


def test_v1_dates_and_horizon_map_to_feature_rows_in_request_order(window) -> None:
    body = {
        "instances": [
            _instance(dates=["2025-04-05", "2025-04-01", "2025-04-05"]),
            _instance(origin_station="MOS-002", cargo_type="containers", horizon=3),
        ]
    }
    rows = parse_v1(body, window)
    expected = _key_rows(window, ("WSB-001", "OCT-004", "coal"), [5, 1, 5]) + _key_rows(
        window, ("MOS-002", "OCT-004", "containers"), [1, 2, 3]
    )
    assert rows.tolist() == expected
    features = window.features.iloc[rows]
    assert features["horizon"].tolist() == [5, 1, 5, 1, 2, 3]
    assert features["target_date"].dt.strftime("%Y-%m-%d").tolist()[:2] == [
        "2025-04-05",
        "2025-04-01",
    ]


def test_v1_accepts_raw_json_bytes(window) -> None:
    body = (
        b'{"instances": [{"origin_station": "WSB-001", "destination_station": "OCT-004", '
        b'"cargo_type": "coal", "horizon": 1}]}'
    )
    assert len(parse_v1(body, window)) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not JSON"),
        ([1, 2], "request body is a JSON array"),
        ({"instance": []}, 'has no "instances"'),
        ({"instances": []}, '"instances" must be a non-empty list'),
        ({"instances": {"a": 1}}, '"instances" must be a non-empty list'),
        ({"instances": ["x"]}, r"instances\[0\] is a JSON string, expected an object"),
        ({"instances": [_instance(horizon=1, horizont=2)]}, r"unknown field\(s\) \['horizont'\]"),
        (
            {"instances": [{"origin_station": "WSB-001", "cargo_type": "coal", "horizon": 1}]},
            "missing the field 'destination_station'",
        ),
        (
            {"instances": [_instance(origin_station="XXX-999", horizon=1)]},
            "unknown origin_station 'XXX-999'",
        ),
        (
            {"instances": [_instance(destination_station="NOPE", horizon=1)]},
            "unknown destination_station 'NOPE'",
        ),
        ({"instances": [_instance(cargo_type="sand", horizon=1)]}, "unknown cargo_type 'sand'"),
        (
            {"instances": [_instance(cargo_type="grain", horizon=1)]},
            "no facts of cargo_type 'grain'",
        ),
        (
            {"instances": [_instance(destination_station="WSB-001", horizon=1)]},
            "no history for series WSB-001 -> WSB-001 coal",
        ),
        (
            {"instances": [_instance(origin_station=7, horizon=1)]},
            "origin_station must be a non-empty string, got 7",
        ),
        ({"instances": [_instance()]}, 'exactly one of "dates"'),
        ({"instances": [_instance(horizon=2, dates=["2025-04-01"])]}, 'exactly one of "dates"'),
        ({"instances": [_instance(horizon=0)]}, "horizon must be an integer from 1 to 28, got 0"),
        ({"instances": [_instance(horizon=29)]}, "horizon must be an integer from 1 to 28"),
        ({"instances": [_instance(horizon="7")]}, "horizon must be an integer"),
        ({"instances": [_instance(horizon=True)]}, "horizon must be an integer"),
        ({"instances": [_instance(dates=[])]}, "dates must be a non-empty list"),
        ({"instances": [_instance(dates="2025-04-01")]}, "dates must be a non-empty list"),
        (
            {"instances": [_instance(dates=["2025-04-01", "01/04/2025"])]},
            r"dates\[1\]: '01/04/2025' is not a date; expected YYYY-MM-DD",
        ),
        ({"instances": [_instance(dates=[20250401])]}, "is a number, expected a string"),
        (
            {"instances": [_instance(dates=[ORIGIN])]},
            "date 2025-03-31 is not after the forecast origin 2025-03-31",
        ),
        ({"instances": [_instance(dates=["2024-01-01"])]}, "is not after the forecast origin"),
        (
            {"instances": [_instance(dates=["2025-04-29"])]},
            r"2025-04-29 is 29 days after the forecast origin 2025-03-31; the limit is 28 days",
        ),
    ],
)
def test_v1_bad_requests_say_what_is_wrong(window, body, message) -> None:
    with pytest.raises(RequestError, match=message):
        parse_v1(body, window)


def test_cargo_domain_comes_from_configuration() -> None:
    """The cargo domain is data.known_cargo_types (real-data style bands here), or none."""
    facts = _facts()
    bands = HistoryWindow.build(facts, known_cargo_types=["coal", "long_haul", "short_haul"])
    with pytest.raises(RequestError, match="unknown cargo_type 'grain'; known cargo types: "):
        parse_v1({"instances": [_instance(cargo_type="grain", horizon=1)]}, bands)
    with pytest.raises(RequestError, match="no facts of cargo_type 'long_haul' in the history"):
        parse_v1({"instances": [_instance(cargo_type="long_haul", horizon=1)]}, bands)
    open_domain = HistoryWindow.build(facts, known_cargo_types=None)
    with pytest.raises(RequestError, match=r"no facts of cargo_type 'sand' .*with facts: coal"):
        parse_v1({"instances": [_instance(cargo_type="sand", horizon=1)]}, open_domain)


def test_v1_errors_name_the_instance(window) -> None:
    body = {"instances": [_instance(horizon=1), _instance(origin_station="ZZZ", horizon=1)]}
    with pytest.raises(RequestError, match=r"^instances\[1\]: unknown origin_station 'ZZZ'"):
        parse_v1(body, window)


def test_row_limit(window) -> None:
    body = {"instances": [_instance(horizon=28)] * 4}
    assert len(parse_v1(body, window, max_rows=112)) == 112
    with pytest.raises(RequestError, match="asks for 140 forecast rows; the limit is 112"):
        parse_v1({"instances": [_instance(horizon=28)] * 5}, window, max_rows=112)


def test_bad_request_is_kserve_invalid_input(window) -> None:
    from kserve.errors import InvalidInput

    with pytest.raises(InvalidInput):
        parse_v1({}, window)


def test_wagons_round_like_the_facts_and_any_load_needs_one() -> None:
    tonnes = np.array([0.0, 0.2, 34.0, 35.0, 139.0])
    assert wagons_for(tonnes, np.full(5, 69.5)).tolist() == [0, 1, 1, 1, 2]


def test_v1_response_has_one_prediction_per_row(window) -> None:
    rows = parse_v1(
        {
            "instances": [
                _instance(dates=["2025-04-02"]),
                _instance(
                    origin_station="WSB-001",
                    destination_station="MOS-002",
                    cargo_type="oil",
                    horizon=1,
                ),
            ]
        },
        window,
    )
    out = v1_response(window, rows, np.array([139.0, 600.0]), "freight-volume", "3")
    assert out["model_name"] == "freight-volume" and out["model_version"] == "3"
    assert out["predictions"] == [
        {
            "origin_station": "WSB-001",
            "destination_station": "OCT-004",
            "cargo_type": "coal",
            "origin_date": ORIGIN,
            "date": "2025-04-02",
            "horizon": 2,
            "tonnes": 139.0,
            "wagons": 2,
        },
        {
            "origin_station": "WSB-001",
            "destination_station": "MOS-002",
            "cargo_type": "oil",
            "origin_date": ORIGIN,
            "date": "2025-04-01",
            "horizon": 1,
            "tonnes": 600.0,
            "wagons": 10,
        },
    ]


def test_v2_rows_and_response_tensors(window) -> None:
    request = _v2(_v2_columns(), request_id="req-1")
    rows = parse_v2(request, window)
    assert rows.tolist() == _key_rows(window, ("WSB-001", "OCT-004", "coal"), [1, 28])
    response = v2_response(request, window, rows, np.array([10.5, 70.0]), "freight-volume", "3")
    body, _ = response.to_rest()
    assert body["id"] == "req-1" and body["model_version"] == "3"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["target_date"] == {
        "name": "target_date",
        "shape": [2],
        "datatype": "BYTES",
        "data": ["2025-04-01", "2025-04-28"],
    }
    assert outputs["tonnes"]["datatype"] == "FP64" and outputs["tonnes"]["data"] == [10.5, 70.0]
    assert outputs["wagons"]["datatype"] == "INT64" and outputs["wagons"]["data"] == [1, 1]
    assert outputs["horizon"]["data"] == [1, 28]
    assert outputs["origin_date"]["data"] == [ORIGIN, ORIGIN]


def test_v2_accepts_bytes_and_n_by_1_shapes(window) -> None:
    from kserve.protocol.infer_type import InferInput, InferRequest

    cols = _v2_columns()
    inputs = [
        InferInput(n, [2, 1], "BYTES", data=[[v.encode()] for v in vals])
        for n, vals in cols.items()
    ]
    assert len(parse_v2(InferRequest("m", inputs), window)) == 2


def test_v2_binary_outputs_round_trip(window) -> None:
    from kserve.protocol.infer_type import InferResponse

    request = _v2(_v2_columns(), parameters={"binary_data_output": True})
    rows = parse_v2(request, window)
    raw, json_length = v2_response(request, window, rows, np.array([1.0, 2.0]), "m", "1").to_rest()
    assert isinstance(raw, bytes) and json_length
    decoded = InferResponse.from_bytes(raw, json_length)
    assert decoded.get_output_by_name("tonnes").as_numpy().tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("target_date"), r"missing input\(s\) \['target_date'\]"),
        (lambda c: c.update(origin_station=["WSB-001"]), "inputs must have the same length"),
        (lambda c: c.update(extra=["x", "y"]), "unknown input 'extra'"),
        (
            lambda c: c.update(target_date=["2025-04-01", "2025-05-30"]),
            r"row 1: date 2025-05-30 is 60 days after the forecast origin",
        ),
        (lambda c: c.update(cargo_type=["coal", "sand"]), "row 1: unknown cargo_type 'sand'"),
        (lambda c: [v.clear() for v in c.values()], "the inputs are empty"),
    ],
)
def test_v2_bad_requests_say_what_is_wrong(window, mutate, message) -> None:
    cols = _v2_columns()
    mutate(cols)
    with pytest.raises(RequestError, match=message):
        parse_v2(_v2(cols), window)


def test_v2_rejects_wrong_datatype_shape_and_outputs(window) -> None:
    from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

    cols = _v2_columns()
    inputs = [InferInput(n, [2], "BYTES", data=v) for n, v in cols.items()]
    inputs[0] = InferInput("origin_station", [2], "FP32", data=[1.0, 2.0])
    with pytest.raises(RequestError, match="'origin_station' has datatype FP32; expected BYTES"):
        parse_v2(InferRequest("m", inputs), window)
    inputs[0] = InferInput("origin_station", [3], "BYTES", data=["WSB-001"] * 2)
    with pytest.raises(RequestError, match=r"has shape \[3\] and 2 values"):
        parse_v2(InferRequest("m", inputs), window)
    good = _v2(cols, request_outputs=[RequestedOutput("volume")])
    with pytest.raises(RequestError, match="unknown output 'volume' requested"):
        parse_v2(good, window)
