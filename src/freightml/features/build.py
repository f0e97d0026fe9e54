"""Leakage-safe examples: one row per (series, forecast origin, horizon).

The facts are pivoted once into a series x day float32 matrix (NaN = absent day) with
cumulative sums, so every rolling statistic is two array lookups and the whole build is
vectorised. Every feature of a row with origin ``o`` reads matrix days ``<= o`` only; the
target day is used for ``y`` and for the calendar (known in advance), nothing else.

Levels are divided by ``scale`` (the series' mean over the 28 days up to the origin) so one
global model can serve series of very different sizes; the model predicts ``y / scale``.

Weekly structure: same-weekday cumulative sums (each day plus the same weekday a week
earlier, and so on) give the series' weekday profile and same-weekday zero share over the
last weeks in two lookups; exponentially weighted levels are computed once per panel with a
causal recursion over days.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from freightml import domain
from freightml.features.calendar import (
    CALENDAR_COLUMNS,
    DEFAULT_HOLIDAY_COUNTRY,
    calendar_table,
)

# the series key (freightml.domain) as a list, which pandas indexing wants
SERIES_KEY: list[str] = list(domain.SERIES_KEY)
REGION_COLUMNS: list[str] = ["origin_region", "destination_region"]
# the fact columns the features read (a subset of the facts schema, data.schema.FACT_COLUMNS)
FEATURE_INPUT_COLUMNS: list[str] = ["date", *SERIES_KEY, *REGION_COLUMNS, "volume_tonnes"]

# Strings in the examples; the model turns them into integer codes with the vocabulary it
# learned at fit time (stored with the model), so serving always uses the training codes.
CATEGORICAL_FEATURES: list[str] = ["origin_region", "destination_region", "cargo_type"]
LEVEL_FEATURES: list[str] = [
    "last_ratio",
    "mean_7_ratio",
    "mean_28_ratio",
    "mean_91_ratio",
    "std_28_ratio",
    "zero_share_28",
    "obs_share_28",
    "log_scale",
    "ewm_7_ratio",
    "ewm_28_ratio",
]
SEASONAL_FEATURES: list[str] = ["lag_same_weekday_ratio", "yoy_ratio"]
# Weekly structure at the target's weekday (see _weekly_features).
PROFILE_WEEKS: tuple[int, ...] = (4, 12)
SAME_WEEKDAY_LAGS: tuple[int, ...] = (7, 14, 21, 28)
ZERO_WEEKDAY_WEEKS = 8
WEEKLY_FEATURES: list[str] = [
    *[f"weekday_profile_{w}w" for w in PROFILE_WEEKS],
    *[f"lag_{k}_ratio" for k in SAME_WEEKDAY_LAGS],
    "same_weekday_mean_2_ratio",
    "same_weekday_mean_4_ratio",
    "same_weekday_median_4_ratio",
    f"zero_share_weekday_{ZERO_WEEKDAY_WEEKS}w",
]
EWM_HALFLIVES: tuple[int, ...] = (7, 28)
EWM_SPAN_HALFLIVES = 14  # an EWM level reads the last 14 halflives (392 days at halflife 28)
FEATURE_COLUMNS: list[str] = [
    "horizon",
    *CALENDAR_COLUMNS,
    *LEVEL_FEATURES,
    *SEASONAL_FEATURES,
    *WEEKLY_FEATURES,
    *CATEGORICAL_FEATURES,
]
_FRONT = [*SERIES_KEY, *REGION_COLUMNS, "origin_date", "target_date"]
EXAMPLE_COLUMNS: list[str] = [
    *_FRONT,
    *[c for c in FEATURE_COLUMNS if c not in _FRONT],
    "history_days",
    "scale",
    "y",
]
SCALE_FLOOR = 1.0  # tonnes; keeps y / scale finite for near-dead series
YEAR_DAYS = 364  # 52 weeks: the year-ago day falls on the same weekday
# Every feature reads at most YEAR_DAYS + 27 days before the origin (the year-ago 28-day
# mean; the EWM levels' span is 392), so this many days of facts reproduce the features of
# the full history exactly: the history serving, monitoring and the demos keep.
LOOKBACK_DAYS = 400
_YOY_HALF_WINDOW = 3


@dataclass(frozen=True, eq=False)
class SeriesPanel:
    """Facts as a series x day matrix plus cumulative sums for O(1) window statistics.

    Day ``i`` is ``start + i days``. ``csum[:, k]`` is the sum over days ``< k``; likewise
    ``csq`` (squares), ``cobs`` (observed days) and ``czero`` (zero-volume days).
    ``wsum[:, d]`` is the sum over days ``d, d - 7, d - 14, ...`` (same weekday, up to and
    including ``d``); likewise ``wobs`` and ``wzero``. ``ewm[h][:, d]`` is the exponentially
    weighted mean (halflife ``h`` days) of the observed days ``<= d``.
    """

    series: pd.DataFrame  # SERIES_KEY + REGION_COLUMNS, row i = matrix row i
    start: pd.Timestamp
    values: np.ndarray
    first_day: np.ndarray
    csum: np.ndarray
    csq: np.ndarray
    cobs: np.ndarray
    czero: np.ndarray
    wsum: np.ndarray
    wobs: np.ndarray
    wzero: np.ndarray
    ewm: dict[int, np.ndarray]

    @classmethod
    def from_facts(
        cls, facts: pd.DataFrame, *, span: tuple[pd.Timestamp, pd.Timestamp] | None = None
    ) -> SeriesPanel:
        """Pivot facts; regions of a series come from its latest fact (station metadata, not
        a feature of time). Negative or NaN volumes count as absent days. ``span`` (first,
        last day) sets the matrix's days instead of the facts' own range, so a subset of the
        series (a shard) gets the whole panel's calendar."""
        missing = [c for c in FEATURE_INPUT_COLUMNS if c not in facts.columns]
        if missing:
            raise ValueError(
                f"facts lack columns {missing}; expected at least {FEATURE_INPUT_COLUMNS}"
            )
        if facts.empty:
            raise ValueError("facts are empty: cannot build features without history")
        days64 = pd.to_datetime(facts["date"]).to_numpy().astype("datetime64[D]")
        start = days64.min()
        last = days64.max()
        if span is not None:
            span_first = np.datetime64(pd.Timestamp(span[0]).date(), "D")
            span_last = np.datetime64(pd.Timestamp(span[1]).date(), "D")
            if span_first > start or span_last < last:
                raise ValueError(f"span {span} does not hold the facts' days {start}..{last}")
            start, last = span_first, span_last
        day = (days64 - start).astype(np.int64)
        sid, keys = factorize_series(facts)
        n_series, n_days = len(keys), int((last - start).astype(np.int64)) + 1
        latest = pd.Series(day).groupby(sid).idxmax().to_numpy()
        series = keys.assign(**{c: facts[c].to_numpy(dtype=object)[latest] for c in REGION_COLUMNS})
        values = np.full((n_series, n_days), np.nan, dtype=np.float32)
        values[sid, day] = facts["volume_tonnes"].to_numpy(dtype=np.float32)
        values[values < 0] = np.nan
        observed = ~np.isnan(values)
        first_day = np.where(observed.any(axis=1), observed.argmax(axis=1), n_days)
        filled = np.where(observed, values, np.float32(0))
        return cls(
            series=series,
            start=pd.Timestamp(start),
            values=values,
            first_day=first_day.astype(np.int64),
            csum=_cumsum(filled, np.float64),
            csq=_cumsum(filled.astype(np.float64) ** 2, np.float64),
            cobs=_cumsum(observed, np.int32),
            czero=_cumsum(observed & (values == 0), np.int32),
            wsum=_weekly_cumsum(filled, np.float64),
            wobs=_weekly_cumsum(observed, np.int32),
            wzero=_weekly_cumsum(observed & (values == 0), np.int32),
            ewm={h: _ewm(values, h) for h in EWM_HALFLIVES},
        )

    @property
    def n_days(self) -> int:
        return self.values.shape[1]

    @property
    def last_date(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=self.n_days - 1)

    def day_index(self, when: pd.Timestamp) -> int:
        return int((pd.Timestamp(when).normalize() - self.start).days)

    def at(self, s: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Value of series s on day (NaN outside the matrix or for unknown series s < 0)."""
        ok = (day >= 0) & (day < self.n_days) & (s >= 0)
        out = np.full(len(s), np.nan, dtype=np.float32)
        out[ok] = self.values[s[ok], day[ok]]
        return out

    def at_matrix(self, matrix: np.ndarray, s: np.ndarray, day: np.ndarray) -> np.ndarray:
        """``matrix[s, day]`` for a series x day matrix (NaN outside or for s < 0)."""
        ok = (day >= 0) & (day < self.n_days) & (s >= 0)
        out = np.full(len(s), np.nan, dtype=np.float64)
        out[ok] = matrix[s[ok], day[ok]]
        return out

    def same_weekday(
        self, wcum: np.ndarray, s: np.ndarray, end: np.ndarray, weeks: int
    ) -> np.ndarray:
        """Sum of a same-weekday cumulated quantity over days end, end - 7, ... (``weeks``
        of them, those before the first matrix day count 0); 0 for unknown series."""
        known = (s >= 0) & (end >= 0)
        safe_s = np.where(known, s, 0)
        hi_day = np.clip(end, 0, self.n_days - 1)
        lo_day = hi_day - 7 * weeks
        hi = np.where(known, wcum[safe_s, hi_day], 0)
        lo = np.where(known & (lo_day >= 0), wcum[safe_s, np.maximum(lo_day, 0)], 0)
        return hi - lo

    def window(self, cum: np.ndarray, s: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
        """Sum of a cumulated quantity over days (end - width, end]; 0 for unknown series."""
        hi = np.clip(end + 1, 0, self.n_days)
        lo = np.clip(end + 1 - width, 0, self.n_days)
        known = s >= 0
        safe = np.where(known, s, 0)
        return np.where(known, cum[safe, hi] - cum[safe, lo], 0)


def _cumsum(a: np.ndarray, dtype: type) -> np.ndarray:
    out = np.zeros((a.shape[0], a.shape[1] + 1), dtype=dtype)
    np.cumsum(a, axis=1, dtype=dtype, out=out[:, 1:])
    return out


def _weekly_cumsum(a: np.ndarray, dtype: type) -> np.ndarray:
    """out[:, d] = a[:, d] + a[:, d - 7] + a[:, d - 14] + ... (same weekday, days <= d)."""
    n_series, n_days = a.shape
    weeks = -(-n_days // 7)
    padded = np.zeros((n_series, weeks * 7), dtype=dtype)
    padded[:, :n_days] = a
    out: np.ndarray = np.cumsum(padded.reshape(n_series, weeks, 7), axis=1, dtype=dtype)
    return out.reshape(n_series, weeks * 7)[:, :n_days]


def _ewm(values: np.ndarray, halflife: int) -> np.ndarray:
    """Causal exponentially weighted mean over the observed days of the last
    ``EWM_SPAN_HALFLIVES * halflife`` days (absent days are skipped and age the older
    weights); NaN when none was observed. The finite span keeps serving's warm window
    (LOOKBACK_DAYS) equal to the full history; older days weigh under 2**-14."""
    keep = np.float64(0.5 ** (1.0 / halflife))
    span = EWM_SPAN_HALFLIVES * halflife
    drop = keep**span
    observed = ~np.isnan(values)
    x = np.where(observed, values, 0.0).astype(np.float64)
    seen = observed.astype(np.float64)
    num = np.zeros(values.shape[0], dtype=np.float64)
    den = np.zeros(values.shape[0], dtype=np.float64)
    out = np.empty(values.shape, dtype=np.float32)
    for d in range(values.shape[1]):
        num = num * keep + x[:, d]
        den = den * keep + seen[:, d]
        if d >= span:  # the day leaving the span
            num -= drop * x[:, d - span]
            den -= drop * seen[:, d - span]
        # den is at least 2**-14 with an observed day in the span; below is rounding of 0
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, d] = np.where(den > 1e-9, num / den, np.nan)
    return out


def factorize_series(facts: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Series id per fact row and the sorted table of series keys."""
    codes, uniques = [], []
    for col in SERIES_KEY:
        c, u = pd.factorize(facts[col].astype(object), sort=True)
        if (c < 0).any():
            raise ValueError(f"{int((c < 0).sum())} fact rows have a missing {col}")
        codes.append(c.astype(np.int64))
        uniques.append(np.asarray(u, dtype=object))
    combined = codes[0]
    for c, u in zip(codes[1:], uniques[1:], strict=True):
        combined = combined * len(u) + c
    sid, uniq = pd.factorize(combined, sort=True)
    keys = {}
    for col, u in zip(reversed(SERIES_KEY), reversed(uniques), strict=True):
        keys[col] = u[uniq % len(u)]
        uniq = uniq // len(u)
    return sid, pd.DataFrame({c: keys[c] for c in SERIES_KEY})


def _as_panel(facts: pd.DataFrame | SeriesPanel) -> SeriesPanel:
    return facts if isinstance(facts, SeriesPanel) else SeriesPanel.from_facts(facts)


def _mean(total: np.ndarray, count: np.ndarray, min_count: int = 1) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= min_count, total / np.maximum(count, 1), np.nan)


def _pair_features(panel: SeriesPanel, s: np.ndarray, o: np.ndarray) -> dict[str, np.ndarray]:
    """Per (series, origin) statistics from days <= origin."""
    w = panel.window
    n7, n28, n91 = (w(panel.cobs, s, o, k) for k in (7, 28, 91))
    sum7, sum28, sum91 = (w(panel.csum, s, o, k) for k in (7, 28, 91))
    mean7, mean28, mean91 = _mean(sum7, n7), _mean(sum28, n28), _mean(sum91, n91)
    scale = np.where(np.isnan(mean28), mean91, mean28)
    scale = np.maximum(np.nan_to_num(scale, nan=SCALE_FLOOR), SCALE_FLOOR)
    sq28 = w(panel.csq, s, o, 28)
    with np.errstate(invalid="ignore", divide="ignore"):
        var28 = (sq28 - sum28 * np.nan_to_num(mean28)) / np.maximum(n28 - 1, 1)
    std28 = np.where(n28 >= 2, np.sqrt(np.maximum(var28, 0.0)), np.nan)
    ago = o - YEAR_DAYS
    mean28_ago = _mean(w(panel.csum, s, ago, 28), w(panel.cobs, s, ago, 28), min_count=7)
    first = np.where(s >= 0, panel.first_day[np.maximum(s, 0)], np.iinfo(np.int64).max)
    history = np.where(first <= o, o - first + 1, 0)
    return {
        "last_ratio": panel.at(s, o) / scale,
        "mean_7_ratio": mean7 / scale,
        "mean_28_ratio": mean28 / scale,
        "mean_91_ratio": mean91 / scale,
        "std_28_ratio": std28 / scale,
        "zero_share_28": _mean(w(panel.czero, s, o, 28), n28),
        "obs_share_28": n28 / 28.0,
        "log_scale": np.log1p(scale),
        **{f"ewm_{h}_ratio": panel.at_matrix(panel.ewm[h], s, o) / scale for h in EWM_HALFLIVES},
        "scale": scale,
        "_mean28_ago": mean28_ago,
        "history_days": history,
    }


def _weekly_features(
    panel: SeriesPanel, s: np.ndarray, o: np.ndarray, t: np.ndarray, scale: np.ndarray
) -> dict[str, np.ndarray]:
    """Weekly structure at the target's weekday, from days <= origin only.

    ``last`` is the latest day <= origin on the target's weekday (target - 7*ceil(h/7)).
    weekday_profile_Nw: mean of that weekday over the N weeks ending at ``last`` divided by
    the mean of all days over the 7N days ending at the origin (1 = an average weekday).
    lag_K_ratio: the target's value K days before it, NaN unless that day is <= origin.
    same_weekday_mean_2/4, median_4: over ``last`` and the 1 or 3 same weekdays before it.
    zero_share_weekday: zero days among that weekday's observed days over 8 weeks.
    """
    last = t - 7 * np.ceil((t - o) / 7).astype(np.int64)
    out: dict[str, np.ndarray] = {}
    for weeks in PROFILE_WEEKS:
        day_mean = _mean(
            panel.same_weekday(panel.wsum, s, last, weeks),
            panel.same_weekday(panel.wobs, s, last, weeks),
        )
        all_mean = _mean(
            panel.window(panel.csum, s, o, 7 * weeks), panel.window(panel.cobs, s, o, 7 * weeks)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"weekday_profile_{weeks}w"] = np.where(all_mean > 0, day_mean / all_mean, np.nan)
    for k in SAME_WEEKDAY_LAGS:
        day = t - k
        out[f"lag_{k}_ratio"] = np.where(day <= o, panel.at(s, day) / scale, np.nan)
    recent = np.stack([panel.at(s, last - 7 * j) for j in range(4)], axis=1) / scale[:, None]
    seen = ~np.isnan(recent)
    filled = np.where(seen, recent, 0.0)
    out["same_weekday_mean_2_ratio"] = _mean(filled[:, :2].sum(1), seen[:, :2].sum(1))
    out["same_weekday_mean_4_ratio"] = _mean(filled.sum(1), seen.sum(1))
    median = np.full(len(s), np.nan)
    any_seen = seen.any(axis=1)
    median[any_seen] = np.nanmedian(recent[any_seen], axis=1)
    out["same_weekday_median_4_ratio"] = median
    out[f"zero_share_weekday_{ZERO_WEEKDAY_WEEKS}w"] = _mean(
        panel.same_weekday(panel.wzero, s, last, ZERO_WEEKDAY_WEEKS),
        panel.same_weekday(panel.wobs, s, last, ZERO_WEEKDAY_WEEKS),
    )
    return out


def _frame(
    panel: SeriesPanel,
    pair_s: np.ndarray,
    pair_o: np.ndarray,
    row_pair: np.ndarray,
    horizon: np.ndarray,
    series: pd.DataFrame | None = None,
    holiday_country: str = DEFAULT_HOLIDAY_COUNTRY,
) -> pd.DataFrame:
    """Assemble the examples frame for rows (pair, horizon); ``series`` overrides keys."""
    pair = _pair_features(panel, pair_s, pair_o)
    s, o = pair_s[row_pair], pair_o[row_pair]
    t = o + horizon
    scale = pair["scale"][row_pair]
    lag_day = t - 7 * np.ceil(horizon / 7).astype(np.int64)
    year_ago = t - YEAR_DAYS + _YOY_HALF_WINDOW
    around_target_ago = _mean(
        panel.window(panel.csum, s, year_ago, 2 * _YOY_HALF_WINDOW + 1),
        panel.window(panel.cobs, s, year_ago, 2 * _YOY_HALF_WINDOW + 1),
        min_count=3,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        den = pair["_mean28_ago"][row_pair]
        yoy = np.where(den > 0, around_target_ago / den, np.nan)

    # keys come from the panel, or from the caller's series table (one row per pair)
    table, key_rows = (panel.series, s) if series is None else (series, row_pair)
    out: dict[str, object] = {
        c: table[c].to_numpy(dtype=object)[key_rows] for c in [*SERIES_KEY, *REGION_COLUMNS]
    }
    origin_dates = panel.start + pd.to_timedelta(o, unit="D")
    target_dates = panel.start + pd.to_timedelta(t, unit="D")
    out["origin_date"] = origin_dates
    out["target_date"] = target_dates
    out["horizon"] = horizon.astype(np.int64)
    if len(t):
        cal = calendar_table(target_dates.min(), target_dates.max(), holiday_country)
        pos = (target_dates - target_dates.min()).days.to_numpy()
        for col in CALENDAR_COLUMNS:
            out[col] = cal[col].to_numpy()[pos]
    else:
        for col in CALENDAR_COLUMNS:
            out[col] = np.empty(0, np.float32)
    for col in LEVEL_FEATURES:
        out[col] = pair[col][row_pair].astype(np.float32)
    out["lag_same_weekday_ratio"] = (panel.at(s, lag_day) / scale).astype(np.float32)
    out["yoy_ratio"] = yoy.astype(np.float32)
    for col, value in _weekly_features(panel, s, o, t, scale).items():
        out[col] = value.astype(np.float32)
    out["history_days"] = pair["history_days"][row_pair].astype(np.int64)
    out["scale"] = scale.astype(np.float64)
    out["y"] = panel.at(s, t).astype(np.float64)
    return pd.DataFrame({c: out[c] for c in EXAMPLE_COLUMNS}, copy=False)


# (series keys of the panel, pair's series row, pair's origin day) -> horizons per pair
HorizonLookup = Callable[[pd.DataFrame, np.ndarray, np.ndarray], np.ndarray]


def sample_horizons(n_pairs: int, horizon_max: int, per_origin: int, seed: int) -> np.ndarray:
    """The horizons drawn for ``n_pairs`` (series, origin) pairs, in pair order, shape
    (n_pairs, per_origin): one from each of ``per_origin`` equal blocks of 1..horizon_max,
    so short and long horizons stay balanced in the training set. One random stream over
    the pairs in the build's order (origin, then series key)."""
    edges = (np.arange(per_origin + 1) * horizon_max) // per_origin
    width = np.diff(edges)
    u = np.random.default_rng(seed).random((n_pairs, per_origin))
    return np.asarray(edges[:-1] + np.floor(u * width).astype(np.int64) + 1)


def _horizons(
    n_pairs: int, horizon_max: int, per_origin: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pair index, horizon) per row: all horizons, or a stratified random sample
    (:func:`sample_horizons`)."""
    if per_origin is None or per_origin >= horizon_max:
        row_pair = np.repeat(np.arange(n_pairs), horizon_max)
        return row_pair, np.tile(np.arange(1, horizon_max + 1), n_pairs)
    if per_origin < 1:
        raise ValueError(f"horizons_per_origin must be >= 1 or None, got {per_origin}")
    h = sample_horizons(n_pairs, horizon_max, per_origin, seed)
    return np.repeat(np.arange(n_pairs), per_origin), h.ravel()


def default_origins(
    last_date: pd.Timestamp,
    start: pd.Timestamp,
    step_days: int = 7,
    train_window_days: int | None = None,
) -> list[pd.Timestamp]:
    """Every step_days-th day ending exactly at last_date, back to start or the window."""
    if step_days < 1:
        raise ValueError(f"origin_step_days must be >= 1, got {step_days}")
    first = (
        start
        if train_window_days is None
        else max(start, last_date - pd.Timedelta(days=train_window_days))
    )
    n = (last_date - first).days // step_days
    return [last_date - pd.Timedelta(days=k * step_days) for k in range(n, -1, -1)]


def build_examples(
    facts: pd.DataFrame | SeriesPanel,
    *,
    origins: Sequence[pd.Timestamp] | None = None,
    origin_step_days: int = 7,
    horizon_max: int = 28,
    horizons_per_origin: int | None = None,
    min_history_days: int = 91,
    seed: int = 0,
    train_window_days: int | None = None,
    holiday_country: str = DEFAULT_HOLIDAY_COUNTRY,
    horizon_draw: HorizonLookup | None = None,
) -> pd.DataFrame:
    """Training/evaluation examples, one row per (series, origin, horizon).

    Origins default to every ``origin_step_days``-th day ending at the last fact date (back
    ``train_window_days`` if given); a (series, origin) is kept only when the series was
    first seen at least ``min_history_days`` days before (inclusive of) the origin. ``y`` is
    the actual volume on the target day, NaN when that day is absent or in the future.
    ``holiday_country`` picks the holiday calendar of the calendar features.
    ``horizon_draw`` (:class:`freightml.features.draw.HorizonDraw`) gives the sampled
    horizons of each pair instead of ``horizons_per_origin`` and ``seed``: a build over
    part of the series then samples exactly the rows the whole panel's build samples.
    """
    if not 1 <= horizon_max < YEAR_DAYS - _YOY_HALF_WINDOW:
        raise ValueError(f"horizon_max must be in 1..{YEAR_DAYS - _YOY_HALF_WINDOW - 1}")
    panel = _as_panel(facts)
    if origins is None:
        origins = default_origins(panel.last_date, panel.start, origin_step_days, train_window_days)
    origin_idx = np.unique([panel.day_index(t) for t in origins]).astype(np.int64)
    history = origin_idx[:, None] - panel.first_day[None, :] + 1  # origins x series
    ok = history >= max(min_history_days, 1)
    o_pos, pair_s = np.nonzero(ok)
    pair_o = origin_idx[o_pos]
    if horizon_draw is None:
        row_pair, horizon = _horizons(len(pair_s), horizon_max, horizons_per_origin, seed)
    else:
        start = np.datetime64(panel.start.date(), "D")
        h = horizon_draw(panel.series, pair_s, start + pair_o)
        row_pair, horizon = np.repeat(np.arange(len(pair_s)), h.shape[1]), h.ravel()
    return _frame(panel, pair_s, pair_o, row_pair, horizon, holiday_country=holiday_country)


def build_inference_frame(
    facts: pd.DataFrame | SeriesPanel,
    origin: pd.Timestamp,
    horizons: Iterable[int] = range(1, 29),
    series: pd.DataFrame | None = None,
    holiday_country: str = DEFAULT_HOLIDAY_COUNTRY,
) -> pd.DataFrame:
    """Feature rows for forecasting from ``origin`` (normally the last fact date).

    ``series`` (SERIES_KEY columns, optionally regions) selects the series and their order;
    series without history get rows with missing level features, ``scale`` at its floor and
    ``history_days`` 0, so the caller can treat them as cold starts. Default: every series
    seen on or before the origin. ``holiday_country`` must be the one of training.
    """
    panel = _as_panel(facts)
    o = panel.day_index(origin)
    hs = np.asarray(sorted(set(int(h) for h in horizons)), dtype=np.int64)
    if hs.size == 0 or hs.min() < 1 or hs.max() >= YEAR_DAYS - _YOY_HALF_WINDOW:
        raise ValueError(f"horizons must be integers in 1..{YEAR_DAYS - _YOY_HALF_WINDOW - 1}")
    table = None
    if series is None:
        pair_s = np.nonzero(panel.first_day <= o)[0]
    else:
        table, pair_s = _match_series(panel, series)
    pair_o = np.full(len(pair_s), o, dtype=np.int64)
    row_pair = np.repeat(np.arange(len(pair_s)), len(hs))
    return _frame(
        panel,
        pair_s,
        pair_o,
        row_pair,
        np.tile(hs, len(pair_s)),
        series=table,
        holiday_country=holiday_country,
    )


def _match_series(panel: SeriesPanel, series: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Requested series with panel regions filled in, and their panel rows (-1 = unknown)."""
    missing = [c for c in SERIES_KEY if c not in series.columns]
    if missing:
        raise ValueError(f"series frame lacks key columns {missing}")
    req = series[SERIES_KEY].astype(str).reset_index(drop=True)
    known = panel.series.astype({c: str for c in SERIES_KEY}).reset_index(names="_row")
    merged = req.merge(known, on=SERIES_KEY, how="left", validate="many_to_one")
    for col in REGION_COLUMNS:
        if col in series.columns:
            given = series[col].reset_index(drop=True)
            merged[col] = given.where(given.notna(), merged[col]).astype(object)
    rows = merged["_row"].fillna(-1).to_numpy(dtype=np.int64)
    return merged[[*SERIES_KEY, *REGION_COLUMNS]], rows
