"""FreightPredictor in-process: a tiny real GlobalGBM, V1/V2 forecasts, loading errors,
champion reloads, history refreshes, metrics and CloudEvents."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from freightml.collector.app import create_app
from freightml.collector.inferences import InferenceStore
from freightml.data.synthetic import generate
from freightml.domain import REQUEST_EVENT_TYPE as REQUEST_TYPE
from freightml.domain import RESPONSE_EVENT_TYPE as RESPONSE_TYPE
from freightml.features.build import build_examples, build_inference_frame
from freightml.features.levels import adjust_levels, adjustments_of
from freightml.features.window import HistorySource, HistoryUnavailable
from freightml.models import make_model
from freightml.serving.events import CloudEventSender
from freightml.serving.model_source import LoadedModel, LocalModel, ModelNotAvailable
from freightml.serving.predictor import FreightPredictor, Tuning
from freightml.serving.schema import RequestError
from freightml.serving.scoring import make_scorer
from freightml.store import Store
from helpers import save_model, uvicorn_in_thread

pytestmark = pytest.mark.unit

KEY = ["origin_station", "destination_station", "cargo_type"]


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    return generate("small")


@pytest.fixture(scope="module")
def model(facts: pd.DataFrame) -> Any:
    return make_model("gbm", {"max_iter": 30}).fit(build_examples(facts, horizons_per_origin=7))


@pytest.fixture(scope="module")
def model_dir(model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:

    path = tmp_path_factory.mktemp("serving") / "model"
    save_model(model, path)
    return path


class Versions:
    """A model source whose 'alias' the test moves; a version may be broken."""

    follows = True

    def __init__(self, models: dict[str, Any], current: str) -> None:
        self.models, self.current = models, current

    def describe(self) -> str:
        return "test versions"

    def current_version(self) -> str:
        return self.current

    def load(self, version: str | None = None) -> LoadedModel:
        version = version or self.current
        model = self.models[version]
        if isinstance(model, Exception):
            raise model
        return LoadedModel(model, version, f"test:{version}")


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, {"model_name": "freight-volume", **labels}) or 0.0


def _call(predictor: FreightPredictor, body: Any, headers: dict | None = None) -> Any:
    async def go():
        try:
            response, _ = await predictor(body, headers or {})
        finally:
            if predictor.events is not None:
                assert await predictor.events.drain()
        return response

    return asyncio.run(go())


@pytest.fixture
def predictor(model_dir: Path, facts: pd.DataFrame):
    p = FreightPredictor(LocalModel(model_dir, version="7"), HistorySource(facts))
    p.load()
    yield p
    p.stop_engine()


def _series(predictor: FreightPredictor, i: int = 0) -> tuple[str, str, str]:
    return predictor.state.window.series_keys[i]


def test_v1_forecasts_equal_the_model_on_freshly_built_features(predictor, model, facts) -> None:
    assert predictor.ready and predictor.model_version == "7"
    window = predictor.state.window
    (o, d, c), (o2, d2, c2) = _series(predictor, 0), _series(predictor, 9)
    body = {
        "instances": [
            {
                "origin_station": o,
                "destination_station": d,
                "cargo_type": c,
                "dates": [window.dates[3], window.dates[28]],
            },
            {"origin_station": o2, "destination_station": d2, "cargo_type": c2, "horizon": 2},
        ]
    }
    out = _call(predictor, body)
    assert out["model_name"] == "freight-volume" and out["model_version"] == "7"
    got = [(p["origin_station"], p["horizon"], p["date"]) for p in out["predictions"]]
    assert got == [
        (o, 3, window.dates[3]),
        (o, 28, window.dates[28]),
        (o2, 1, window.dates[1]),
        (o2, 2, window.dates[2]),
    ]
    series = pd.DataFrame([(o, d, c)], columns=KEY)
    expected = model.predict(build_inference_frame(facts, window.origin, [3, 28], series))
    np.testing.assert_allclose([p["tonnes"] for p in out["predictions"][:2]], expected, rtol=1e-9)
    assert all(p["origin_date"] == str(facts["date"].max().date()) for p in out["predictions"])
    assert all(p["wagons"] >= 1 for p in out["predictions"] if p["tonnes"] > 0)


def test_v2_forecasts_match_v1(predictor) -> None:
    from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

    (o, d, c), window = _series(predictor, 2), predictor.state.window
    cols = {
        "origin_station": [o] * 2,
        "destination_station": [d] * 2,
        "cargo_type": [c] * 2,
        "target_date": [window.dates[1], window.dates[14]],
    }
    request = InferRequest(
        "freight-volume",
        [InferInput(n, [2], "BYTES", data=v) for n, v in cols.items()],
        request_id="r1",
    )
    response = _call(predictor, request)
    assert isinstance(response, InferResponse) and response.model_version == "7"
    v1 = _call(
        predictor,
        {
            "instances": [
                {
                    "origin_station": o,
                    "destination_station": d,
                    "cargo_type": c,
                    "dates": [window.dates[1], window.dates[14]],
                }
            ]
        },
    )
    tonnes = response.get_output_by_name("tonnes").data
    np.testing.assert_allclose(tonnes, [p["tonnes"] for p in v1["predictions"]])
    assert list(response.get_output_by_name("wagons").data) == [
        p["wagons"] for p in v1["predictions"]
    ]


def test_fast_scorer_equals_model_predict_on_every_row(predictor, model) -> None:
    state = predictor.state
    assert state.scorer.kind == "pre-encoded trees"
    rows = np.arange(len(state.window.features))
    fast = predictor._batcher.call(state.scorer.predict, rows)
    np.testing.assert_allclose(fast, model.predict(state.window.features), rtol=1e-12)


@pytest.mark.parametrize("target_base", ["weekday_level", "seasonal_naive"])
def test_fast_scorer_adds_the_target_base(facts, target_base) -> None:
    examples = build_examples(facts, horizons_per_origin=7)
    model = make_model("gbm", {"max_iter": 20, "target_base": target_base}).fit(examples)
    features = build_inference_frame(facts, facts["date"].max())
    scorer = make_scorer(model, features)
    assert scorer.kind == "pre-encoded trees"  # not the fallback after a disagreement
    rows = np.arange(len(features))
    np.testing.assert_allclose(scorer.predict(rows), model.predict(features), rtol=1e-12)


def test_other_models_are_served_through_their_own_predict(facts, model_dir) -> None:
    naive = make_model("seasonal_naive").fit(build_examples(facts.tail(20000)))
    p = FreightPredictor(Versions({"1": naive}, "1"), HistorySource(facts))
    p.load()
    assert p.state.scorer.kind == "model.predict"
    (o, d, c) = _series(p)
    out = _call(
        p,
        {
            "instances": [
                {"origin_station": o, "destination_station": d, "cargo_type": c, "horizon": 7}
            ]
        },
    )
    expected = naive.predict(
        build_inference_frame(
            facts, p.state.window.origin, list(range(1, 8)), pd.DataFrame([(o, d, c)], columns=KEY)
        )
    )
    np.testing.assert_allclose([x["tonnes"] for x in out["predictions"]], expected, rtol=1e-9)
    p.stop_engine()


def test_bad_requests_raise_request_errors_and_are_counted(predictor) -> None:
    before = _sample(
        "freightml_serving_requests_total", {"protocol": "v1", "outcome": "bad_request"}
    )
    with pytest.raises(RequestError, match="unknown origin_station 'NOWHERE'"):
        _call(
            predictor,
            {
                "instances": [
                    {
                        "origin_station": "NOWHERE",
                        "destination_station": "X",
                        "cargo_type": "coal",
                        "horizon": 1,
                    }
                ]
            },
        )
    after = _sample(
        "freightml_serving_requests_total", {"protocol": "v1", "outcome": "bad_request"}
    )
    assert after == before + 1


def test_metrics_count_requests_rows_and_the_served_version(predictor) -> None:
    (o, d, c) = _series(predictor)
    ok = {"protocol": "v1", "outcome": "ok"}
    rows, reqs = (
        _sample("freightml_serving_forecasts_total", {"protocol": "v1"}),
        _sample("freightml_serving_requests_total", ok),
    )
    _call(
        predictor,
        {
            "instances": [
                {"origin_station": o, "destination_station": d, "cargo_type": c, "horizon": 5}
            ]
        },
    )
    assert _sample("freightml_serving_forecasts_total", {"protocol": "v1"}) == rows + 5
    assert _sample("freightml_serving_requests_total", ok) == reqs + 1
    assert _sample("freightml_serving_model_info", {"version": "7"}) == 1
    last = predictor.state.window.origin.timestamp()
    assert _sample("freightml_serving_history_last_date_seconds", {}) == last


def test_a_missing_model_fails_loudly(tmp_path: Path, facts) -> None:
    p = FreightPredictor(LocalModel(tmp_path / "absent"), HistorySource(facts))
    with pytest.raises(ModelNotAvailable, match=r"no MLflow model at .*absent.*does not exist"):
        p.load()
    assert not p.ready
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailable, match="has no MLmodel file"):
        LocalModel(tmp_path / "empty").load()


def test_a_missing_champion_alias_fails_loudly(tmp_path: Path) -> None:
    from freightml.serving.model_source import RegistryModel

    source = RegistryModel.from_uri(
        "models:/freight-volume@champion", f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    with pytest.raises(
        ModelNotAvailable,
        match="no version of registered model 'freight-volume' has the alias 'champion'",
    ):
        source.load()
    with pytest.raises(ValueError, match="is not models:/<name>@<alias>"):
        RegistryModel.from_uri("models:/", "sqlite://")


def test_missing_history_fails_loudly(model_dir: Path, tmp_path: Path) -> None:
    p = FreightPredictor(LocalModel(model_dir), HistorySource(tmp_path / "facts.parquet"))
    with pytest.raises(HistoryUnavailable, match="facts.parquet"):
        p.load()
    assert not p.ready


def test_reload_swaps_versions_and_keeps_serving_when_a_load_fails(model, facts) -> None:
    class Unfit:
        def predict(self, frame):
            raise ValueError("wrong features")

    source = Versions(
        {"1": model, "2": model, "3": OSError("artifact is corrupt"), "4": Unfit()}, "1"
    )
    p = FreightPredictor(source, HistorySource(facts), retry_failed_seconds=3600)
    p.load()
    assert p.reload_model() is False  # nothing moved
    ok, failed = ({"outcome": "success"}, {"outcome": "failure"})
    base_ok, base_failed = (
        _sample("freightml_serving_model_reloads_total", ok),
        _sample("freightml_serving_model_reloads_total", failed),
    )

    source.current = "2"
    assert p.reload_model() is True and p.model_version == "2"
    assert _sample("freightml_serving_model_info", {"version": "2"}) == 1
    assert _sample("freightml_serving_model_info", {"version": "1"}) == 0

    source.current = "3"
    assert p.reload_model() is False and p.model_version == "2"
    assert p.reload_model() is False  # not retried within retry_failed_seconds
    source.current = "4"  # loads, but cannot score the window: never swapped in
    assert p.reload_model() is False and p.model_version == "2"
    assert _sample("freightml_serving_model_reloads_total", ok) == base_ok + 1
    assert _sample("freightml_serving_model_reloads_total", failed) == base_failed + 2
    (o, d, c) = _series(p)
    out = _call(
        p,
        {
            "instances": [
                {"origin_station": o, "destination_station": d, "cargo_type": c, "horizon": 1}
            ]
        },
    )
    assert out["model_version"] == "2"
    p.stop_engine()


def test_refresh_history_moves_the_origin_when_facts_arrive(model, facts) -> None:
    last = facts["date"].max()
    current = {"facts": facts[facts["date"] <= last - pd.Timedelta(days=7)]}
    p = FreightPredictor(Versions({"1": model}, "1"), HistorySource(lambda: current["facts"]))
    p.load()
    assert p.state.window.origin == last - pd.Timedelta(days=7)
    assert p.refresh_history() is False  # same facts
    current["facts"] = facts
    assert p.refresh_history() is True
    assert p.state.window.origin == last
    assert _sample("freightml_serving_history_last_date_seconds", {}) == last.timestamp()
    current["facts"] = facts.iloc[:0]
    assert p.refresh_history() is False and p.state.window.origin == last  # kept
    p.stop_engine()


def _lane(facts: pd.DataFrame, day: pd.Timestamp, origin: str, destination: str) -> pd.DataFrame:
    """One fact of a lane no established series uses, dated ``day``."""
    row = facts.iloc[[0]].copy()
    row["date"] = day
    row["origin_station"], row["destination_station"] = origin, destination
    return row


def test_one_new_lane_fact_moves_no_forecast_of_the_established_series(model, facts) -> None:
    """Finding 1: a single fact dated after the network's last day for a new lane moved
    the origin, and every established series answered 400 after the next refresh."""
    last = facts["date"].max()
    current = {"facts": facts}
    p = FreightPredictor(Versions({"1": model}, "1"), HistorySource(lambda: current["facts"]))
    p.load()
    try:
        key = _series(p, 3)
        body = {"instances": [dict(zip(KEY, key, strict=True)) | {"horizon": 1}]}
        before = _call(p, body)["predictions"]
        for day in (last + pd.Timedelta(days=6), last + pd.Timedelta(days=3650)):
            current["facts"] = pd.concat([facts, _lane(facts, day, "ZZZ-001", "ZZZ-002")])
            p.refresh_history()
            assert p.state.window.origin == last  # the quorum of series did not move
            assert _call(p, body)["predictions"] == before
        # a lane dated inside the window is young: answered 400 naming its age
        young = pd.concat([facts, _lane(facts, last - pd.Timedelta(days=2), "ZZZ-001", "ZZZ-002")])
        current["facts"] = young
        assert p.refresh_history() is True
        assert p.state.window.origin == last
        new = {"origin_station": "ZZZ-001", "destination_station": "ZZZ-002"}
        cargo = str(facts.iloc[0]["cargo_type"])
        with pytest.raises(RequestError, match=r"facts only since .*28 days of history"):
            _call(p, {"instances": [new | {"cargo_type": cargo, "horizon": 1}]})
        assert _call(p, body)["predictions"] == before
    finally:
        p.stop_engine()


def test_a_failing_refresh_keeps_the_window_turns_unready_when_stale_and_heals() -> None:
    """Finding 1: after the facts became unreadable only a restart recovered."""
    facts = generate("small")
    model = make_model("gbm", {"max_iter": 10}).fit(build_examples(facts, horizons_per_origin=7))
    current: dict[str, Any] = {"facts": facts}

    def read() -> pd.DataFrame:
        if isinstance(current["facts"], Exception):
            raise current["facts"]
        return current["facts"]

    p = FreightPredictor(Versions({"1": model}, "1"), HistorySource(read), stale_seconds=3.0)
    p.load()
    try:
        assert asyncio.run(p.healthy())  # read just now
        failures = _sample("freightml_serving_history_refreshes_total", {"outcome": "failure"})
        current["facts"] = facts.iloc[:0]  # every fact withdrawn
        assert p.refresh_history() is False
        current["facts"] = OSError("store down")
        p._history_stamp = None
        assert p.refresh_history() is False
        assert (
            _sample("freightml_serving_history_refreshes_total", {"outcome": "failure"})
            == failures + 2
        )
        assert p.state.window.origin == facts["date"].max()  # the last good window answers
        key = _series(p, 0)
        body = {"instances": [dict(zip(KEY, key, strict=True)) | {"horizon": 2}]}
        answered = _call(p, body)["predictions"]
        assert answered and {a["origin_date"] for a in answered} == {p.state.window.origin_date}
        p._last_good_read -= 3.0  # as if the last good read were 3 s older
        assert p.history_stale and not asyncio.run(p.healthy())
        current["facts"] = facts[facts["date"] < facts["date"].max()]
        assert p.refresh_history() is True  # the next good read heals it, no restart
        assert asyncio.run(p.healthy())
    finally:
        p.stop_engine()


@pytest.fixture
def collector(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'collector.db'}")
    with uvicorn_in_thread(create_app(store)) as url:
        yield f"{url}/events", store
    store.close()


def test_cloudevents_mirror_kserves_payload_logger(model_dir, facts, collector) -> None:
    url, store = collector
    events = CloudEventSender(url, namespace="ns1", source="http://me/")
    p = FreightPredictor(LocalModel(model_dir, version="7"), HistorySource(facts), events=events)
    p.load()
    (o, d, c) = _series(p)
    body = {
        "instances": [
            {"origin_station": o, "destination_station": d, "cargo_type": c, "horizon": 2}
        ]
    }
    response = _call(p, body, {"ce-id": "abc-1"})
    with pytest.raises(RequestError):
        _call(p, {"instances": []}, {"x-request-id": "bad-1"})

    # the inference id is the predictor's; the client's id is kept as its correlation id
    (inference_id,) = InferenceStore(store).by_correlation("abc-1")
    assert inference_id != "abc-1" and InferenceStore(store).get("abc-1") is None
    found = InferenceStore(store).get(inference_id)
    assert found["complete"]
    assert found["request"]["attributes"]["correlationid"] == "abc-1"
    assert found["request"]["event_type"] == REQUEST_TYPE
    assert found["response"]["event_type"] == RESPONSE_TYPE
    assert found["request"]["body"] == body
    assert found["response"]["body"] == response
    assert [f["tonnes"] for f in found["forecasts"]] == pytest.approx(
        [row["tonnes"] for row in response["predictions"]]
    )
    attrs = found["request"]["attributes"]
    assert attrs["specversion"] == "1.0" and attrs["source"] == "http://me/"
    assert attrs["inferenceservicename"] == "freight-volume"
    assert attrs["component"] == "predictor" and attrs["namespace"] == "ns1"
    assert attrs["endpoint"] == "default" and attrs["datacontenttype"] == "application/json"
    assert attrs["time"].endswith("Z")
    (bad_id,) = InferenceStore(store).by_correlation("bad-1")
    bad = InferenceStore(store).get(bad_id)  # a bad request is logged, without a response
    assert bad["request"]["body"] == {"instances": []} and bad["response"] is None
    p.stop_engine()


def test_cloudevent_failures_never_fail_a_forecast(model_dir, facts, tmp_path) -> None:
    with uvicorn_in_thread(create_app(Store(f"sqlite:///{tmp_path / 'gone.db'}"))) as url:
        pass  # nothing listens there any more
    events = CloudEventSender(
        f"{url}/events", inference_service="test-down", max_attempts=2, backoff_s=0.01
    )
    p = FreightPredictor(LocalModel(model_dir), HistorySource(facts), events=events)
    p.load()
    (o, d, c) = _series(p)

    async def go():
        out, _ = await p(
            {
                "instances": [
                    {"origin_station": o, "destination_station": d, "cargo_type": c, "horizon": 1}
                ]
            },
            {},
        )
        await events.aclose()
        return out

    out = asyncio.run(go())
    assert [r["horizon"] for r in out["predictions"]] == [1]
    assert (
        REGISTRY.get_sample_value(
            "freightml_serving_cloudevents_total", {"model_name": "test-down", "outcome": "dropped"}
        )
        == 2
    )
    p.stop_engine()


def test_a_model_error_at_request_time_is_a_500_with_the_reason_and_counted(model, facts) -> None:
    from kserve.errors import InferenceError, inference_error_handler

    broken = copy.deepcopy(model)  # a real GlobalGBM, broken after it was loaded and checked
    p = FreightPredictor(
        Versions({"1": broken}, "1"), HistorySource(facts), tuning=Tuning(fast_scorer=False)
    )
    p.load()
    broken.feature_columns_ = [*broken.feature_columns_, "congestion_index"]
    errors = {"protocol": "v1", "outcome": "error"}
    before = _sample("freightml_serving_requests_total", errors)
    (o, d, c) = _series(p)
    with pytest.raises(InferenceError) as caught:
        _call(
            p,
            {
                "instances": [
                    {"origin_station": o, "destination_station": d, "cargo_type": c, "horizon": 1}
                ]
            },
        )
    reason = (
        "the model failed to forecast: ValueError: GlobalGBM: examples lack columns "
        "['congestion_index']; use build_examples"
    )
    assert str(caught.value) == reason
    assert _sample("freightml_serving_requests_total", errors) == before + 1
    answer = asyncio.run(inference_error_handler(None, caught.value))  # KServe's own handler
    assert (answer.status_code, json.loads(answer.body)) == (500, {"error": reason})
    p.stop_engine()


def test_a_version_with_level_adjustments_is_served_from_its_restated_history(model, facts) -> None:
    """v2 reads coal's history x2 (its level_adjustments): after the reload the window is
    rebuilt with them, so coal's forecasts are v2 on the restated facts (about double) and
    the rest stay; a history refresh keeps them; back on v1 the window is raw again."""
    after_all = (facts["date"].max() + pd.Timedelta(days=1)).date()
    v2 = copy.deepcopy(model)
    v2.level_adjustments = [f"cargo_type=coal before {after_all} x2"]
    current = {"facts": facts}
    source = Versions({"1": model, "2": v2}, "1")
    p = FreightPredictor(source, HistorySource(lambda: current["facts"]))
    p.load()
    keys = p.state.window.series_keys
    coal = next(i for i, k in enumerate(keys) if k[2] == "coal")
    other = next(i for i, k in enumerate(keys) if k[2] != "coal")

    def tonnes() -> list[float]:
        body = {
            "instances": [
                dict(zip(KEY, keys[i], strict=True)) | {"dates": [p.state.window.dates[5]]}
                for i in (coal, other)
            ]
        }
        return [row["tonnes"] for row in _call(p, body)["predictions"]]

    raw = tonnes()
    source.current = "2"
    assert p.reload_model() is True and p.model_version == "2"
    assert p.state.window.level_adjustments == adjustments_of(v2)
    restated = adjust_levels(facts, adjustments_of(v2))
    series = pd.DataFrame([keys[coal]], columns=KEY)
    expected = v2.predict(build_inference_frame(restated, p.state.window.origin, [5], series))
    np.testing.assert_allclose(tonnes(), [expected[0], raw[1]], rtol=1e-9)
    assert 1.8 < expected[0] / raw[0] < 2.2
    current["facts"] = facts.iloc[:-1]  # revised facts: the window is rebuilt for v2
    assert p.refresh_history() is True
    assert p.state.window.level_adjustments == adjustments_of(v2)
    source.current = "1"
    assert p.reload_model() is True and p.state.window.level_adjustments == ()
    p.stop_engine()


@pytest.fixture(scope="module")
def portfolio(facts: pd.DataFrame) -> Any:
    """A blend of a tiny GBM and the seasonal window average, with planted intervals."""
    from freightml.models.intervals import calibrate

    examples = build_examples(facts, horizons_per_origin=7)
    known = examples.loc[examples["y"].notna()]
    model = make_model(
        "portfolio",
        {
            "ml": "gbm",
            "ml_params": {"max_iter": 30},
            "statistical": "seasonal_window_average",
            "ml_weight": 0.6,
        },
    ).fit(known)
    rng = np.random.default_rng(0)
    residuals = known.sample(20_000, random_state=0).assign(
        yhat=lambda f: f["y"] + rng.normal(0, 0.2, len(f)) * f["scale"]
    )
    return model.set_intervals(calibrate(residuals, "cargo_type"))


def test_a_portfolio_answers_its_blend_with_calibrated_quantiles(
    portfolio, facts, tmp_path
) -> None:
    """The statistical part is fitted when the history is built; a request reads the
    precomputed forecasts and quantiles, and wagons follow a requested quantile."""
    from freightml.models.intervals import quantile_column
    from freightml.models.statistical import add_statistical
    from freightml.models.wagons import wagons_for
    from freightml.serving.schema import ANSWERED_LEVELS

    save_model(portfolio, tmp_path / "model")
    p = FreightPredictor(LocalModel(tmp_path / "model", version="3"), HistorySource(facts))
    p.load()
    try:
        window = p.state.window
        assert window.statistical == ("seasonal_window_average",)
        assert p.state.scorer.kind == "precomputed table"
        key = _series(p, 5)
        body = {"instances": [dict(zip(KEY, key, strict=True)) | {"horizon": 28}]}
        out = _call(p, body)["predictions"]
        features = build_inference_frame(window.panel, window.origin, range(1, 29))
        features = add_statistical(
            features, window.panel, ["seasonal_window_average"], horizon_max=28
        )
        rows = features.loc[
            (features[KEY].astype(str).apply(tuple, axis=1) == key).to_numpy()
        ].sort_values("horizon")
        expected = portfolio.predict(rows)
        assert np.allclose([o["tonnes"] for o in out], expected, rtol=1e-9)
        quantiles = portfolio.predict_quantiles(rows)
        for level in ANSWERED_LEVELS:
            column = quantile_column(level)
            assert np.allclose([o[column] for o in out], quantiles[column], rtol=1e-9)
        assert all(o["tonnes_p10"] <= o["tonnes_p50"] <= o["tonnes_p90"] for o in out)
        capacity = window.capacity[window.series_index[key]]
        high = _call(p, {**body, "parameters": {"wagon_quantile": 0.9}})["predictions"]
        assert [o["wagons"] for o in high] == wagons_for(
            quantiles["tonnes_p90"].to_numpy(), np.full(28, capacity)
        ).tolist()
        assert sum(o["wagons"] for o in high) >= sum(o["wagons"] for o in out)
        for bad in (1.5, "high", 0.001):
            with pytest.raises(RequestError, match="wagon_quantile|calibrated levels"):
                _call(p, {**body, "parameters": {"wagon_quantile": bad}})
    finally:
        p.stop_engine()


def test_a_model_without_intervals_refuses_a_wagon_quantile(predictor) -> None:
    body = {"instances": [dict(zip(KEY, _series(predictor), strict=True)) | {"horizon": 2}]}
    out = _call(predictor, body)["predictions"]
    assert "tonnes_p10" not in out[0]
    with pytest.raises(RequestError, match="no calibrated intervals"):
        _call(predictor, {**body, "parameters": {"wagon_quantile": 0.8}})
