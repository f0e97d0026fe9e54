"""Synthetic facts calibrated on published Russian rail freight figures, with injected drift.

Calibration (shared/data/freight-figures.md, see docs/data.md for the full list):
stations in the 16 regional railways; heavy-tailed lane levels (lognormal, ~80% of tonnes
on ~20% of series); cargo mix by tonnes = CARGO_SHARES (2022); coal loaded mostly in West
Siberian (Kuzbass ~18% of the network); cargo-specific monthly seasonality from the 2023
daily-rate index; New Year dip (1-8 Jan) and Russian public holidays; weak weekday effect
(+-3%); trend -4%/yr (2024: -4.1%, 2025: -5.6%); wagons = tonnes / wagon capacity.

Everything is vectorised over a series x day matrix; each random component draws from its
own stream, so switching an injection on leaves the other series and days unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from typing import Any

import holidays
import numpy as np
import pandas as pd

from freightml.data.calibration import (
    DESTINATION_WEIGHT,
    MONTHLY_INDEX,
    ORIGIN_WEIGHT,
    REGION_CODE,
    REGION_WEIGHT,
    SEASON_PROFILE,
)
from freightml.data.schema import CARGO_SHARES, CARGO_TYPES, REGIONS, WAGON_CAPACITY_T

_MID_MONTH_DOY = np.array([15, 45, 74, 105, 135, 166, 196, 227, 258, 288, 319, 349], float)
_WEEKDAY_SHAPE = np.array([0.4, 0.6, 0.6, 0.4, 0.0, -0.8, -1.2])  # Mon..Sun, Sunday lowest
_AR_PHI, _AR_SD = 0.85, 0.08  # slow AR(1) wander of the lane level (log scale)


def _as_date(value: date | str | pd.Timestamp) -> date:
    return pd.Timestamp(value).date()


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Dates are inclusive; injection options are off by default."""

    n_series: int
    start: date
    end: date
    n_stations: int | None = None  # default: n_series / 4, within [40, 3000]
    level_median_t: float = 60.0  # median lane level, tonnes/day
    level_sigma: float = 1.7  # lognormal spread of lane levels (concentration)
    trend_per_year: float = -0.04  # network-wide; 2024 -4.1%, 2025 -5.6%
    trend_sd: float = 0.03  # per-series variation of the yearly trend
    weekday_amplitude: float = 0.03  # largest weekday deviation, +-3%
    new_year_factor: float = 0.85  # 1-8 January; with the table, January ~0.95 of the mean
    holiday_factor: float = 0.88  # other Russian public holidays and days off
    # Injections (drift and faults).
    new_region: str | None = None  # region with no series before new_region_from
    new_region_from: date | None = None  # default: 75% into the period
    new_region_series: int | None = None  # default: 10% of n_series
    level_shift: tuple[date, float] | None = None  # (from date, factor)
    level_shift_region: str | None = None  # series from or to this region; None: all
    level_shift_origin_only: bool = False  # with a region: only series loaded there
    level_shift_cargo: str | None = None  # only series of this cargo type; None: all
    new_stations: int = 0  # stations (2 lanes each) appearing in the last quarter
    missing_days: float = 0.0  # fraction of series-days dropped
    anomalies: int = 0  # rows whose volume is multiplied by anomaly_factor
    anomaly_factor: float = 10.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "start", _as_date(self.start))
        set_(self, "end", _as_date(self.end))
        if self.new_region_from is not None:
            set_(self, "new_region_from", _as_date(self.new_region_from))
        if self.level_shift is not None:
            when, factor = self.level_shift
            set_(self, "level_shift", (_as_date(when), float(factor)))
            if factor <= 0:
                raise ValueError(f"level_shift factor must be > 0, got {factor}")
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        if self.n_series < 1:
            raise ValueError(f"n_series must be >= 1, got {self.n_series}")
        if not 0.0 <= self.missing_days < 1.0:
            raise ValueError(f"missing_days must be in [0, 1), got {self.missing_days}")
        if self.new_region_from is not None and not self.start < self.new_region_from <= self.end:
            raise ValueError(
                f"new_region_from {self.new_region_from} must fall after start {self.start} "
                f"and no later than end {self.end}"
            )
        if self.level_shift_cargo is not None and self.level_shift_cargo not in CARGO_TYPES:
            raise ValueError(
                f"level_shift_cargo {self.level_shift_cargo!r} is not a cargo type; "
                f"choose one of {list(CARGO_TYPES)}"
            )
        if self.anomalies < 0 or self.new_stations < 0:
            raise ValueError("anomalies and new_stations must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (dates as ISO strings), e.g. for run parameters."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, date):
                out[k] = v.isoformat()
            elif isinstance(v, tuple):
                out[k] = [x.isoformat() if isinstance(x, date) else x for x in v]
        return out


SIZES: dict[str, SyntheticSpec] = {
    "small": SyntheticSpec(n_series=80, start=date(2023, 1, 1), end=date(2025, 3, 31)),
    "demo": SyntheticSpec(n_series=1400, start=date(2022, 1, 1), end=date(2025, 12, 31)),
    "large": SyntheticSpec(n_series=6850, start=date(2022, 1, 1), end=date(2025, 12, 31)),
}


@dataclass
class _Lanes:
    """Per-series attributes (arrays of equal length)."""

    origin: np.ndarray  # station index
    destination: np.ndarray
    cargo: np.ndarray  # index into CARGO_TYPES
    level: np.ndarray  # mean tonnes/day
    start_day: np.ndarray  # first day index the series exists

    def __len__(self) -> int:
        return len(self.origin)

    def concat(self, other: _Lanes) -> _Lanes:
        return _Lanes(
            *(
                np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                for f in dataclasses.fields(self)
            )
        )


@dataclass
class _Stations:
    name: list[str]
    region: np.ndarray  # index into regions
    hub: np.ndarray  # relative size within its region

    def add(self, region: int, hub: float, regions: list[str]) -> int:
        code = REGION_CODE.get(regions[region], regions[region][:3].upper())
        n = int(np.sum(self.region == region))
        self.name.append(f"{code}-{n + 1:03d}")
        self.region = np.append(self.region, region)
        self.hub = np.append(self.hub, hub)
        return len(self.name) - 1


def generate(size: str | SyntheticSpec = "demo", seed: int = 42, **overrides: Any) -> pd.DataFrame:
    """Generate a facts frame, deterministic given ``seed``, sorted by series key and date.

    ``size`` is a name in SIZES or a SyntheticSpec; ``overrides`` replace spec fields,
    e.g. ``generate("small", missing_days=0.05, anomalies=10)``.
    """
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
        size = SIZES[size]
    spec = dataclasses.replace(size, **overrides) if overrides else size
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)]
    rng_net, rng_noise, rng_region, rng_new, rng_missing, rng_anomaly, rng_extra_noise = streams

    days = pd.date_range(spec.start, spec.end, freq="D")
    regions: list[str] = list(REGIONS)
    if spec.new_region is not None and spec.new_region not in REGIONS:
        regions.append(spec.new_region)
    excluded = regions.index(spec.new_region) if spec.new_region else None
    if spec.level_shift_region is not None and spec.level_shift_region not in regions:
        raise ValueError(
            f"level_shift_region {spec.level_shift_region!r} is not a region; "
            f"choose one of {regions}"
        )
    stations = _make_stations(spec, regions, rng_net)
    lanes = _base_lanes(spec, stations, regions, excluded, rng_net)
    n_base = len(lanes)
    if spec.new_region:
        lanes = lanes.concat(_new_region_lanes(spec, stations, regions, lanes, days, rng_region))
    if spec.new_stations:
        lanes = lanes.concat(
            _new_station_lanes(spec, stations, regions, excluded, lanes, days, rng_new)
        )

    volume = _volume_matrix(
        spec, lanes, stations, regions, days, n_base, (rng_noise, rng_extra_noise)
    )
    present = np.arange(len(days))[None, :] >= lanes.start_day[:, None]
    if spec.missing_days > 0:
        present &= rng_missing.random(present.shape, dtype=np.float32) >= spec.missing_days
    if spec.anomalies:
        _inject_anomalies(volume, present, spec, rng_anomaly)
    frame = _to_frame(volume, present, lanes, stations, regions, days)
    frame.attrs["synthetic"] = {"seed": seed, **spec.to_dict()}
    return frame


def _make_stations(spec: SyntheticSpec, regions: list[str], rng: np.random.Generator) -> _Stations:
    """Stations per region in proportion to REGION_WEIGHT; an extra (new) region comes
    last, so the base network does not depend on it."""
    n_total = spec.n_stations or int(np.clip(round(spec.n_series / 4), 40, 3000))
    weights = np.array([REGION_WEIGHT[r] for r in REGIONS])
    counts = np.maximum(2, np.round(weights / weights.sum() * n_total)).astype(int).tolist()
    counts += [max(2, round(0.05 * n_total))] * (len(regions) - len(REGIONS))
    stations = _Stations([], np.empty(0, int), np.empty(0, float))
    for r, count in enumerate(counts):
        # Zipf-like hub sizes: a few big junctions per region, many small stations.
        for h in rng.permutation(1.0 / np.arange(1, count + 1) ** 0.8):
            stations.add(r, h, regions)
    return stations


def _station_probs(
    stations: _Stations, region_w: dict[str, float], regions: list[str], excluded: int | None
) -> np.ndarray:
    rw = np.array([region_w.get(r, 0.0) for r in regions])
    if excluded is not None:
        rw[excluded] = 0.0
    if rw.sum() == 0:
        return _station_probs(stations, REGION_WEIGHT, regions, excluded)
    hub_total = np.bincount(stations.region, weights=stations.hub, minlength=len(regions))
    p = rw[stations.region] * stations.hub / hub_total[stations.region]
    return p / p.sum()


def _cargo_counts(n: int) -> np.ndarray:
    """Lanes per cargo: flatter than the tonnage shares, so big cargo has bigger lanes."""
    p = np.array([CARGO_SHARES[c] for c in CARGO_TYPES]) ** 0.7
    p /= p.sum()
    counts = np.floor(p * n).astype(int)
    if n >= len(CARGO_TYPES):
        counts = np.maximum(counts, 1)
    remainder = p * n - np.floor(p * n)
    for i in np.argsort(-remainder):
        if counts.sum() >= n:
            break
        counts[i] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    return counts


def _draw_lanes(
    stations: _Stations,
    regions: list[str],
    counts: np.ndarray,
    excluded: int | None,
    rng: np.random.Generator,
    taken: set[tuple[int, int, int]],
) -> tuple[np.ndarray, ...]:
    """Unique (origin, destination, cargo) triples, `counts[c]` of each cargo."""
    out: list[tuple[int, int, int]] = []
    for c, need in enumerate(counts):
        cargo = CARGO_TYPES[c]
        p_o = _station_probs(stations, ORIGIN_WEIGHT.get(cargo, REGION_WEIGHT), regions, excluded)
        p_d = _station_probs(
            stations, DESTINATION_WEIGHT.get(cargo, REGION_WEIGHT), regions, excluded
        )
        got = 0
        for _ in range(50):
            k = 3 * (need - got) + 10
            for o, d in zip(
                rng.choice(len(p_o), k, p=p_o), rng.choice(len(p_d), k, p=p_d), strict=True
            ):
                if got == need:
                    break
                if o != d and (int(o), int(d), c) not in taken:
                    taken.add((int(o), int(d), c))
                    out.append((int(o), int(d), c))
                    got += 1
            if got == need:
                break
        else:
            raise ValueError(
                f"cannot draw {need} distinct {cargo} lanes from "
                f"{len(stations.name)} stations; raise n_stations"
            )
    arr = np.array(out, dtype=np.int64).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def _base_lanes(
    spec: SyntheticSpec,
    stations: _Stations,
    regions: list[str],
    excluded: int | None,
    rng: np.random.Generator,
) -> _Lanes:
    counts = _cargo_counts(spec.n_series)
    o, d, c = _draw_lanes(stations, regions, counts, excluded, rng, set())
    raw = rng.lognormal(0.0, spec.level_sigma, len(o))
    shares = np.array([CARGO_SHARES[x] for x in CARGO_TYPES])
    total = spec.n_series * spec.level_median_t * np.exp(spec.level_sigma**2 / 2)
    # Rescale within each cargo so that tonnes by cargo follow CARGO_SHARES exactly.
    per_cargo = np.bincount(c, weights=raw, minlength=len(CARGO_TYPES))
    target = shares / shares[counts > 0].sum() * total
    level = np.maximum(raw * target[c] / per_cargo[c], 2.0)
    return _Lanes(o, d, c, level, np.zeros(len(o), dtype=np.int64))


def _cargo_mean_level(lanes: _Lanes) -> np.ndarray:
    sums = np.bincount(lanes.cargo, weights=lanes.level, minlength=len(CARGO_TYPES))
    n = np.bincount(lanes.cargo, minlength=len(CARGO_TYPES))
    return np.where(n > 0, sums / np.maximum(n, 1), np.median(lanes.level))


def _extra_lanes(
    pairs: list[tuple[int, int]],
    cargo: np.ndarray,
    start_day: np.ndarray,
    lanes: _Lanes,
    rng: np.random.Generator,
) -> _Lanes:
    """Lanes for given (origin, destination) pairs, levels like base lanes of that cargo."""
    sigma = 1.0
    level = _cargo_mean_level(lanes)[cargo] * rng.lognormal(-(sigma**2) / 2, sigma, len(cargo))
    o, d = (np.array(x, dtype=np.int64) for x in zip(*pairs, strict=True))
    return _Lanes(o, d, cargo.astype(np.int64), np.maximum(level, 2.0), start_day)


def _unique_extra(pairs: list[tuple[int, int]], cargo: np.ndarray, lanes: _Lanes) -> np.ndarray:
    seen = set(
        zip(lanes.origin.tolist(), lanes.destination.tolist(), lanes.cargo.tolist(), strict=True)
    )
    keep = []
    for i, ((o, d), c) in enumerate(zip(pairs, cargo.tolist(), strict=True)):
        if o != d and (o, d, c) not in seen:
            seen.add((o, d, c))
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def _cargo_draw(rng: np.random.Generator, n: int) -> np.ndarray:
    p = np.array([CARGO_SHARES[c] for c in CARGO_TYPES])
    return rng.choice(len(p), n, p=p / p.sum())


def _new_region_lanes(
    spec: SyntheticSpec,
    stations: _Stations,
    regions: list[str],
    lanes: _Lanes,
    days: pd.DatetimeIndex,
    rng: np.random.Generator,
) -> _Lanes:
    """Lanes loading or unloading in the new region, all starting on new_region_from."""
    assert spec.new_region is not None  # the caller checked
    region = regions.index(spec.new_region)
    start = spec.new_region_from or days[int(len(days) * 0.75)].date()
    start_day = int(np.searchsorted(days.values, np.datetime64(start)))
    n = spec.new_region_series or max(2, round(0.1 * spec.n_series))
    local = np.flatnonzero(stations.region == region)
    others = np.flatnonzero(stations.region != region)
    cargo = _cargo_draw(rng, 2 * n)
    here = rng.choice(local, 2 * n, p=stations.hub[local] / stations.hub[local].sum())
    there = rng.choice(others, 2 * n)
    outbound = rng.random(2 * n) < 0.5
    pairs = [
        (h, t) if ob else (t, h)
        for h, t, ob in zip(here.tolist(), there.tolist(), outbound, strict=True)
    ]
    keep = _unique_extra(pairs, cargo, lanes)[:n]
    return _extra_lanes(
        [pairs[i] for i in keep],
        cargo[keep],
        np.full(len(keep), start_day, dtype=np.int64),
        lanes,
        rng,
    )


def _new_station_lanes(
    spec: SyntheticSpec,
    stations: _Stations,
    regions: list[str],
    excluded: int | None,
    lanes: _Lanes,
    days: pd.DatetimeIndex,
    rng: np.random.Generator,
) -> _Lanes:
    """New stations in existing regions, each with one outbound and one inbound lane."""
    rw = np.array([REGION_WEIGHT.get(r, 0.0) for r in regions])
    if excluded is not None:
        rw[excluded] = 0.0
    pairs, starts = [], []
    active = np.unique(np.concatenate([lanes.origin, lanes.destination]))
    for _ in range(spec.new_stations):
        s = stations.add(int(rng.choice(len(regions), p=rw / rw.sum())), 0.5, regions)
        start = int(rng.integers(int(0.75 * len(days)), max(int(0.95 * len(days)), 1)))
        a, b = rng.choice(active, 2, replace=False).tolist()
        pairs += [(s, a), (b, s)]
        starts += [start, start]
    cargo = _cargo_draw(rng, len(pairs))
    keep = _unique_extra(pairs, cargo, lanes)
    return _extra_lanes(
        [pairs[i] for i in keep], cargo[keep], np.array(starts, dtype=np.int64)[keep], lanes, rng
    )


def _season_matrix(days: pd.DatetimeIndex) -> np.ndarray:
    """(n_cargo, n_days) smooth seasonal index, mean 1 over the year."""
    doy = np.arange(1, 366, dtype=float)
    out = np.ones((len(CARGO_TYPES), len(days)))
    for i, cargo in enumerate(CARGO_TYPES):
        index = MONTHLY_INDEX.get(SEASON_PROFILE.get(cargo, cargo))
        if index is None:
            continue
        anchors = np.array(index) / np.array(index).mean()
        profile = np.interp(doy, _MID_MONTH_DOY, anchors, period=365)
        profile /= profile.mean()
        out[i] = profile[np.minimum(days.dayofyear.to_numpy(), 365) - 1]
    return out


def calendar_factors(days: pd.DatetimeIndex, spec: SyntheticSpec) -> np.ndarray:
    """Network-wide daily multiplier: weekday profile x New Year dip x public holidays."""
    shape = _WEEKDAY_SHAPE - _WEEKDAY_SHAPE.mean()
    weekday = 1.0 + spec.weekday_amplitude * shape / np.abs(shape).max()
    factor = weekday[days.dayofweek.to_numpy()]
    ru = holidays.country_holidays("RU", years=range(days[0].year, days[-1].year + 1))
    is_holiday = np.array([d in ru for d in days.date])
    new_year = (days.month == 1) & (days.day <= 8)
    factor = factor * np.where(
        new_year, spec.new_year_factor, np.where(is_holiday, spec.holiday_factor, 1.0)
    )
    return factor


def _volume_matrix(
    spec: SyntheticSpec,
    lanes: _Lanes,
    stations: _Stations,
    regions: list[str],
    days: pd.DatetimeIndex,
    n_base: int,
    rngs: tuple[np.random.Generator, np.random.Generator],
) -> np.ndarray:
    """(n_series, n_days) float32 tonnes: level x trend x season x calendar x noise."""
    n, n_days = len(lanes), len(days)
    t_years = ((days - days[0]).days.to_numpy() - (n_days - 1) / 2) / 365.25
    # Per-series draws: base lanes from one stream, injected lanes from another.
    slope, jitter = np.empty(n), np.empty(n)
    noise, wander, zeros = (np.empty((n, n_days), dtype=np.float32) for _ in range(3))
    for rng, sl in ((rngs[0], slice(0, n_base)), (rngs[1], slice(n_base, n))):
        m = sl.stop - sl.start
        slope[sl] = rng.normal(np.log1p(spec.trend_per_year), spec.trend_sd, m)
        jitter[sl] = rng.normal(0.0, 0.04, m)
        rng.standard_normal(dtype=np.float32, out=noise[sl])
        rng.standard_normal(dtype=np.float32, out=wander[sl])
        rng.random(dtype=np.float32, out=zeros[sl])

    # Thin lanes are noisier (CV ~0.55) than big ones (~0.2) and ship on some days only.
    # Rank against base lanes only, so injected lanes do not change the base lanes' noise.
    rank = np.searchsorted(np.sort(lanes.level[:n_base]), lanes.level, side="right") / n_base
    cv = np.clip(0.55 - 0.35 * rank + jitter, 0.15, 0.6)
    capacity = np.array([WAGON_CAPACITY_T[c] for c in CARGO_TYPES])[lanes.cargo]
    p_zero = np.clip(0.5 * (1.0 - lanes.level / capacity), 0.0, 0.5)
    sigma = np.sqrt(np.log1p(cv**2)).astype(np.float32)

    log_v = np.log(_season_matrix(days)).astype(np.float32)[lanes.cargo]
    log_v += np.log(calendar_factors(days, spec)).astype(np.float32)[None, :]
    log_v += (np.log(lanes.level / (1.0 - p_zero)) - sigma**2 / 2 - _AR_SD**2 / 2)[:, None]
    log_v += (slope[:, None] * t_years[None, :]).astype(np.float32)
    if spec.level_shift is not None:
        when, factor = spec.level_shift
        affected = np.ones(n, bool)
        if spec.level_shift_region is not None:
            r = regions.index(spec.level_shift_region)
            affected = stations.region[lanes.origin] == r
            if not spec.level_shift_origin_only:
                affected |= stations.region[lanes.destination] == r
        if spec.level_shift_cargo is not None:
            affected &= lanes.cargo == CARGO_TYPES.index(spec.level_shift_cargo)
        first = int(np.searchsorted(days.values, np.datetime64(when)))
        log_v[np.ix_(affected, np.arange(first, n_days))] += np.float32(np.log(factor))
    noise *= sigma[:, None]
    log_v += noise
    del noise
    log_v += _ar1(wander, _AR_PHI, _AR_SD).T
    del wander
    volume = np.exp(log_v, out=log_v)
    volume[zeros < p_zero[:, None].astype(np.float32)] = 0.0
    return volume


def _ar1(shocks: np.ndarray, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) along axis 1 of (n_series, n_days) standard normal shocks; returns
    it transposed (n_days, n_series) to step over contiguous rows."""
    z = np.ascontiguousarray(shocks.T) * np.float32(sd * np.sqrt(1 - phi**2))
    z[0] /= np.float32(np.sqrt(1 - phi**2))  # start in the stationary state
    for d in range(1, len(z)):
        z[d] += np.float32(phi) * z[d - 1]
    return z


def _inject_anomalies(
    volume: np.ndarray, present: np.ndarray, spec: SyntheticSpec, rng: np.random.Generator
) -> None:
    candidates = np.flatnonzero(present & (volume > 0))
    chosen = rng.choice(candidates, min(spec.anomalies, len(candidates)), replace=False)
    volume.ravel()[chosen] *= spec.anomaly_factor


def _to_frame(
    volume: np.ndarray,
    present: np.ndarray,
    lanes: _Lanes,
    stations: _Stations,
    regions: list[str],
    days: pd.DatetimeIndex,
) -> pd.DataFrame:
    """Long format, sorted by series key then date; per-series codes are repeated, not indexed."""
    names = np.array(stations.name)
    station_rank = np.argsort(np.argsort(names)).astype(np.int32)  # code = rank in sorted names
    cargo_rank = np.argsort(np.argsort(np.array(CARGO_TYPES))).astype(np.int32)
    region_rank = np.argsort(np.argsort(np.array(regions))).astype(np.int32)
    o, d, c = lanes.origin, lanes.destination, lanes.cargo
    order = np.lexsort((cargo_rank[c], station_rank[d], station_rank[o]))
    o, d, c, present = o[order], d[order], c[order], present[order]
    counts = present.sum(axis=1)
    mask = present.ravel()

    tonnes = volume[order].ravel()[mask].astype(np.float64)
    np.round(tonnes, 1, out=tonnes)
    capacity = np.array([WAGON_CAPACITY_T[x] for x in CARGO_TYPES])[c]
    wagons = np.rint(tonnes / np.repeat(capacity, counts)).astype(np.int64)
    np.maximum(wagons, tonnes > 0, out=wagons)  # any load needs a wagon; none when 0 t
    day = np.tile(np.arange(len(days), dtype=np.int32), len(order))[mask]

    def cat(per_series: np.ndarray, categories: list[str]) -> pd.Categorical:
        codes = np.repeat(
            per_series.astype(np.int16 if len(categories) < 2**15 else np.int32), counts
        )
        return pd.Categorical.from_codes(codes, categories=categories).remove_unused_categories()

    station_names, region_names = sorted(stations.name), sorted(regions)
    return pd.DataFrame(
        {
            "date": days.values[day],
            "origin_station": cat(station_rank[o], station_names),
            "destination_station": cat(station_rank[d], station_names),
            "origin_region": cat(region_rank[stations.region[o]], region_names),
            "destination_region": cat(region_rank[stations.region[d]], region_names),
            "cargo_type": cat(cargo_rank[c], sorted(CARGO_TYPES)),
            "volume_tonnes": tonnes,
            "wagons": wagons,
        }
    )
