"""Realised forecast quality and the freshness of the facts, over frames.

:func:`realised_quality` scores forecasts (online and batch) against the current revision
of their facts, as :meth:`ForecastStore.with_facts` with ``include_pending=True`` returns
them, and compares the result with what the backtest expected (the reference profile's
:class:`~freightml.monitoring.types.Expectation` list). :func:`freshness` judges how current
the facts are from the newest fact date of every series. Both are pure functions of their
frames; :func:`quality_from_store` reads the frames from a collector store and calls them.

Definitions (docs/monitoring.md explains them at more length):

- The window is the ``window_days`` target days ending on ``as_of`` (inclusive).
- A forecast is **mature** when the fact of its series and target day is in the store; only
  mature forecasts are scored. A forecast without its fact is pending (the fact has not
  arrived yet, or the day is absent: the methodology scores no absent day, and never takes
  a missing fact for zero). A later run scores it once its fact arrives.
- The join uses the current fact, so a revised fact replaces the earlier value.
- Each forecast row is scored at its own horizon, in the bucket of
  :meth:`MonitoringConfig.bucket_of`; horizons beyond the last bucket are left out. Of rows
  with the same source kind, model name and version, series, origin date and target date
  (a batch run repeated, a request sent twice) only the newest (by ``created_at``) counts.
- Segments: ``"all"`` and every value of the methodology's segment columns that meets its
  support rule (:func:`~freightml.evaluation.gates.segment_supported`) among the mature
  forecasts of the window.
- WAPE, MAE and bias are those of :mod:`freightml.evaluation.metrics`; WAPE and bias are
  None where the actual tonnes are below ``quality.min_actual_tonnes``.
- A day's expected WAPE is the profile's expectations for the segment weighted by the
  actual tonnes of each horizon bucket that day (the weights that make the day's WAPE the
  same mix of the buckets' WAPE); buckets without an expectation are left out of the mix.
- Noise is not decay. A segment's daily WAPE over a handful of series swings widely, so the
  rule judges a smoothed and cautious figure: for each day, the WAPE pooled over the
  ``quality.rolling_days`` days ending on it (days of the window only), taken at the lower
  bound of its ``quality.confidence`` interval when the segment's series are resampled
  (``quality.bootstrap_samples`` resamples, fixed seed). A day exceeds when that bound >
  the expected WAPE of the same days x (1 + tolerance); a segment is degraded when it
  exceeds on at least ``quality.degraded_days`` days of the window. A bucket cell is
  degraded by the same test over the whole window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from freightml.domain import ACTIVE_DAYS, SERIES_KEY
from freightml.evaluation.gates import segment_supported
from freightml.evaluation.methodology import Methodology
from freightml.evaluation.metrics import metric_table
from freightml.monitoring.config import MonitoringConfig, QualitySpec
from freightml.monitoring.types import (
    ALL,
    CoverageCell,
    Expectation,
    Freshness,
    QualityCell,
    QualityDay,
    QualityReport,
    SeriesTrace,
    segment_label,
)

if TYPE_CHECKING:
    from freightml.store import Store

# Columns realised_quality needs (besides the methodology's segment columns).
BANDS = ("tonnes_p10", "tonnes_p90")  # the forecasts' 80% interval, when they carry one
JOINED_COLUMNS: tuple[str, ...] = (
    "source",
    *SERIES_KEY,
    "origin_date",
    "date",
    "horizon",
    "tonnes",
    "volume_tonnes",
)
NEWEST_COLUMNS: tuple[str, ...] = (*SERIES_KEY, "newest")
WORST_SERIES = 5  # series traced in the report
_DUPLICATE_KEY = ["source", *SERIES_KEY, "origin_date", "date"]
_MODEL_COLUMNS = ("model_name", "model_version")


def window_bounds(as_of: date | str, window_days: int) -> tuple[date, date]:
    """The first and last target day of the window: ``window_days`` days ending on
    ``as_of`` (inclusive)."""
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    end = pd.Timestamp(as_of).date()
    return end - timedelta(days=window_days - 1), end


def realised_quality(
    joined: pd.DataFrame,
    *,
    expectations: Sequence[Expectation],
    config: MonitoringConfig,
    methodology: Methodology,
    as_of: date | str,
    window_days: int,
    worst_n: int = WORST_SERIES,
) -> QualityReport:
    """Realised WAPE, MAE and bias of the window's mature forecasts per segment and horizon
    bucket (``cells``) and per segment and target day (``daily``), against ``expectations``.

    ``joined`` has one row per forecast with the columns of :data:`JOINED_COLUMNS` and the
    methodology's segment columns (``volume_tonnes`` NaN where the fact has not arrived), as
    :meth:`ForecastStore.with_facts` returns with ``include_pending=True``. A frame with no
    rows (columns or not) gives an empty, valid report. ``worst_series`` traces the
    ``worst_n`` series of highest WAPE among those carrying at least the median series'
    actual tonnes (and ``quality.min_actual_tonnes``); a trace's forecast on a day is the
    mean of that day's scored forecasts.
    """
    start, end = window_bounds(as_of, window_days)
    expected = _expectation_map(expectations)
    rows = _window_rows(joined, methodology, config, start, end)
    pending = rows["volume_tonnes"].isna()
    scored = rows.loc[~pending].copy()
    scored["y"] = scored["volume_tonnes"]
    scored["yhat"] = scored["tonnes"]
    scored["sid"] = scored.groupby(list(SERIES_KEY), observed=True, sort=False).ngroup()
    spec = config.quality
    cells: list[QualityCell] = []
    daily: list[QualityDay] = []
    degraded: list[str] = []
    coverage: list[CoverageCell] = []
    for label, segment in _segments(scored, methodology):
        coverage.append(_coverage(segment, label, spec))
        # no series keys in the metric tables (no n_series to count); "sid" for the bootstrap
        part = segment[["sid", "date", "bucket", "y", "yhat"]]
        days = _daily(part, label, expected, spec, start, window_days)
        daily += days
        if sum(d.exceeds for d in days) >= spec.degraded_days:
            degraded.append(label)
        cells += _cells(part, label, config, expected, spec)
    mature = scored["date"].max() if len(scored) else None
    return QualityReport(
        window_start=start,
        window_end=end,
        mature_until=None if mature is None else mature.date(),
        forecasts_scored=len(scored),
        forecasts_pending=int(pending.sum()),
        cells=cells,
        daily=daily,
        degraded_segments=degraded,
        worst_series=_worst_series(scored, methodology, spec.min_actual_tonnes, worst_n),
        coverage=coverage,
        coverage_drifted_segments=[c.segment for c in coverage if c.drifted],
    )


def _coverage(segment: pd.DataFrame, label: str, spec: QualitySpec) -> CoverageCell:
    """The share of mature actuals inside the forecasts' 80% interval (forecasts made
    without an interval do not count)."""
    if not all(c in segment.columns for c in BANDS):
        return CoverageCell(segment=label, n=0, n_series=0, coverage_80=None, drifted=False)
    with_band = segment.loc[segment[list(BANDS)].notna().all(axis=1)]
    n = len(with_band)
    if n < spec.min_coverage_forecasts:
        return CoverageCell(segment=label, n=n, n_series=0, coverage_80=None, drifted=False)
    y = with_band["y"].to_numpy(np.float64)
    inside = (y >= with_band[BANDS[0]].to_numpy(np.float64)) & (
        y <= with_band[BANDS[1]].to_numpy(np.float64)
    )
    share = float(inside.mean())
    # a series' days miss together (one level error covers a whole horizon), so the
    # evidence counts series, not forecasts: the deviation must also be coverage_z standard
    # errors of a share over that many series
    n_series = int(with_band[list(SERIES_KEY)].drop_duplicates().shape[0])
    noise = spec.coverage_z * math.sqrt(0.8 * 0.2 / max(n_series, 1))
    off = abs(share - 0.80)
    return CoverageCell(
        segment=label,
        n=n,
        n_series=n_series,
        coverage_80=share,
        drifted=off > spec.max_coverage_error and off > noise,
    )


def freshness(
    newest_by_series: pd.DataFrame,
    as_of: date | str,
    config: MonitoringConfig,
    *,
    active_since: date | str | None = None,
) -> Freshness:
    """How current the facts are on ``as_of``, from the newest fact date of every series
    (:data:`NEWEST_COLUMNS`, as :meth:`FactStore.newest_by_series` returns).

    Each date must be on or before ``as_of`` (a series' newest fact up to ``as_of``;
    later ones are an error). ``facts_age_days`` is ``as_of`` minus the newest fact date.
    Active series are those whose newest fact is on or after ``active_since`` (every
    series in the frame when None); an active series is stale when
    its newest fact is more than ``freshness.stale_after_days`` days before ``as_of``.
    ``stale`` (the alert condition) holds when there is no fact at all, when the age exceeds
    ``freshness.max_facts_age_days`` or when the stale share exceeds
    ``freshness.max_stale_series_share``.
    """
    day = pd.Timestamp(as_of).normalize()
    if len(newest_by_series) == 0:
        newest = pd.Series([], dtype="datetime64[ns]")
    else:
        _require(newest_by_series, NEWEST_COLUMNS, "newest_by_series")
        newest = _dates(newest_by_series["newest"], "newest_by_series", "newest")
    later = newest > day
    if later.any():
        raise ValueError(
            f"newest_by_series has {int(later.sum())} series with a newest fact after as_of "
            f"{day.date()} (first: {newest[later].iloc[0].date()}); read it with "
            "FactStore.newest_by_series(until=as_of)"
        )
    spec = config.freshness
    if newest.empty:
        return Freshness(
            newest_fact=None,
            facts_age_days=None,
            active_series=0,
            stale_series=0,
            stale_series_share=0.0,
            stale=True,
        )
    top = newest.max()
    age = float((day - top).days)
    if active_since is not None:
        newest = newest[newest >= pd.Timestamp(active_since).normalize()]
    active = len(newest)
    stale = int(((day - newest).dt.days > spec.stale_after_days).sum())
    share = stale / active if active else 0.0
    return Freshness(
        newest_fact=top.date(),
        facts_age_days=age,
        active_series=active,
        stale_series=stale,
        stale_series_share=share,
        stale=age > spec.max_facts_age_days or share > spec.max_stale_series_share,
    )


def quality_from_store(
    store: Store,
    *,
    expectations: Sequence[Expectation],
    config: MonitoringConfig,
    methodology: Methodology,
    as_of: date | str,
    window_days: int,
    model_name: str | None = None,
    active_since: date | str | None = None,
    environment: str | None = None,
) -> tuple[QualityReport, Freshness]:
    """:func:`realised_quality` and :func:`freshness` over a collector store's current data.

    Reads the window's forecasts (of ``model_name``, or of every model) joined with their
    current facts, pending ones included, and the newest fact date of every series up to
    ``as_of``. Active series for staleness are those with a fact on or after
    ``active_since``, by default :data:`ACTIVE_DAYS` days before ``as_of``. ``environment``
    keeps the forecasts of one serving environment (namespace).
    """
    start, end = window_bounds(as_of, window_days)
    joined = store.forecasts.with_facts(
        start, end, model_name=model_name, include_pending=True, environment=environment
    )
    report = realised_quality(
        joined,
        expectations=expectations,
        config=config,
        methodology=methodology,
        as_of=end,
        window_days=window_days,
    )
    since = end - timedelta(days=ACTIVE_DAYS) if active_since is None else active_since
    newest = store.facts.newest_by_series(until=end)
    return report, freshness(newest, end, config, active_since=since)


# --- the pieces ------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} lacks column(s) {missing}; it has {[str(c) for c in frame.columns]}"
        )


def _dates(values: pd.Series, frame: str, column: str) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce")
    if parsed.isna().any():
        raise ValueError(
            f"{frame} column {column} has {int(parsed.isna().sum())} missing or unparsable "
            f"date(s) (first: {values[parsed.isna()].iloc[0]!r})"
        )
    return parsed.dt.normalize().astype("datetime64[ns]")


def _expectation_map(expectations: Sequence[Expectation]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for e in expectations:
        key = (e.segment, e.horizon_bucket)
        if key in out:
            raise ValueError(
                f"two expectations for segment {e.segment!r} and horizon bucket "
                f"{e.horizon_bucket!r}: the profile must hold one per pair"
            )
        if math.isfinite(e.wape):
            out[key] = float(e.wape)
    return out


def _window_rows(
    joined: pd.DataFrame, methodology: Methodology, config: MonitoringConfig, start: date, end: date
) -> pd.DataFrame:
    """The window's forecast rows with their bucket, one per duplicate key (the newest)."""
    needed = [*JOINED_COLUMNS, *(c for c in methodology.segments if c not in JOINED_COLUMNS)]
    if len(joined) == 0:
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in needed})
        for col in ("date", "origin_date"):
            empty[col] = empty[col].astype("datetime64[ns]")
        for col in ("tonnes", "volume_tonnes"):
            empty[col] = empty[col].astype("float64")
        empty["horizon"] = empty["horizon"].astype("int64")
        empty["bucket"] = pd.Series([], dtype=object)
        return empty
    _require(joined, needed, "forecasts joined with facts")
    extra = [c for c in (*_MODEL_COLUMNS, "created_at", *BANDS) if c in joined.columns]
    rows = joined[[*needed, *extra]].copy()
    for col in ("date", "origin_date"):
        rows[col] = _dates(rows[col], "forecasts joined with facts", col)
    rows = rows.loc[(rows["date"] >= pd.Timestamp(start)) & (rows["date"] <= pd.Timestamp(end))]
    for col in ("tonnes", "volume_tonnes"):
        rows[col] = pd.to_numeric(rows[col], errors="coerce").astype("float64")
    if rows["tonnes"].isna().any():
        raise ValueError(
            f"forecasts joined with facts: {int(rows['tonnes'].isna().sum())} forecast(s) "
            "have no tonnes"
        )
    horizon = pd.to_numeric(rows["horizon"], errors="coerce")
    if horizon.isna().any():
        raise ValueError(
            f"forecasts joined with facts: {int(horizon.isna().sum())} forecast(s) have no "
            "integer horizon"
        )
    rows["horizon"] = horizon.astype("int64")
    if "created_at" in rows.columns:
        rows = rows.sort_values("created_at", kind="stable")
    key = [*(c for c in _MODEL_COLUMNS if c in rows.columns), *_DUPLICATE_KEY]
    rows = rows.drop_duplicates(key, keep="last")
    buckets = {h: config.bucket_of(int(h)) for h in rows["horizon"].unique()}
    rows["bucket"] = rows["horizon"].map(buckets)
    return rows.loc[rows["bucket"].notna()].sort_values(["date", *SERIES_KEY], kind="stable")


def _segments(scored: pd.DataFrame, methodology: Methodology) -> list[tuple[str, pd.DataFrame]]:
    """``"all"`` and every supported segment of the methodology's columns, in column then
    value order."""
    out = [(ALL, scored)]
    if scored.empty:
        return out
    for column in methodology.segments:
        columns = list(dict.fromkeys([column, *SERIES_KEY, "y", "yhat"]))
        table = metric_table(scored[columns], [column])
        supported = {
            row[column]
            for row in table.to_dict("records")
            if segment_supported(row["tonnes_share"], row["n_series"], methodology.gates)
        }
        for value, part in scored.groupby(column, observed=True, sort=True):
            if value in supported:
                out.append((segment_label(column, value), part))
    return out


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _exceeds(low: float | None, expected: float | None, spec: QualitySpec) -> bool:
    return low is not None and expected is not None and low > expected * (1.0 + spec.tolerance)


def lower_wape(errors: np.ndarray, actuals: np.ndarray, spec: QualitySpec) -> np.ndarray:
    """The lower ``1 - spec.confidence`` quantile of the pooled WAPE ``sum(errors) /
    sum(actuals)`` when the rows (series) are resampled with replacement; ``errors`` and
    ``actuals`` are (series, k) and the result has k values (NaN where no resample has
    volume). The seed is fixed, so the same data always gives the same bound."""
    n_series, k = errors.shape
    if n_series == 0:
        return np.full(k, np.nan)
    rng = np.random.default_rng(0)
    counts = rng.multinomial(n_series, np.full(n_series, 1.0 / n_series), spec.bootstrap_samples)
    weights = counts.astype(np.float64)
    total_error, total_actual = weights @ errors, weights @ actuals
    ratio = np.full_like(total_error, np.nan)
    np.divide(total_error, total_actual, out=ratio, where=total_actual > 0)
    out = np.full(k, np.nan)
    some = ~np.isnan(ratio).all(axis=0)
    out[some] = np.nanquantile(ratio[:, some], 1.0 - spec.confidence, axis=0)
    return out


def _per_series(part: pd.DataFrame, column: str, values: np.ndarray, n_columns: int) -> np.ndarray:
    """(series, n_columns) sums of ``values`` by the rows' series and ``column`` index."""
    sids, series = np.unique(part["sid"].to_numpy(), return_inverse=True)
    out = np.zeros((len(sids), n_columns))
    np.add.at(out, (series, part[column].to_numpy()), values)
    return out


def _cells(
    part: pd.DataFrame,
    segment: str,
    config: MonitoringConfig,
    expected: dict[tuple[str, str], float],
    spec: QualitySpec,
) -> list[QualityCell]:
    if part.empty:
        return []
    table = metric_table(part[["bucket", "y", "yhat"]], ["bucket"]).set_index("bucket")
    labels = config.bucket_labels()
    frame = part.assign(b=part["bucket"].map({b: i for i, b in enumerate(labels)}))
    errors = _per_series(frame, "b", (frame["y"] - frame["yhat"]).abs().to_numpy(), len(labels))
    actuals = _per_series(frame, "b", frame["y"].to_numpy(), len(labels))
    lows = lower_wape(errors, actuals, spec)
    cells = []
    for i, bucket in enumerate(labels):
        if bucket not in table.index:
            continue
        row = table.loc[bucket]
        enough = row["actual_tonnes"] >= spec.min_actual_tonnes
        wape = _number(row["wape"]) if enough else None
        low = _number(lows[i]) if enough else None
        exp = expected.get((segment, bucket))
        cells.append(
            QualityCell(
                segment=segment,
                horizon_bucket=bucket,
                n=int(row["n"]),
                actual_tonnes=float(row["actual_tonnes"]),
                wape=wape,
                mae=float(row["mae"]),
                bias=_number(row["bias"]) if enough else None,
                expected_wape=exp,
                degraded=_exceeds(low, exp, spec),
                wape_low=low,
            )
        )
    return cells


def _rolling(matrix: np.ndarray, days: int) -> np.ndarray:
    """Sums over the ``days`` columns ending at each column (fewer at the start)."""
    total = np.cumsum(matrix, axis=-1)
    total[..., days:] = total[..., days:] - total[..., :-days].copy()
    return total


def _daily(
    part: pd.DataFrame,
    segment: str,
    expected: dict[tuple[str, str], float],
    spec: QualitySpec,
    start: date,
    window_days: int,
) -> list[QualityDay]:
    if part.empty:
        return []
    table = metric_table(part[["date", "y", "yhat"]], ["date"])
    mix = metric_table(part[["date", "bucket", "y", "yhat"]], ["date", "bucket"])
    mix["expected"] = [expected.get((segment, b), np.nan) for b in mix["bucket"]]
    mix = mix.loc[mix["expected"].notna()]
    weighted = (mix["expected"] * mix["actual_tonnes"]).groupby(mix["date"]).sum()
    weight = mix["actual_tonnes"].groupby(mix["date"]).sum()
    day_expected = (weighted / weight.where(weight > 0)).to_dict()

    # the rule's figures: pooled over rolling_days, by series for the bootstrap
    frame = part.assign(
        d=(part["date"] - pd.Timestamp(start)).dt.days.astype("int64"),
        e=[expected.get((segment, b), np.nan) for b in part["bucket"]],
    )
    y = frame["y"].to_numpy()
    has_expectation = frame["e"].notna().to_numpy()
    errors = _rolling(
        _per_series(frame, "d", np.abs(y - frame["yhat"].to_numpy()), window_days),
        spec.rolling_days,
    )
    actuals = _rolling(_per_series(frame, "d", y, window_days), spec.rolling_days)
    expected_tonnes = np.where(has_expectation, y * frame["e"].fillna(0), 0)
    weighted_e = _rolling(
        _per_series(frame, "d", expected_tonnes, window_days), spec.rolling_days
    ).sum(axis=0)
    weight_e = _rolling(
        _per_series(frame, "d", np.where(has_expectation, y, 0), window_days), spec.rolling_days
    ).sum(axis=0)
    pooled_actual = actuals.sum(axis=0)
    pooled = np.full(window_days, np.nan)
    np.divide(errors.sum(axis=0), pooled_actual, out=pooled, where=pooled_actual > 0)
    pooled_expected = np.full(window_days, np.nan)
    np.divide(weighted_e, weight_e, out=pooled_expected, where=weight_e > 0)
    lows = lower_wape(errors, actuals, spec)

    days = []
    for row in table.to_dict("records"):
        enough = row["actual_tonnes"] >= spec.min_actual_tonnes
        i = (row["date"] - pd.Timestamp(start)).days
        rolling_enough = pooled_actual[i] >= spec.min_actual_tonnes
        low = _number(lows[i]) if rolling_enough else None
        rolling_expected = _number(pooled_expected[i])
        days.append(
            QualityDay(
                date=row["date"].date(),
                segment=segment,
                n=int(row["n"]),
                wape=_number(row["wape"]) if enough else None,
                mae=float(row["mae"]),
                bias=_number(row["bias"]) if enough else None,
                expected_wape=_number(day_expected.get(row["date"], math.nan)),
                exceeds=_exceeds(low, rolling_expected, spec),
                rolling_wape=_number(pooled[i]) if rolling_enough else None,
                rolling_wape_low=low,
                rolling_expected_wape=rolling_expected,
            )
        )
    return days


def _worst_series(
    scored: pd.DataFrame, methodology: Methodology, min_tonnes: float, n: int
) -> list[SeriesTrace]:
    if scored.empty or n < 1:
        return []
    table = metric_table(scored, list(SERIES_KEY))
    floor = max(min_tonnes, float(table["actual_tonnes"].median()))
    candidates = table.loc[(table["actual_tonnes"] >= floor) & table["wape"].notna()]
    top = candidates.sort_values(
        ["wape", *SERIES_KEY], ascending=[False, True, True, True], kind="stable"
    ).head(n)
    column = methodology.segments[0] if methodology.segments else None
    traces = []
    for row in top.to_dict("records"):
        mask = np.logical_and.reduce([scored[k] == row[k] for k in SERIES_KEY])
        rows = scored.loc[mask]
        per_day = rows.groupby("date", sort=True).agg(
            forecast=("yhat", "mean"), actual=("y", "first")
        )
        segment = ALL if column is None else segment_label(column, rows[column].iloc[-1])
        traces.append(
            SeriesTrace(
                origin_station=str(row["origin_station"]),
                destination_station=str(row["destination_station"]),
                cargo_type=str(row["cargo_type"]),
                segment=segment,
                wape=_number(row["wape"]),
                dates=[d.date() for d in per_day.index],
                forecast=[float(v) for v in per_day["forecast"]],
                actual=[float(v) for v in per_day["actual"]],
            )
        )
    return traces
