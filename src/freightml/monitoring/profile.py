"""The reference profile: what the training window looked like, stored with every version.

Built by the train stage from the training examples and the fitted model's in-sample
predictions (:func:`build_profile`); the register stage adds the backtest's expectations
(:func:`with_expectations`) and logs it as ``profile/profile.json`` in the version's run
(:data:`PROFILE_ARTIFACT`); :func:`load_version_profile` fetches it back.

Every profiled quantity gets fixed bins once, on the whole training window:

* numeric: the distinct inner quantile edges of ``profile.numeric_bins`` quantiles; bin ``i``
  is ``(edges[i-1], edges[i]]`` with the outer bins open to -inf and +inf (ties and constant
  columns give fewer edges; a constant column has one bin). A last, extra bin counts
  missing values.
* categorical: the ``profile.max_categories`` most frequent values, then ``"__other__"``
  for the rest (only when the list was capped), then the missing bin.

Counts (and, for numerics, per-bin sums, mean and std) are kept for segment ``"all"`` and
for every value of the methodology's segment columns, so the profile's size depends on bins
and segments, not on rows; they come from a seeded sample of at most ``PROFILE_MAX_ROWS``
rows. See docs/monitoring.md.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from freightml.features.build import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    LOOKBACK_DAYS,
    REGION_COLUMNS,
    SERIES_KEY,
)
from freightml.features.calendar import CALENDAR_COLUMNS, DEFAULT_HOLIDAY_COUNTRY
from freightml.monitoring.distances import binned_wasserstein, psi
from freightml.monitoring.types import ALL, Expectation, FeatureKind, FeatureRole, segment_label

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from freightml.evaluation.methodology import GateSpec
    from freightml.monitoring.config import MonitoringConfig

PROFILE_ARTIFACT = "profile/profile.json"  # in the run of every registered version
PROFILE_FILE = "reference_profile.json"  # the train stage's copy in the model directory
OTHER = "__other__"
TARGET = "volume_tonnes"  # the target's name in the profile (``y`` of the examples)
PREDICTION = "prediction_tonnes"
# Functions of the target date, known in advance: any window of days differs from a year of
# them by construction, so they are profiled but never judged for drift.
UNJUDGED_FEATURES: frozenset[str] = frozenset(CALENDAR_COLUMNS)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureBins(_Model):
    """The fixed bins of one profiled quantity (see the module docstring for the layout)."""

    name: str
    kind: FeatureKind
    role: FeatureRole
    edges: list[float] = []  # numeric: inner edges, ascending
    categories: list[str] = []  # categorical: kept values; OTHER follows when capped
    capped: bool = False  # categorical: values beyond max_categories went to OTHER
    judged: bool = True  # False: profiled only (UNJUDGED_FEATURES)

    @property
    def n_bins(self) -> int:
        """Value bins plus the missing bin."""
        if self.kind == "numeric":
            return len(self.edges) + 2
        return len(self.categories) + int(self.capped) + 1


class SegmentProfile(_Model):
    """Counts per bin of every profiled quantity in one segment of the training window."""

    segment: str
    rows: int
    series: int
    tonnes_share: float  # of the window's target tonnes
    supported: bool  # the methodology's support rule (share of tonnes and series)
    counts: dict[str, list[int]]
    sums: dict[str, list[float]]  # numeric: sum of the values in each bin
    mean: dict[str, float | None]  # numeric, over present values
    std: dict[str, float | None]
    # input feature -> statistic (psi, wasserstein) -> the distance a window of the training
    # window's own weeks reaches at its CALIBRATION_QUANTILE: the input's threshold is at
    # least this (empty in older profiles: the configured thresholds alone)
    calibration: dict[str, dict[str, float]] = {}


class MonthProfile(_Model):
    """Counts per bin of the deciding quantities (target, prediction) in one segment and
    calendar month of the target day: the seasonal reference drift compares a window with
    (a January window against the training window's Januaries, not against a whole year)."""

    segment: str
    month: int
    rows: int
    counts: dict[str, list[int]]
    sums: dict[str, list[float]]
    mean: dict[str, float | None]
    std: dict[str, float | None]


class ReferenceProfile(_Model):
    """The training window's distributions, known identities and backtest expectations."""

    version: int = 1
    window_start: date
    window_end: date
    rows: int  # rows profiled (a sample of window_rows when there were more)
    window_rows: int  # known rows of the training window
    horizon_max: int  # the examples' settings, so drift builds the same features
    min_history_days: int
    holiday_country: str = DEFAULT_HOLIDAY_COUNTRY  # the calendar features' holidays
    segment_columns: list[str]
    features: list[FeatureBins]
    segments: list[SegmentProfile]
    stations: list[str]
    series: list[str]  # "origin|destination|cargo"
    regions: list[str]
    expectations: list[Expectation] = []
    months: list[MonthProfile] = []  # the seasonal reference (empty in older profiles)

    def months_of(self, segment: str) -> dict[int, MonthProfile]:
        """The segment's month profiles by calendar month."""
        return {m.month: m for m in self.months if m.segment == segment}

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.model_dump_json())
        return target

    @classmethod
    def load(cls, path: str | Path) -> Self:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"reference profile {source} does not exist")
        return cls.model_validate_json(source.read_text())

    def feature(self, name: str) -> FeatureBins:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"feature {name!r} is not in the profile; it has {self.feature_names()}")

    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def segment(self, label: str) -> SegmentProfile | None:
        return next((s for s in self.segments if s.segment == label), None)

    def summary(self) -> dict[str, Any]:
        """The model card's view: what was profiled and what the backtest expects."""
        return {
            "features": [f.name for f in self.features if f.role == "input"],
            "target": TARGET,
            "prediction": PREDICTION if any(f.name == PREDICTION for f in self.features) else None,
            "segments": [s.segment for s in self.segments],
            "unsupported_segments": [s.segment for s in self.segments if not s.supported],
            "stations": len(self.stations),
            "series": len(self.series),
            "regions": len(self.regions),
            "rows": self.rows,
            "bytes": len(self.model_dump_json()),
            "expectations": [e.model_dump() for e in self.expectations],
        }


def series_ids(frame: pd.DataFrame) -> np.ndarray:
    """``"origin|destination|cargo"`` per row (the profile's series identity)."""
    parts = [frame[c].astype(str).to_numpy(dtype=object) for c in SERIES_KEY]
    return np.asarray(parts[0] + "|" + parts[1] + "|" + parts[2], dtype=object)


def numeric_edges(values: np.ndarray, n_bins: int) -> list[float]:
    """Distinct inner quantile edges of the present values (none for a constant column)."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    q = np.quantile(present, np.arange(1, n_bins) / n_bins)
    edges = np.unique(q)
    # an edge at the maximum would leave the last (+inf) bin empty: drop it
    return [float(e) for e in edges if e < present.max()]


def numeric_bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin of every value: ``i`` for ``(edges[i-1], edges[i]]``, ``len(edges) + 1`` if NaN."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return np.where(np.isnan(values), len(edges) + 1, idx)


def categorical_bin_index(values: pd.Series, bins: FeatureBins) -> tuple[np.ndarray, np.ndarray]:
    """(bin, unseen) per value: kept categories by position, values outside the list go to
    OTHER when the list was capped, else to one past the missing bin (``n_bins``, an extra
    bin for values the reference never saw); missing values go to the missing bin."""
    codes = pd.Categorical(values.astype(object), categories=bins.categories).codes
    codes = codes.astype(np.int64)
    missing = values.isna().to_numpy()
    outside = (codes < 0) & ~missing
    n_kept = len(bins.categories)
    idx = np.where(outside, n_kept if bins.capped else bins.n_bins, codes)
    idx = np.where(missing, bins.n_bins - 1, idx)
    unseen = outside & (not bins.capped)
    return idx, unseen


def _categorical_bins(name: str, role: FeatureRole, values: pd.Series, cap: int) -> FeatureBins:
    freq = values.dropna().astype(str).value_counts(sort=False)
    freq = freq.sort_index().sort_values(ascending=False, kind="stable")
    kept = sorted(freq.index[:cap].tolist())
    return FeatureBins(
        name=name, kind="categorical", role=role, categories=kept, capped=len(freq) > cap
    )


def _segment_masks(frame: pd.DataFrame, segment_columns: Sequence[str]) -> list[tuple[str, Any]]:
    """(label, row mask) for "all" and every present value of the segment columns."""
    out: list[tuple[str, Any]] = [(ALL, np.ones(len(frame), dtype=bool))]
    for column in segment_columns:
        codes, values = pd.factorize(frame[column].astype(object))
        for k in sorted(range(len(values)), key=lambda i: str(values[i])):
            out.append((segment_label(column, values[k]), codes == k))
    return out


def _segment_support(
    known: pd.DataFrame, segment_columns: Sequence[str]
) -> dict[str, tuple[float, int]]:
    """(share of the target tonnes, series) per segment label, over all known rows."""
    y = known["y"].to_numpy(dtype=np.float64)
    total = float(np.nansum(y))
    sid = known.groupby(SERIES_KEY, sort=False, observed=True).ngroup().to_numpy()
    work = pd.DataFrame({"y": y, "sid": sid})
    out = {ALL: (1.0 if total > 0 else 0.0, int(np.unique(sid).size))}
    for column in segment_columns:
        grouped = work.groupby(known[column].astype(object).to_numpy(), sort=False)
        tonnes, series = grouped["y"].sum(), grouped["sid"].nunique()
        for value in tonnes.index:
            share = float(tonnes[value] / total) if total > 0 else 0.0
            out[segment_label(column, value)] = (share, int(series[value]))
    return out


# Quantities with a seasonal (per calendar month) reference: the ones that decide drift.
SEASONAL_ROLES: frozenset[str] = frozenset({"target", "prediction"})
PROFILE_MAX_ROWS = 250_000  # distributions from a uniform sample of at most this many rows
# Features that read a year of history: in the first LOOKBACK_DAYS of the training data they
# are missing because the data starts there, which never happens to a current window (the
# monitor and the predictor keep LOOKBACK_DAYS of facts), so those rows are left out of
# their reference; a young series' missing value still counts on both sides.
YEAR_BOUND_FEATURES = ("yoy_ratio",)
_MIN_YEAR_BOUND_ROWS = 1_000  # fewer rows after the first year: profile every row


def build_profile(
    examples: pd.DataFrame,
    predict: Callable[[pd.DataFrame], np.ndarray] | None,
    *,
    config: MonitoringConfig,
    segment_columns: Sequence[str],
    gates: GateSpec,
    features: Sequence[str] = FEATURE_COLUMNS,
    horizon_max: int = 28,
    min_history_days: int = 91,
    holiday_country: str = DEFAULT_HOLIDAY_COUNTRY,
    max_rows: int | None = PROFILE_MAX_ROWS,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile the training examples (rows with a known ``y``) and the in-sample predictions.

    ``examples``: the training examples (``build_examples``); ``predict``: the fitted
    model's forecast in tonnes of a frame of examples (None: predictions not profiled).
    Bins and counts come from a seeded uniform sample of ``max_rows`` known rows when there
    are more (shares then carry a standard error below 0.001; the model predicts only the
    sample); identities, segment support and the window from all known rows.
    ``horizon_max``, ``min_history_days`` and ``holiday_country``: the example settings
    (stored so drift cuts current examples the same way). Expectations are empty here;
    :func:`with_expectations` adds the backtest's.
    """
    missing = [c for c in [*features, "y", "target_date", *SERIES_KEY] if c not in examples]
    if missing:
        raise ValueError(f"build_profile: examples lack columns {missing}")
    from freightml.evaluation.gates import segment_supported  # noqa: PLC0415

    known = examples.loc[examples["y"].notna()]
    if known.empty:
        raise ValueError("build_profile: no example has a known y")
    if max_rows is not None and len(known) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(known), max_rows, replace=False))
        frame = known.iloc[rows].reset_index(drop=True)
    else:
        frame = known.reset_index(drop=True)
    columns: dict[str, tuple[FeatureRole, Any]] = {
        name: ("input", frame[name]) for name in features
    }
    columns[TARGET] = ("target", frame["y"])
    if predict is not None:
        predictions = np.asarray(predict(frame), dtype=np.float64)
        if predictions.shape != (len(frame),):
            raise ValueError(
                f"build_profile: predict returned shape {predictions.shape} for "
                f"{len(frame)} examples"
            )
        columns[PREDICTION] = ("prediction", predictions)

    origins = pd.to_datetime(frame["origin_date"]) if "origin_date" in frame else None
    before_a_year = np.zeros(len(frame), dtype=bool)
    if origins is not None:
        data_start = origins.min() - pd.Timedelta(days=min_history_days)
        before_a_year = (origins < data_start + pd.Timedelta(days=LOOKBACK_DAYS)).to_numpy()
        if (~before_a_year).sum() < _MIN_YEAR_BOUND_ROWS:
            before_a_year[:] = False
    specs: list[FeatureBins] = []
    index: dict[str, np.ndarray] = {}
    numeric: dict[str, np.ndarray] = {}
    for name, (role, raw) in columns.items():
        if name in CATEGORICAL_FEATURES:
            values = pd.Series(raw)
            spec = _categorical_bins(name, role, values, config.profile.max_categories)
            index[name] = categorical_bin_index(values, spec)[0]
        else:
            x = np.asarray(raw, dtype=np.float64)
            left_out = before_a_year if name in YEAR_BOUND_FEATURES else None
            if left_out is not None:
                x = np.where(left_out, np.nan, x)
            spec = FeatureBins(
                name=name,
                kind="numeric",
                role=role,
                edges=numeric_edges(x, config.profile.numeric_bins),
            )
            index[name] = numeric_bin_index(x, spec.edges)
            if left_out is not None:  # past the last bin: no bin counts them
                index[name] = np.where(left_out, spec.n_bins, index[name])
            numeric[name] = x
        specs.append(spec.model_copy(update={"judged": name not in UNJUDGED_FEATURES}))

    support = _segment_support(known, segment_columns)
    segments, months = [], []
    month_of = pd.to_datetime(frame["target_date"]).dt.month.to_numpy()
    seasonal = [spec for spec in specs if spec.role in SEASONAL_ROLES]
    inputs = [s for s in specs if s.role == "input" and s.kind == "numeric" and s.judged]
    blocks = _window_blocks(frame, config.window_days)
    for label, mask in _segment_masks(frame, segment_columns):
        share, n_series = support[label]
        stats = _bin_stats(specs, index, numeric, mask)
        segments.append(
            SegmentProfile(
                segment=label,
                rows=int(mask.sum()),
                series=n_series,
                tonnes_share=share,
                supported=label == ALL or segment_supported(share, n_series, gates),
                calibration=_calibration(inputs, index, numeric, mask, blocks, stats, config),
                **stats,
            )
        )
        for month in range(1, 13):
            in_month = mask & (month_of == month)
            if in_month.any():
                months.append(
                    MonthProfile(
                        segment=label,
                        month=month,
                        rows=int(in_month.sum()),
                        **_bin_stats(seasonal, index, numeric, in_month),
                    )
                )
    stations = {
        str(v) for c in ("origin_station", "destination_station") for v in known[c].unique()
    }
    regions = {str(v) for c in REGION_COLUMNS if c in known for v in known[c].dropna().unique()}
    dates = pd.to_datetime(known["target_date"])
    return ReferenceProfile(
        window_start=dates.min().date(),
        window_end=dates.max().date(),
        rows=len(frame),
        window_rows=len(known),
        horizon_max=horizon_max,
        min_history_days=min_history_days,
        holiday_country=holiday_country,
        segment_columns=list(segment_columns),
        features=specs,
        segments=segments,
        stations=sorted(stations),
        series=sorted(set(series_ids(known[SERIES_KEY].drop_duplicates()))),
        regions=sorted(set(regions)),
        months=months,
    )


def _bin_stats(
    specs: Sequence[FeatureBins],
    index: dict[str, np.ndarray],
    numeric: dict[str, np.ndarray],
    mask: np.ndarray,
) -> dict[str, Any]:
    """counts, sums, mean and std of ``specs`` over the rows in ``mask``."""
    counts, sums, mean, std = {}, {}, {}, {}
    for spec in specs:
        idx = index[spec.name][mask]
        counts[spec.name] = np.bincount(idx, minlength=spec.n_bins)[: spec.n_bins].tolist()
        if spec.kind == "numeric":
            x = numeric[spec.name][mask]
            present = ~np.isnan(x)
            sums[spec.name] = np.bincount(idx[present], weights=x[present], minlength=spec.n_bins)[
                : spec.n_bins
            ].tolist()
            mean[spec.name] = float(x[present].mean()) if present.any() else None
            std[spec.name] = float(x[present].std()) if present.any() else None
    return {"counts": counts, "sums": sums, "mean": mean, "std": std}


CALIBRATION_QUANTILE = 0.95  # a stationary window's input passes 19 times in 20
_MIN_CALIBRATION_BLOCKS = 4  # with fewer, the quantile is near the maximum anyway
# a block's rows: the profile samples the examples, and the examples sample horizons, so a
# block holds fewer rows than a current window of the same segment, but as many distinct
# (series, origin) pairs, which is what the origin-level inputs vary by
_MIN_BLOCK_ROWS = 30


def _window_blocks(frame: pd.DataFrame, days: int) -> np.ndarray | None:
    """Each row's block of ``days`` consecutive forecast origins (-1: none), as the monitor
    cuts its current window; None without origin dates."""
    if "origin_date" not in frame:
        return None
    origin = pd.to_datetime(frame["origin_date"])
    return ((origin - origin.min()).dt.days // max(days, 1)).to_numpy()


def _calibration(
    specs: Sequence[FeatureBins],
    index: dict[str, np.ndarray],
    numeric: dict[str, np.ndarray],
    mask: np.ndarray,
    blocks: np.ndarray | None,
    whole: dict[str, Any],
    config: MonitoringConfig,
) -> dict[str, dict[str, float]]:
    """How far the training window's own monitoring windows (blocks of ``window_days``
    origins) lie from the whole window, per input feature: the ``CALIBRATION_QUANTILE`` of
    their PSI and normalised Wasserstein distance. A week differs from a year by its season,
    its holidays and the few origins it holds, and a current window does as much with
    nothing changed; drift reads an input's distance against at least this."""
    if blocks is None or not specs:
        return {}
    ids, sizes = np.unique(blocks[mask], return_counts=True)
    ids = ids[sizes >= _MIN_BLOCK_ROWS]
    if len(ids) < _MIN_CALIBRATION_BLOCKS:
        return {}
    out: dict[str, dict[str, float]] = {}
    for spec in specs:
        ref_c = np.asarray(whole["counts"][spec.name], dtype=np.float64)
        ref_s = np.asarray(whole["sums"][spec.name], dtype=np.float64)
        std = whole["std"][spec.name]
        value_bins = len(spec.edges) + 1
        if not std or (ref_c[:value_bins] > 0).sum() < 2:
            continue
        idx, x = index[spec.name], numeric[spec.name]
        cur_c = np.zeros((len(ids), spec.n_bins))
        cur_s = np.zeros((len(ids), spec.n_bins))
        for k, block in enumerate(ids):
            rows = mask & (blocks == block)
            b, v = idx[rows], x[rows]
            cur_c[k] = np.bincount(b, minlength=spec.n_bins)[: spec.n_bins]
            present = ~np.isnan(v)
            cur_s[k] = np.bincount(b[present], weights=v[present], minlength=spec.n_bins)[
                : spec.n_bins
            ]
        psi_v = psi(np.broadcast_to(ref_c, cur_c.shape), cur_c)
        ref_pos = np.divide(ref_s, ref_c, out=np.zeros_like(ref_s), where=ref_c > 0)
        cur_pos = np.divide(
            cur_s, cur_c, out=np.broadcast_to(ref_pos, cur_c.shape).copy(), where=cur_c > 0
        )
        rc = np.broadcast_to(ref_c[:value_bins], (len(ids), value_bins))
        w = (
            binned_wasserstein(
                rc,
                np.broadcast_to(ref_pos[:value_bins], rc.shape),
                cur_c[:, :value_bins],
                cur_pos[:, :value_bins],
            )
            / std
        )
        out[spec.name] = {
            "psi": float(np.quantile(psi_v, CALIBRATION_QUANTILE)),
            "wasserstein": float(np.quantile(w, CALIBRATION_QUANTILE)),
        }
    return out


def expectations_from_backtest(
    predictions: pd.DataFrame, config: MonitoringConfig, segment_columns: Sequence[str]
) -> list[Expectation]:
    """WAPE and bias of the backtest per horizon bucket, overall and per segment value.

    ``predictions``: the backtest's rows (``horizon``, ``y``, ``yhat`` and the segment
    columns); horizons beyond the last bucket and cells without actual tonnes are left out.
    """
    from freightml.evaluation.metrics import metric_table  # noqa: PLC0415

    bucket = predictions["horizon"].map(config.bucket_of)
    frame = predictions.assign(horizon_bucket=bucket).loc[bucket.notna()]
    out = []
    for column in [None, *segment_columns]:
        table = metric_table(
            frame, ["horizon_bucket"] if column is None else [column, "horizon_bucket"]
        )
        for row in table.to_dict("records"):
            if not (np.isfinite(row["wape"]) and np.isfinite(row["bias"])):
                continue  # no actual tonnes in the cell: no figure to expect
            out.append(
                Expectation(
                    segment=segment_label(column, row[column] if column else None),
                    horizon_bucket=str(row["horizon_bucket"]),
                    wape=float(row["wape"]),
                    bias=float(row["bias"]),
                    n=int(row["n"]),
                )
            )
    return out


def with_expectations(
    profile: ReferenceProfile, expectations: list[Expectation]
) -> ReferenceProfile:
    """The profile with the backtest's expectations."""
    return profile.model_copy(update={"expectations": list(expectations)})


def load_version_profile(client: MlflowClient, name: str, version: str | int) -> ReferenceProfile:
    """The reference profile stored with version ``version`` of registered model ``name``.

    Raises LookupError when the version's run has no ``profile/profile.json`` (a version
    registered before profiles were stored: retrain it to get one).
    """

    version_info = client.get_model_version(name, str(version))
    run_id = version_info.run_id
    if not run_id:
        raise LookupError(f"{name} v{version} has no run: no reference profile to load")
    stored = {f.path for f in client.list_artifacts(run_id, "profile")}
    if PROFILE_ARTIFACT not in stored:
        raise LookupError(
            f"{name} v{version} has no reference profile ({PROFILE_ARTIFACT} is not in run "
            f"{run_id}): it was registered before profiles were stored; retrain to get one"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, PROFILE_ARTIFACT, tmp)
        return ReferenceProfile.load(path)
