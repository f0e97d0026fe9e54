"""Drift of a window of current data against the reference profile, vectorised.

Current values are put into the profile's own bins (all numeric features of a chunk of rows
at once), counted per segment with one ``np.bincount``, and every statistic is computed for
all (segment, feature) pairs as array operations:

* numeric: PSI over the bins including the missing bin, and the Wasserstein-1 distance
  divided by the reference standard deviation (:func:`binned_wasserstein`);
* categorical: the Jensen-Shannon distance (base 2) of the category shares
  (:func:`jensen_shannon`) and the share of present values the reference never saw;
* identity (stations, series): the unseen share only.

A statistic above its threshold is drifted. A numeric feature counts as drifted by its
Wasserstein distance (PSI is reported beside it: on quantile bins of tonnes, whose spread
across series is wide, it needs large shifts and is dominated by the mix of a few series in
a small segment); a categorical one when its JS distance or its unseen share is; an identity
when its unseen share is. A feature without spread in the reference segment (one bin, e.g.
``mean_28_ratio`` which is 1 by construction, or the region inside its own segment) is not
judged. A segment drifts when the share of its drifted *deciding* features (the facts'
target, the requests' predictions: :data:`DECIDING_ROLES`) reaches
``drift.drifted_feature_share``, or when an identity drifted (new stations or series).
Model inputs are reported but do not decide: they are ratios to each series' own recent
level that move with the season, and a window's rows are clustered (28 horizons share one
value per series and origin), so a 7-day window judges them on a handful of independent
values. See docs/monitoring.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from freightml.monitoring.config import MonitoringConfig
from freightml.monitoring.distances import binned_wasserstein, jensen_shannon, psi
from freightml.monitoring.profile import (
    SEASONAL_ROLES,
    FeatureBins,
    ReferenceProfile,
    categorical_bin_index,
    numeric_bin_index,
)
from freightml.monitoring.types import (
    ALL,
    DriftReport,
    DriftResult,
    FeatureRole,
    Statistic,
    segment_label,
)

CHUNK_ROWS = 65_536  # rows binned at once (bounds the temporary (rows, features, edges) array)


# -- current data, binned and counted per segment -----------------------------------------


@dataclass
class Part:
    """One frame of current data and the quantities it carries (profile feature names)."""

    rows: int
    segments: dict[str, pd.Series]  # segment column -> value per row
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, pd.Series] = field(default_factory=dict)
    identity: dict[str, tuple[pd.Series, frozenset[str]]] = field(default_factory=dict)
    # calendar month (1-12) of each row's target day: the deciding quantities are compared
    # with the reference of the same months (ReferenceProfile.months) when given
    months: np.ndarray | None = None
    # series id of each row: when given, a segment needs drift.min_series distinct series
    # besides drift.min_rows rows (the rows of one series are not independent)
    units: np.ndarray | None = None


@dataclass
class _Judged:
    results: list[DriftResult]
    judged: dict[str, int]  # segment label -> current rows (judged segments)
    unsupported: dict[str, int]


def _segment_codes(part: Part, labels: list[str], columns: Sequence[str]) -> list[np.ndarray]:
    """Per grouping ("all", then each segment column): the index in ``labels`` per row,
    -1 where the row's segment is not judged."""
    where = {label: i for i, label in enumerate(labels)}
    codes = [np.full(part.rows, where.get(ALL, -1), dtype=np.int64)]
    for column in columns:
        values = part.segments[column].astype(object)
        index = {v: where.get(segment_label(column, v), -1) for v in values.dropna().unique()}
        codes.append(values.map(index).fillna(-1).to_numpy(dtype=np.int64))
    return codes


def _segment_rows(part: Part, columns: Sequence[str]) -> dict[str, int]:
    out = {ALL: part.rows}
    for column in columns:
        counts = part.segments[column].astype(object).value_counts(dropna=True)
        for value, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
            out[segment_label(column, value)] = int(n)
    return out


def _segment_units(part: Part, columns: Sequence[str]) -> dict[str, int]:
    """Distinct series per segment label (empty when the part has no series ids)."""
    if part.units is None:
        return {}
    units = pd.Series(part.units)
    out = {ALL: int(units.nunique())}
    for column in columns:
        values = part.segments[column].astype(object)
        for value, n in units.groupby(values.to_numpy(), sort=False).nunique().items():
            out[segment_label(column, value)] = int(n)
    return out


def _count_numeric(
    part: Part, specs: list[FeatureBins], codes: list[np.ndarray], n_segments: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(counts, sums) of shape (segments, features, width): all features binned at once."""
    n_feat = len(specs)
    edges = np.full((n_feat, max((len(s.edges) for s in specs), default=0)), np.inf)
    for f, spec in enumerate(specs):
        edges[f, : len(spec.edges)] = spec.edges
    missing_bin = np.array([len(s.edges) + 1 for s in specs])
    size = n_segments * n_feat * width
    counts = np.zeros(size, dtype=np.float64)
    sums = np.zeros(size, dtype=np.float64)
    offsets = (np.arange(n_feat) * width)[None, :]
    for lo in range(0, part.rows, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, part.rows)
        x = np.column_stack([part.numeric[s.name][lo:hi] for s in specs]).astype(np.float64)
        # number of edges strictly below x = the right-closed bin (NaN compares False)
        idx = (x[:, :, None] > edges[None, :, :]).sum(axis=2)
        nan = np.isnan(x)
        idx = np.where(nan, missing_bin[None, :], idx)
        values = np.where(nan, 0.0, x)
        for code in codes:
            c = code[lo:hi]
            keep = c >= 0
            flat = (c[keep, None] * (n_feat * width) + offsets + idx[keep]).ravel()
            counts += np.bincount(flat, minlength=size)
            sums += np.bincount(flat, weights=values[keep].ravel(), minlength=size)
    shape = (n_segments, n_feat, width)
    return counts.reshape(shape), sums.reshape(shape)


def _reference(
    profile: ReferenceProfile, labels: list[str], specs: list[FeatureBins], width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference (counts, sums, mean, std) as (segments, features[, width]) arrays."""
    shape = (len(labels), len(specs))
    counts, sums = np.zeros((*shape, width)), np.zeros((*shape, width))
    mean, std = np.full(shape, np.nan), np.full(shape, np.nan)
    for i, label in enumerate(labels):
        seg = profile.segment(label)
        assert seg is not None
        for f, spec in enumerate(specs):
            c = seg.counts[spec.name]
            counts[i, f, : len(c)] = c
            if spec.kind == "numeric":
                s = seg.sums[spec.name]
                sums[i, f, : len(s)] = s
                m, d = seg.mean[spec.name], seg.std[spec.name]
                mean[i, f] = np.nan if m is None else m
                std[i, f] = np.nan if d is None else d
    return counts, sums, mean, std


def _seasonal_reference(
    profile: ReferenceProfile,
    part: Part,
    labels: list[str],
    codes: list[np.ndarray],
    specs: list[FeatureBins],
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Replace, in place, the reference (counts, sums, std) of the seasonal quantities of
    each segment by the mix of its month profiles weighted by the months of the segment's
    current rows. A segment whose current rows fall in a month the training window did not
    cover keeps the whole-window reference."""
    if part.months is None or not profile.months:
        return
    ref_c, ref_s, ref_std = reference
    seasonal = [f for f, spec in enumerate(specs) if spec.role in SEASONAL_ROLES]
    for i, label in enumerate(labels):
        rows = np.zeros(part.rows, dtype=bool)
        for code in codes:
            rows |= code == i
        weights = np.bincount(part.months[rows], minlength=13)[1:13].astype(np.float64)
        if weights.sum() == 0:
            continue
        weights /= weights.sum()
        by_month = profile.months_of(label)
        used = [m for m in range(1, 13) if weights[m - 1] > 0]
        if any(m not in by_month for m in used):
            continue
        n_used = sum(by_month[m].rows for m in used)
        for f in seasonal:
            name = specs[f].name
            counts = np.zeros(ref_c.shape[2])
            sums = np.zeros(ref_c.shape[2])
            first = second = 0.0
            for m in used:
                month, w = by_month[m], weights[m - 1]
                c = np.asarray(month.counts[name], dtype=np.float64)
                n = c.sum()
                mean, std = month.mean[name], month.std[name]
                if n == 0 or mean is None or std is None:
                    break
                counts[: len(c)] += w * c / n * n_used
                sums[: len(c)] += w * np.asarray(month.sums[name]) / n * n_used
                first += w * mean
                second += w * (std**2 + mean**2)
            else:
                ref_c[i, f], ref_s[i, f] = counts, sums
                ref_std[i, f] = np.sqrt(max(second - first**2, 0.0))


def _log_wasserstein(
    values: np.ndarray, spec: FeatureBins, reference: tuple[np.ndarray, np.ndarray]
) -> float:
    """The Wasserstein distance of a deciding quantity (tonnes) on the log scale, normalised
    by the reference's standard deviation on that scale.

    Bin representatives are ``log(1 + bin mean)`` on both sides, so a level shift by a
    factor moves a small lane as much as a big one; on tonnes, the few biggest lanes of a
    segment make the whole distance, and their own wander alone crosses the threshold."""
    ref_counts, ref_pos = reference
    total = ref_counts.sum()
    if total <= 0:
        return 0.0
    ref_log = np.log1p(np.maximum(ref_pos, 0.0))
    p = ref_counts / total
    mean = float((p * ref_log).sum())
    std = float(np.sqrt((p * (ref_log - mean) ** 2).sum()))
    idx = numeric_bin_index(values, spec.edges)
    value_bin = idx <= len(spec.edges)  # not the missing bin
    width = len(ref_counts)
    counts = np.bincount(idx[value_bin], minlength=width)[:width].astype(np.float64)
    sums = np.bincount(idx[value_bin], weights=values[value_bin], minlength=width)[:width]
    if not std > 0 or counts.sum() == 0:
        return 0.0
    position = np.divide(sums, counts, out=ref_pos.copy(), where=counts > 0)
    cur_log = np.log1p(np.maximum(position, 0.0))
    return float(binned_wasserstein(ref_counts, ref_log, counts, cur_log)) / std


def _result(
    feature: FeatureBins | str,
    role: FeatureRole,
    segment: str,
    statistic: Statistic,
    value: float,
    threshold: float,
    n: tuple[float, float],
) -> DriftResult:
    """One statistic; ``n``: (reference, current) rows behind it."""
    name, kind = (
        (feature.name, feature.kind)
        if isinstance(feature, FeatureBins)
        else (feature, "categorical")
    )
    return DriftResult(
        feature=name,
        kind=kind,
        role=role,
        segment=segment,
        statistic=statistic,
        value=float(value),
        threshold=float(threshold),
        drifted=bool(value > threshold),
        n_reference=int(n[0]),
        n_current=int(n[1]),
    )


def _judge_part(profile: ReferenceProfile, part: Part, config: MonitoringConfig) -> _Judged:
    """Every statistic of ``part`` in every segment with enough support on both sides."""
    spec = config.drift
    columns = [c for c in profile.segment_columns if c in part.segments]
    rows = _segment_rows(part, columns)
    units = _segment_units(part, columns)
    labels, unsupported = [], {}
    for label, count in rows.items():
        reference = profile.segment(label)
        enough = count >= spec.min_rows and units.get(label, spec.min_series) >= spec.min_series
        if enough and reference is not None and reference.supported:
            labels.append(label)
        else:
            unsupported[label] = count
    results: list[DriftResult] = []
    if not labels:
        return _Judged(results, {}, unsupported)
    codes = _segment_codes(part, labels, columns)

    numeric = [profile.feature(n) for n in part.numeric if profile.feature(n).judged]
    if numeric:
        width = max(s.n_bins for s in numeric)
        cur_c, cur_s = _count_numeric(part, numeric, codes, len(labels), width)
        ref_c, ref_s, _, ref_std = _reference(profile, labels, numeric, width)
        _seasonal_reference(profile, part, labels, codes, numeric, (ref_c, ref_s, ref_std))
        psi_v = psi(ref_c, cur_c)
        # Wasserstein over the value bins (the missing bin is PSI's business)
        value_bins = (
            np.arange(width)[None, None, :]
            < np.array([len(s.edges) + 1 for s in numeric])[None, :, None]
        )
        rc, cc = np.where(value_bins, ref_c, 0.0), np.where(value_bins, cur_c, 0.0)
        ref_pos = np.divide(ref_s, ref_c, out=np.zeros_like(ref_s), where=ref_c > 0)
        cur_pos = np.divide(cur_s, cur_c, out=ref_pos.copy(), where=cur_c > 0)
        w = binned_wasserstein(rc, ref_pos, cc, cur_pos)
        # features without reference spread are not judged (below); guard the division
        w_norm = w / np.where(ref_std > 0, ref_std, 1.0)
        defined = (rc.sum(axis=2) > 0) & (cc.sum(axis=2) > 0)
        n_ref, n_cur = ref_c.sum(axis=2), cur_c.sum(axis=2)
        # a feature without spread in the reference segment (one value bin) is not judged
        spread = ((rc > 0).sum(axis=2) >= 2) & defined
        for i, label in enumerate(labels):
            calibrated = profile.segment(label).calibration  # type: ignore[union-attr]
            for f, s in enumerate(numeric):
                if not spread[i, f]:
                    continue
                n = (n_ref[i, f], n_cur[i, f])
                own = calibrated.get(s.name, {}) if s.role == "input" else {}
                psi_t = max(spec.psi, own.get("psi", 0.0))
                w_t = max(spec.wasserstein, own.get("wasserstein", 0.0))
                results.append(_result(s, s.role, label, "psi", psi_v[i, f], psi_t, n))
                wd = _result(s, s.role, label, "wasserstein", w_norm[i, f], w_t, n)
                if s.role in SEASONAL_ROLES:
                    rows_i = np.zeros(part.rows, dtype=bool)
                    for code in codes:
                        rows_i |= code == i
                    value = _log_wasserstein(
                        part.numeric[s.name][rows_i], s, (rc[i, f], ref_pos[i, f])
                    )
                    wd = wd.model_copy(
                        update={"value": value, "drifted": bool(value > spec.wasserstein)}
                    )
                results.append(wd)

    for name, values in part.categorical.items():
        bins = profile.feature(name)
        if not bins.judged:
            continue
        idx, unseen = categorical_bin_index(values, bins)
        width = bins.n_bins + 1  # + the unseen bin
        cur = np.zeros((len(labels), width))
        unseen_n = np.zeros(len(labels))
        present_n = np.zeros(len(labels))
        present = ~values.isna().to_numpy()
        for code in codes:
            keep = code >= 0
            cur += np.bincount(
                code[keep] * width + idx[keep], minlength=len(labels) * width
            ).reshape(len(labels), width)
            unseen_n += np.bincount(code[keep], weights=unseen[keep], minlength=len(labels))
            present_n += np.bincount(code[keep], weights=present[keep], minlength=len(labels))
        ref = np.zeros((len(labels), width))
        for i, label in enumerate(labels):
            ref_seg = profile.segment(label)
            assert ref_seg is not None
            ref[i, : bins.n_bins] = ref_seg.counts[name]
        js = jensen_shannon(ref, cur)
        for i, label in enumerate(labels):
            if (ref[i, : bins.n_bins - 1] > 0).sum() < 2:
                continue  # one category in the reference segment: nothing to compare
            n = (ref[i].sum(), cur[i].sum())
            role = bins.role
            results.append(
                _result(bins, role, label, "jensen_shannon", js[i], spec.jensen_shannon, n)
            )
            if not bins.capped and present_n[i] > 0:
                share = unseen_n[i] / present_n[i]
                results.append(
                    _result(bins, role, label, "unseen_share", share, spec.unseen_share, n)
                )

    for name, (values, known) in part.identity.items():
        present = values.notna().to_numpy()
        unseen = present & ~values.astype(object).isin(known).to_numpy()
        unseen_n = np.zeros(len(labels))
        present_n = np.zeros(len(labels))
        for code in codes:
            keep = code >= 0
            unseen_n += np.bincount(code[keep], weights=unseen[keep], minlength=len(labels))
            present_n += np.bincount(code[keep], weights=present[keep], minlength=len(labels))
        for i, label in enumerate(labels):
            if present_n[i] == 0:
                continue
            seg = profile.segment(label)
            assert seg is not None
            share = unseen_n[i] / present_n[i]
            n = (seg.rows, present_n[i])
            results.append(
                _result(name, "identity", label, "unseen_share", share, spec.unseen_share, n)
            )
    return _Judged(results, {label: rows[label] for label in labels}, unsupported)


def feature_drifted(results: Sequence[DriftResult]) -> bool:
    """The verdict of one feature in one segment from its statistics: a numeric feature by
    its Wasserstein distance (PSI is reported beside it), a categorical one when its JS
    distance or its unseen share drifted."""
    by_stat = {r.statistic: r.drifted for r in results}
    if results and results[0].kind == "numeric":
        return by_stat.get("wasserstein", by_stat.get("psi", False))
    return any(by_stat.values())


# What decides a segment, per source: the facts' target, the forecasts' predictions.
DECIDING_ROLES: dict[str, frozenset[str]] = {
    "facts": frozenset({"target"}),
    "requests": frozenset({"prediction"}),
}


def drifted_segments(
    results: Sequence[DriftResult], share: float, deciding: frozenset[str]
) -> list[str]:
    """Segments that drifted, in result order: the share of their drifted features with a
    role in ``deciding`` reached ``share``, or an identity (stations, series) drifted. The
    other features are reported but do not decide (docs/monitoring.md explains why)."""
    grouped: dict[str, dict[str, list[DriftResult]]] = {}
    for r in results:
        grouped.setdefault(r.segment, {}).setdefault(r.feature, []).append(r)
    out = []
    for segment, features in grouped.items():
        verdicts = [(rs[0].role, feature_drifted(rs)) for rs in features.values()]
        decided = [v for role, v in verdicts if role in deciding]
        identity = any(v for role, v in verdicts if role == "identity")
        if identity or (decided and sum(decided) / len(decided) >= share):
            out.append(segment)
    return out


def drift_report(
    profile: ReferenceProfile,
    parts: Sequence[Part],
    *,
    source: Literal["facts", "requests"],
    window_start: date,
    window_end: date,
    config: MonitoringConfig,
) -> DriftReport:
    """Judge every part and combine them into one report; ``rows`` is the first part's.

    A segment is unsupported when no part had enough rows to judge it."""
    results: list[DriftResult] = []
    judged: set[str] = set()
    seen: dict[str, None] = {}
    for part in parts:
        out = _judge_part(profile, part, config)
        results += out.results
        judged |= set(out.judged)
        for label in [*out.judged, *out.unsupported]:
            seen.setdefault(label, None)
    return DriftReport(
        source=source,
        window_start=window_start,
        window_end=window_end,
        rows=parts[0].rows if parts else 0,
        results=results,
        drifted_segments=drifted_segments(
            results, config.drift.drifted_feature_share, DECIDING_ROLES[source]
        ),
        unsupported_segments=[s for s in seen if s not in judged],
    )
