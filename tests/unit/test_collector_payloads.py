"""Forecast rows from the predictor's V1 and V2 response bodies."""

from __future__ import annotations

from datetime import date

import pytest

from freightml.collector.payloads import ForecastBodyError, parse_forecast_body

pytestmark = [pytest.mark.unit]


def _v1(n: int = 2, **extra: object) -> dict:
    return {
        "model_name": "freight-volume",
        "model_version": "3",
        "predictions": [
            {
                "origin_station": "NSK",
                "destination_station": "VLD",
                "cargo_type": "coal",
                "origin_date": "2025-12-31",
                "date": f"2026-01-0{h}",
                "horizon": h,
                "tonnes": 800.0 + h,
                "wagons": 12,
                **extra,
            }
            for h in range(1, n + 1)
        ],
    }


def _v2(columns: dict[str, list]) -> dict:
    types = {"tonnes": "FP64", "horizon": "INT64", "wagons": "INT64"}
    return {
        "model_name": "freight-volume",
        "model_version": "3",
        "id": "req-1",
        "outputs": [
            {"name": k, "datatype": types.get(k, "BYTES"), "shape": [len(v)], "data": v}
            for k, v in columns.items()
        ],
    }


V2_COLUMNS = {
    "origin_station": ["NSK", "NSK"],
    "destination_station": ["VLD", "VLD"],
    "cargo_type": ["coal", "coal"],
    "origin_date": ["2025-12-31", "2025-12-31"],
    "date": ["2026-01-01", "2026-01-02"],
    "horizon": [1, 2],
    "tonnes": [801.0, 802.5],
    "wagons": [12, 13],
}


def test_v1_body_gives_one_row_per_prediction() -> None:
    body = parse_forecast_body(_v1())
    assert body is not None
    assert (body.protocol, body.model_name, body.model_version) == ("v1", "freight-volume", "3")
    assert body.rows[1] == {
        "origin_station": "NSK",
        "destination_station": "VLD",
        "cargo_type": "coal",
        "origin_date": date(2025, 12, 31),
        "target_date": date(2026, 1, 2),
        "horizon": 2,
        "tonnes": 802.0,
        "wagons": 12,
        "tonnes_p10": None,
        "tonnes_p90": None,
    }
    # a version with intervals adds its 80% bounds; NaN (a V2 body without them) is none
    with_bands = _v1()
    with_bands["predictions"][0].update(tonnes_p10=700.5, tonnes_p90=float("nan"))
    row = parse_forecast_body(with_bands).rows[0]
    assert (row["tonnes_p10"], row["tonnes_p90"]) == (700.5, None)
    with_bands["predictions"][0]["tonnes_p10"] = "low"
    with pytest.raises(ForecastBodyError, match="forecast 0: tonnes_p10 must be a number"):
        parse_forecast_body(with_bands)


def test_v2_body_gives_the_same_rows_as_v1() -> None:
    body = parse_forecast_body(_v2(V2_COLUMNS))
    assert body is not None and body.protocol == "v2"
    assert [r["tonnes"] for r in body.rows] == [801.0, 802.5]
    assert [r["target_date"] for r in body.rows] == [date(2026, 1, 1), date(2026, 1, 2)]
    assert body.rows[0]["wagons"] == 12 and body.rows[1]["horizon"] == 2


def test_target_date_may_stand_for_date_in_both_protocols() -> None:
    v2 = {("target_date" if k == "date" else k): v for k, v in V2_COLUMNS.items()}
    v1 = _v1()
    for p in v1["predictions"]:
        p["target_date"] = p.pop("date")
    for body in (parse_forecast_body(_v2(v2)), parse_forecast_body(v1)):
        assert body is not None
        assert [r["target_date"] for r in body.rows] == [date(2026, 1, 1), date(2026, 1, 2)]


def test_v2_accepts_n_by_1_shapes_and_missing_optional_columns() -> None:
    columns = {
        k: [[v] for v in vs] for k, vs in V2_COLUMNS.items() if k not in ("horizon", "wagons")
    }
    body = parse_forecast_body(_v2(columns))
    assert body is not None
    assert [r["horizon"] for r in body.rows] == [1, 2]  # target - origin
    assert all(r["wagons"] is None for r in body.rows)


@pytest.mark.parametrize(
    "other",
    [
        {"predictions": [1.5, 2.5]},  # scikit-learn's V1 answer
        {"predictions": [{"label": 1}]},
        {"outputs": [{"name": "output-0", "datatype": "FP32", "shape": [2], "data": [1, 2]}]},
        {"error": "model not ready"},
        [1, 2, 3],
        "text",
        None,
    ],
)
def test_other_bodies_are_not_forecasts(other: object) -> None:
    assert parse_forecast_body(other) is None


def test_empty_predictions_are_a_forecast_body_without_rows() -> None:
    body = parse_forecast_body({"model_name": "m", "predictions": []})
    assert body is not None and body.rows == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_v1(tonnes=float("nan")), "tonnes must be finite"),
        (_v1(tonnes="a lot"), "tonnes must be a number"),
        (_v1(date="next tuesday"), "date must be an ISO date"),
        (_v1(origin_station=""), "origin_station must be 1 to 128 characters"),
        ({"predictions": [_v1()["predictions"][0], {"tonnes": 1.0}]}, "predictions[1] lacks"),
        (_v2({**V2_COLUMNS, "tonnes": [1.0]}), "different lengths"),
    ],
)
def test_malformed_forecast_bodies_name_the_problem(body: dict, message: str) -> None:
    with pytest.raises(ForecastBodyError, match=message.replace("[", r"\[")):
        parse_forecast_body(body)


def test_station_codes_sent_as_numbers_become_strings() -> None:
    body = parse_forecast_body(_v1(n=1, origin_station=2000123, wagons=11.6))
    assert body is not None
    assert body.rows[0]["origin_station"] == "2000123"
    assert body.rows[0]["wagons"] == 12
