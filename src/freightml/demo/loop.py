"""The closed loop on one machine: collect -> monitor -> decide -> retrain -> gate ->
promote -> serve, day by day over simulated days.

`freightml demo --loop` trains a champion on synthetic facts up to a day, serves it with a
real predictor whose payload events land in a real collector, and then replays the days
after it. Each simulated day the predictor is asked for every active series' next 28 days,
the day's facts arrive (from ``shift_day`` on with a level shift in one cargo type and a
region whose stations start loading), monitoring runs over the last 7 days, the
retraining decision is taken, and when it fires the training pipeline runs with the
policy's window choice, the gates decide, and a promoted champion reaches the running
predictor through its alias. The timeline records, per day, the drift, the realised WAPE
of the forecasts made the day before, the decision and the version in service.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

from freightml.collector.service import ingest_facts_file
from freightml.config import Settings, load_settings
from freightml.data.sources import save_facts
from freightml.data.synthetic import SIZES, generate
from freightml.demo.monitor import freightml_service
from freightml.domain import SERIES_KEY
from freightml.features.build import LOOKBACK_DAYS
from freightml.models.gbm import LOSSES, TARGET_BASES
from freightml.models.recursive import RECURSIVE_MODELS
from freightml.monitoring.run import run_monitoring
from freightml.retraining.act import act_on_decision, shift_aware_window
from freightml.retraining.evidence import decide_now
from freightml.retraining.policy import load_policy
from freightml.store import Store

log = logging.getLogger("freightml")

HORIZON = 28  # every request asks for the next 28 days
WINDOW_DAYS = 7  # monitoring window of each simulated day
PLAN_DAYS = 7  # realised WAPE: a day's forecasts made 1-7 days before (a weekly wagon plan)


@dataclass(frozen=True)
class LoopScenario:
    """What the loop simulates; the defaults finish within 10 minutes on 2 cores."""

    size: str = "small"
    # Seed 1: its `small` history (80 series, the new region held out) passes every gate of
    # the methodology; on 80 series a segment gate is close to its limit for some seeds,
    # and then the first champion is never promoted and the loop stops saying so.
    seed: int = 1
    # 13 simulated days: the retrain the shift causes lands on day 7 (the policy's minimum of
    # 7 days of new facts), and its guards (7-day cool-down, 7 new days) rule out another
    days: int = 13  # simulated days after the champion's training window
    shift_day: int = 3  # first simulated day (1 = the day after the window) with the shift
    shift_cargo: str = "coal"
    shift_factor: float = 2.0  # coal doubles (say a new export contract)
    new_region: str = "Far Eastern"  # no series load there before the shift day
    # The loop's recipe (GlobalGBM's loss and target base over the configured parameters).
    # The synthetic default forecasts y / 28-day level, so a doubled series stays
    # under-forecast for weeks whichever version serves; from the weekday level of the last
    # 7 days (weekday_level) the forecasts follow the shift sooner. The absolute error
    # recovers more but fails the bias gate here (docs/retraining.md, "Recovery").
    loss: str = "squared_error"
    target_base: str = "weekday_level"

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.target_base not in TARGET_BASES:
            raise ValueError(
                f"target_base must be one of {', '.join(TARGET_BASES)}, got {self.target_base!r}"
            )
        if not 1 <= self.shift_day < self.days:
            raise ValueError(
                f"shift_day must fall inside the {self.days} simulated days, got {self.shift_day}"
            )
        if self.shift_factor <= 0:
            raise ValueError(f"shift_factor must be > 0, got {self.shift_factor}")


@dataclass(frozen=True)
class LoopFacts:
    """The facts of one loop: the training history and the simulated days after it."""

    history: pd.DataFrame
    later: pd.DataFrame
    origin: date  # the last day of the champion's training window
    shift_date: date


def loop_facts(scenario: LoopScenario) -> LoopFacts:
    """One generator run over the training period and the simulated days, so the later
    days continue the history's noise; the shift and the new region start on
    ``shift_date`` and nowhere before it."""

    base = SIZES[scenario.size]
    origin = base.end
    shift_date = origin + timedelta(days=scenario.shift_day)
    spec = replace(
        base,
        end=origin + timedelta(days=scenario.days),
        level_shift=(shift_date, scenario.shift_factor),
        level_shift_cargo=scenario.shift_cargo,
        new_region=scenario.new_region,
        new_region_from=shift_date,
    )
    facts = generate(spec, seed=scenario.seed)
    after = facts["date"] > pd.Timestamp(origin)
    return LoopFacts(
        history=facts.loc[~after].reset_index(drop=True),
        later=facts.loc[after].reset_index(drop=True),
        origin=origin,
        shift_date=shift_date,
    )


@dataclass
class DayRecord:
    """One row of the timeline."""

    day: int
    date: date
    phase: str  # "before shift" / "shifted"
    version_served: str  # the version that answered the day's requests
    requests: int
    realised_wape: float | None  # of the forecasts for this day made 1-7 days before
    shifted_wape: float | None  # the same, for the shifted cargo type and the new region
    drifted_segments: int  # segments the facts' drift judged drifted
    status: str  # the monitoring snapshot's status
    decision: str  # "retrain" or "no action"
    triggers: str  # the triggers that fired, with their values
    action: str  # what was done: nothing, retrained (version, gates), blocked by a guard
    seconds: float  # wall time of the simulated day


@dataclass
class LoopResult:
    """What `freightml demo --loop` produced."""

    scenario: LoopScenario
    timeline: list[DayRecord] = field(default_factory=list)
    csv_path: Path | None = None
    plot_path: Path | None = None
    seconds: float = 0.0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.timeline])


# -- settings of the loop --------------------------------------------------------------
def loop_settings(
    base: Settings, home: Path, source: Path, model_params: dict[str, Any] | None = None
) -> tuple[Settings, Path]:
    """The loop's own settings (own home, MLflow, store; fast alias and history refresh;
    ``model_params`` over the configured GlobalGBM parameters, the portfolio's only ML
    candidate) written as a YAML file every subprocess reads; returns them and the file."""
    data = base.model_dump(mode="json")
    if model_params:
        if data["model"]["name"] != "gbm":
            raise ValueError(
                f"the loop's recipe sets GlobalGBM parameters, but model.name is "
                f"{data['model']['name']!r}; use model.name gbm"
            )
        data["model"]["params"].update(model_params)
        # the portfolio's ML candidate is the loop's recipe alone (its statistical and
        # blended candidates stay): the default absolute-error recipe fails the bias gate
        # on these 80 series (see LoopScenario.loss). The recursive LightGBM stays out too:
        # with it, v1 is already a blend with it, and the retrained version merely ties
        # v1's recipe refitted on the new window (WAPE 0.2303 vs 0.2301), so the
        # challenger rule rightly keeps v1 and the demo has no switch to show
        data["selection"]["ml_recipes"] = {"gbm": {}}
        data["selection"]["statistical"] = [
            n for n in data["selection"]["statistical"] if n not in RECURSIVE_MODELS
        ]
    data["home"] = str(home.resolve())
    data["data"]["source_uri"] = str(source.resolve())
    data["tracking"]["uri"] = None
    data["collector"]["store_url"] = f"sqlite:///{(home / 'collector.db').resolve()}"
    data["serving"].update(history_uri=None, reload_seconds=1.0, history_seconds=1.0)
    for key in ("methodology_path", "monitoring_path", "retraining_path"):
        if key in data:
            data[key] = str(Path(data[key]).resolve())
    home.mkdir(parents=True, exist_ok=True)
    path = home / "loop.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_settings(path), path


# -- requests ---------------------------------------------------------------------------
def active_series(
    facts: pd.DataFrame, until: date, days: int = 28, min_history_days: int = 28
) -> list[tuple[str, ...]]:
    """Series with volume in the ``days`` days up to ``until`` and a first fact at least
    ``min_history_days`` before it (the predictor's rule), sorted."""
    keys = list(SERIES_KEY)
    recent = facts.loc[
        (facts["date"] > pd.Timestamp(until - timedelta(days=days)))
        & (facts["date"] <= pd.Timestamp(until))
    ]
    volume = recent.groupby(keys, observed=True)["volume_tonnes"].sum()
    first = facts.groupby(keys, observed=True)["date"].min()
    old = first.index[first <= pd.Timestamp(until - timedelta(days=min_history_days))]
    return sorted(tuple(map(str, k)) for k in volume.index[volume > 0].intersection(old))


def _probe_until(
    url: str, model: str, probe: tuple[str, ...], done: Callable[[dict], bool], timeout_s: float
) -> tuple[bool, dict | None]:
    """Ask the predictor for ``probe``'s next day every half second until ``done(answer)``
    holds or ``timeout_s`` passes; returns whether it held and the last answer."""
    body = {"instances": [{**dict(zip(SERIES_KEY, probe, strict=True)), "horizon": 1}]}
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.post(f"{url}/v1/models/{model}:predict", json=body, timeout=30)
            if answer.status_code == 200:
                last = answer.json()
                if done(last):
                    return True, last
        time.sleep(0.5)
    return False, last


def wait_for_origin(url: str, model: str, probe: tuple[str, ...], origin: date, timeout_s=120):
    """Wait until the predictor's history window reaches ``origin`` (it reads the store's
    facts every ``serving.history_seconds``); returns the version answering."""
    ok, last = _probe_until(
        url,
        model,
        probe,
        lambda a: a["predictions"][0]["origin_date"] == origin.isoformat(),
        timeout_s,
    )
    if ok and last is not None:
        return last["model_version"]
    seen = None if last is None else last["predictions"][0]["origin_date"]
    raise RuntimeError(f"the predictor's history did not reach {origin} (last seen: {seen})")


def wait_for_version(url: str, model: str, probe: tuple[str, ...], version: str, timeout_s=120):
    """Wait until the predictor answers with ``version`` (it follows the champion alias
    every ``serving.reload_seconds``)."""
    ok, last = _probe_until(url, model, probe, lambda a: a["model_version"] == version, timeout_s)
    if not ok:
        served = None if last is None else last["model_version"]
        raise RuntimeError(f"the predictor still serves v{served}, not the new champion v{version}")


def ask_day(url: str, model: str, series: list[tuple[str, ...]], day: int) -> pd.DataFrame:
    """One request per series for the next 28 days; the forecasts of the first
    ``PLAN_DAYS`` days with the version that made them."""
    rows: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, key in enumerate(series):
            body = {"instances": [{**dict(zip(SERIES_KEY, key, strict=True)), "horizon": HORIZON}]}
            answer = client.post(
                f"/v1/models/{model}:predict",
                json=body,
                headers={"x-request-id": f"loop-{day}-{i}"},
            )
            if answer.status_code != 200:
                raise RuntimeError(f"request for {key} got {answer.status_code}: {answer.text}")
            payload = answer.json()
            rows.extend(
                {
                    **dict(zip(SERIES_KEY, key, strict=True)),
                    "date": pd.Timestamp(p["date"]),
                    "horizon": p["horizon"],
                    "forecast": p["tonnes"],
                    "version": payload["model_version"],
                }
                for p in payload["predictions"]
                if p["horizon"] <= PLAN_DAYS
            )
    return pd.DataFrame(rows)


def wape(actual: pd.Series, forecast: pd.Series) -> float | None:
    total = float(actual.abs().sum())
    return float((actual - forecast).abs().sum() / total) if total > 0 else None


def realised(forecasts: pd.DataFrame, facts: pd.DataFrame, shifted: list) -> tuple:
    """WAPE of the forecasts made for the facts' day (horizons 1 to ``PLAN_DAYS``, by
    whichever version served them) against its facts (a series with no fact that day
    counts as zero tonnes), overall and on the shifted series."""
    keys = list(SERIES_KEY)
    day = facts["date"].iloc[0] if len(facts) else None
    forecasts = forecasts.loc[forecasts["date"] == day]
    actual = facts[[*keys, "volume_tonnes"]].astype({k: str for k in keys})
    joined = forecasts.merge(actual, on=keys, how="left").fillna({"volume_tonnes": 0.0})
    flag = joined[keys].apply(tuple, axis=1).isin(set(shifted))
    part = joined.loc[flag]
    return (
        wape(joined["volume_tonnes"], joined["forecast"]),
        wape(part["volume_tonnes"], part["forecast"]) if len(part) else None,
    )


# -- the plot ---------------------------------------------------------------------------
def plot_timeline(frame: pd.DataFrame, scenario: LoopScenario, path: Path) -> Path:
    """Realised WAPE per day (all series and the shifted ones) with the shift, the
    decision and the version switch marked, and the means of the shifted days before the
    switch and of the days from it on; drifted segments below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(frame["day"], frame["realised_wape"], marker="o", label="realised WAPE, all series")
    top.plot(
        frame["day"],
        frame["shifted_wape"],
        marker=".",
        linestyle="--",
        label=f"{scenario.shift_cargo} x{scenario.shift_factor} and {scenario.new_region}",
    )
    marks = [(scenario.shift_day, "shift starts", "grey")]
    fired = frame.loc[frame["decision"] == "retrain", "day"]
    if len(fired):
        marks.append((int(fired.iloc[0]), "retraining decided", "red"))
    versions = frame["version_served"]
    switched = frame.loc[versions != versions.iloc[0], "day"]
    if len(switched):
        marks.append((int(switched.iloc[0]), f"v{versions.loc[switched.index[0]]} serves", "green"))
    if len(switched):
        # the means the recovery is judged by: shifted days before the switch, days after it
        first = int(switched.iloc[0])
        spans = [(scenario.shift_day, first - 1), (first, int(frame["day"].max()))]
        for start, end in spans:
            days = frame.loc[frame["day"].between(start, end)]
            for column, colour in (("realised_wape", "tab:blue"), ("shifted_wape", "tab:orange")):
                mean = _mean(days[column])
                if mean is not None:
                    top.hlines(mean, start, end, colors=colour, linewidth=4, alpha=0.35)
                    top.annotate(
                        f"mean {mean:.3f}",
                        (start + 0.15, mean),
                        color=colour,
                        fontsize=8,
                        va="bottom",
                    )
    for day, label, colour in marks:
        for ax in (top, bottom):
            ax.axvline(day, color=colour, linestyle=":", linewidth=1.5)
        top.annotate(
            label,
            (day, 1.0),
            xycoords=("data", "axes fraction"),
            color=colour,
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    top.set_ylabel(f"realised WAPE (horizons 1-{PLAN_DAYS})")
    top.legend(loc="upper left", fontsize=8)
    top.set_title("FreightML closed loop: monitor -> decide -> retrain -> promote -> serve")
    bottom.bar(frame["day"], frame["drifted_segments"], color="tab:orange")
    bottom.set_ylabel("drifted\nsegments")
    bottom.set_xlabel("simulated day after the champion's training window")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- the loop ---------------------------------------------------------------------------
@contextlib.contextmanager
def _services(settings: Settings, config: Path) -> Iterator[str]:
    name = settings.tracking.registered_model
    collector = settings.collector_base_url
    serving = f"http://{settings.serving.host}:{settings.serving.http_port}"
    logs = settings.home / "logs"
    with (
        freightml_service(
            ["collector", "serve", "--config", str(config)],
            f"{collector}/healthz",
            logs / "collector.log",
            env={},
        ),
        freightml_service(
            ["serve", "--config", str(config)],
            f"{serving}/v2/models/{name}/ready",
            logs / "serve.log",
            env={},
        ),
    ):
        yield serving


Say = Callable[[str], None]


def run_loop(
    base: Settings,
    scenario: LoopScenario,
    *,
    home: Path | None = None,
    say: Say = log.info,
    on_day: Callable[[DayRecord], None] | None = None,
) -> LoopResult:
    """Run the closed loop; writes ``timeline.csv`` and ``timeline.png`` under the loop's
    home (default ``<home>/loop``, wiped first so every run starts from scratch)."""

    from freightml.tracking import champion_version, configure_mlflow  # noqa: PLC0415
    from pipelines.run import run_local

    started = time.perf_counter()
    home = home or base.home / "loop"
    if home.exists():
        shutil.rmtree(home)
    facts = loop_facts(scenario)
    source = save_facts(facts.history, home / "data" / "facts.parquet")
    recipe = {"loss": scenario.loss, "target_base": scenario.target_base}
    settings, config = loop_settings(base, home, source, recipe)
    name = settings.tracking.registered_model
    result = LoopResult(scenario)

    say(
        f"training the first champion on {len(facts.history):,} facts up to {facts.origin} "
        f"({scenario.size}, seed {scenario.seed}; GlobalGBM with loss {scenario.loss}, "
        f"target base {scenario.target_base})"
    )
    run_local(settings, "training")
    client = configure_mlflow(settings)
    first = champion_version(client, name)
    if first is None:
        raise RuntimeError("the first training run promoted no champion: see its model card")
    say(f"champion v{first}; the store gets the last {LOOKBACK_DAYS} days of history")
    tail = facts.history.loc[
        facts.history["date"] > pd.Timestamp(facts.origin - timedelta(days=LOOKBACK_DAYS))
    ]
    ingest_facts_file(
        save_facts(tail, home / "data" / "history.parquet"),
        settings.collector_store_url,
        data_settings=settings.data,
    )
    shifted_keys = _shifted_series(facts.later, scenario)
    known = facts.history.copy()
    made = pd.DataFrame()  # forecasts asked so far whose day has not passed
    with _services(settings, config) as url:
        for day in range(1, scenario.days + 1):
            t0 = time.perf_counter()
            today = facts.origin + timedelta(days=day)
            until, enough = today - timedelta(days=1), settings.serving.min_history_days
            series = active_series(known, until, min_history_days=enough)
            wait_for_origin(url, name, series[0], today - timedelta(days=1))
            asked = ask_day(url, name, series, day)
            made = pd.concat([made, asked], ignore_index=True)
            made = made.loc[made["date"] >= pd.Timestamp(today)]
            todays = facts.later.loc[facts.later["date"] == pd.Timestamp(today)]
            known = pd.concat([known, todays], ignore_index=True)
            save_facts(known, source)
            ingest_facts_file(
                save_facts(todays, home / "data" / f"day-{day:02d}.parquet"),
                settings.collector_store_url,
                data_settings=settings.data,
            )
            overall, shifted = realised(made, todays, shifted_keys)
            snapshot = run_monitoring(
                settings,
                as_of=today,
                window_days=WINDOW_DAYS,
                out_dir=home / "monitoring" / today.isoformat(),
            ).snapshot
            facts_drift = next((d for d in snapshot.drift if d.source == "facts"), None)
            decision, triggers, action = _decide_and_act(settings, today, url, series[0], say)
            record = DayRecord(
                day=day,
                date=today,
                phase="shifted" if today >= facts.shift_date else "before shift",
                version_served=str(asked["version"].iloc[0]),
                requests=len(series),
                realised_wape=overall,
                shifted_wape=shifted,
                drifted_segments=len(facts_drift.drifted_segments) if facts_drift else 0,
                status=snapshot.status,
                decision=decision,
                triggers=triggers,
                action=action,
                seconds=round(time.perf_counter() - t0, 1),
            )
            result.timeline.append(record)
            if on_day is not None:
                on_day(record)
    frame = result.frame()
    result.csv_path = home / "timeline.csv"
    frame.to_csv(result.csv_path, index=False)
    result.plot_path = plot_timeline(frame, scenario, home / "timeline.png")
    result.seconds = time.perf_counter() - started
    return result


def _shifted_series(later: pd.DataFrame, scenario: LoopScenario) -> list[tuple[str, ...]]:
    keys = list(SERIES_KEY)
    hit = (
        (later["cargo_type"].astype(str) == scenario.shift_cargo)
        | (later["origin_region"].astype(str) == scenario.new_region)
        | (later["destination_region"].astype(str) == scenario.new_region)
    )
    return [tuple(map(str, k)) for k in later.loc[hit, keys].drop_duplicates().to_numpy()]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _decide_and_act(
    settings: Settings, today: date, url: str, probe: tuple[str, ...], say: Say
) -> tuple[str, str, str]:
    """Take the day's decision by the policy and act on it as `freightml retrain run`
    does (the same decision record, window rule and training pipeline); when a new
    champion was promoted, wait until the running predictor serves it. Returns the
    decision, the fired triggers and what was done, for the timeline."""
    from freightml.tracking import champion_version, configure_mlflow  # noqa: PLC0415
    from pipelines.run import training_launcher

    policy = load_policy(settings.retraining_path)
    store = Store(settings.collector_store_url)
    try:
        decision = decide_now(settings, store, policy, as_of=today)
        fired = "; ".join(
            f"{t.name} {_num(t.value)} (limit {_num(t.threshold)})" for t in decision.fired
        )
        if decision.retrain:
            say(f"{today}: retraining: {decision.reason}")
        outcome = act_on_decision(
            settings,
            store,
            policy,
            decision,
            training_launcher(None, decision.id, say=say),
            adjust=shift_aware_window(policy),
        )
    finally:
        store.close()
    if not decision.retrain:
        blocked = ", ".join(g.name for g in decision.blocked_by)
        return "no action", fired, f"blocked by {blocked}" if fired and blocked else ""
    name = settings.tracking.registered_model
    champion = champion_version(configure_mlflow(settings), name)
    if outcome.version is not None and str(champion) == str(outcome.version):
        wait_for_version(url, name, probe, str(outcome.version))
        return "retrain", fired, f"v{outcome.version} promoted; the predictor serves it"
    return "retrain", fired, f"v{outcome.version} registered, not promoted: {outcome.message}"


def summary(result: LoopResult) -> dict[str, Any]:
    """The sequence of events the loop is judged by."""
    frame = result.frame()
    fired = frame.loc[frame["decision"] == "retrain"]
    versions = frame["version_served"]
    switched = frame.loc[versions != versions.iloc[0]]
    out: dict[str, Any] = {
        "retrain_decisions": len(fired),
        "first_decision_day": int(fired["day"].iloc[0]) if len(fired) else None,
        "switch_day": int(switched["day"].iloc[0]) if len(switched) else None,
        "versions": sorted(set(versions)),
    }
    calm = frame.loc[frame["phase"] == "before shift"]
    out["wape_before_shift"] = _mean(calm["realised_wape"])
    out["shifted_wape_before_shift"] = _mean(calm["shifted_wape"])
    if out["switch_day"] is not None:
        # the shifted days served by the first version, and the days from the switch on
        shifted = frame.loc[frame["phase"] == "shifted"]
        before = shifted.loc[shifted["day"] < out["switch_day"]]
        after = shifted.loc[shifted["day"] >= out["switch_day"]]
        out["wape_before_switch"] = _mean(before["realised_wape"])
        out["wape_after_switch"] = _mean(after["realised_wape"])
        out["shifted_wape_before_switch"] = _mean(before["shifted_wape"])
        out["shifted_wape_after_switch"] = _mean(after["shifted_wape"])
    return out


def _mean(values: pd.Series) -> float | None:
    """Mean of the days that have a value (None when none has)."""
    values = values.dropna()
    return float(np.mean(values)) if len(values) else None
