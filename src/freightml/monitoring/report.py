"""The monitoring report: one self-contained HTML page per :class:`Snapshot`, and the short
plain-text summary the CLI prints.

The page has inline CSS and its figures as PNG data URIs (matplotlib Figure objects on the
Agg canvas, no pyplot), so it opens anywhere without a network or scripts. Every value from
the snapshot is escaped by the template (autoescape); figure labels are drawn as plain text
(no mathtext), in DejaVu Sans, which has Cyrillic for the Russian region names.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from freightml.monitoring.drift import DECIDING_ROLES
from freightml.monitoring.types import (
    ALL,
    DriftResult,
    QualityDay,
    SegmentStatus,
    SeriesTrace,
    Snapshot,
)

# At most this many drift rows in the table (drifted rows always come first): the heat map
# shows every segment and feature, the table the top rows behind it.
MAX_DRIFT_ROWS = 30
# The heat map's colour scale: value / threshold from 0 to this (1 = the threshold).
HEAT_MAX_RATIO = 3.0
# At most this many segments in the WAPE-over-time figure (all, then red, amber, green).
MAX_WAPE_PANELS = 12
# At most this many series in the forecast-vs-actual figure.
MAX_SERIES_PANELS = 6

_STATUS_RANK = {"red": 0, "amber": 1, "green": 2}


@dataclass(frozen=True)
class DriftRow:
    """One drift result with the report's extra columns."""

    source: str
    result: DriftResult

    @property
    def ratio(self) -> float:
        """value / threshold (infinite for a positive value over a zero threshold)."""
        r = self.result
        if r.threshold > 0:
            return r.value / r.threshold
        return math.inf if r.value > 0 else 0.0

    @property
    def decides(self) -> bool:
        """Whether this statistic takes part in the segment's drift verdict: Wasserstein of
        the target (facts) or the prediction (requests), and the identities' unseen share
        (docs/monitoring.md, "What drifted means"); inputs and PSI only explain."""
        r = self.result
        if r.role == "identity":
            return True
        return r.role in DECIDING_ROLES.get(self.source, frozenset()) and r.statistic != "psi"


def drift_rows(snapshot: Snapshot) -> list[DriftRow]:
    """Every drift result of the snapshot, most severe first: drifted results that decide
    a segment's verdict, then the other drifted ones, then the rest, each by value /
    threshold descending."""
    rows = [DriftRow(report.source, r) for report in snapshot.drift for r in report.results]
    return sorted(
        rows,
        key=lambda row: (
            not (row.result.drifted and row.decides),
            not row.result.drifted,
            -row.ratio,
        ),
    )


def _segment_order(snapshot: Snapshot, segments: Sequence[str]) -> list[str]:
    """``all`` first, then by status (red, amber, green), then by name."""
    status = {s.segment: s.status for s in snapshot.segments}
    return sorted(
        set(segments), key=lambda s: (s != ALL, _STATUS_RANK.get(status.get(s, "green"), 2), s)
    )


def _style() -> AbstractContextManager[None]:
    """Plain-text labels (a "$" in a station name is not mathtext) in DejaVu Sans (Cyrillic)."""
    return matplotlib.rc_context(
        {"font.family": "DejaVu Sans", "text.parse_math": False, "axes.titlesize": 9}
    )


def _png(fig: Figure) -> str:
    """The figure as a PNG data URI."""
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def wape_figure(snapshot: Snapshot, days: Sequence[QualityDay]) -> str | None:
    """Realised (solid) against expected (dashed) WAPE per day, one panel per segment, as a
    PNG data URI; None when there are no days."""
    if not days:
        return None
    segments = _segment_order(snapshot, [d.segment for d in days])[:MAX_WAPE_PANELS]
    ncols = min(3, len(segments))
    nrows = math.ceil(len(segments) / ncols)
    with _style():
        fig = Figure(figsize=(3.2 * ncols, 2.3 * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        for ax, segment in zip(axes.flat, segments, strict=False):
            part = sorted((d for d in days if d.segment == segment), key=lambda d: d.date)
            x = [d.date for d in part]
            ax.plot(x, [_nan(d.wape) for d in part], marker=".", label="realised")
            ax.plot(x, [_nan(d.expected_wape) for d in part], "k--", label="expected")
            ax.set_title(segment)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
            ax.tick_params(axis="x", labelsize=7, rotation=45)
            ax.tick_params(axis="y", labelsize=7)
        for ax in list(axes.flat)[len(segments) :]:
            ax.set_visible(False)
        axes[0][0].set_ylabel("WAPE")
        axes[0][0].legend(fontsize=7)
        return _png(fig)


def drift_heat_map(snapshot: Snapshot, rows: Sequence[DriftRow]) -> str | None:
    """Segment x feature: the largest value / threshold of the cell's statistics (both
    sources), as a PNG data URI; deciding quantities first, an x where the cell drifted;
    None without drift results."""
    if not rows:
        return None
    cells: dict[tuple[str, str], float] = {}
    drifted: set[tuple[str, str]] = set()
    decides: set[str] = set()
    for row in rows:
        key = (row.result.segment, row.result.feature)
        cells[key] = max(cells.get(key, 0.0), min(row.ratio, HEAT_MAX_RATIO))
        if row.result.drifted:
            drifted.add(key)
        if row.decides:
            decides.add(row.result.feature)
    segments = _segment_order(snapshot, [s for s, _ in cells])
    features = sorted({f for _, f in cells}, key=lambda f: (f not in decides, f))
    grid = np.full((len(segments), len(features)), np.nan)
    for (segment, feature), ratio in cells.items():
        grid[segments.index(segment), features.index(feature)] = ratio
    with _style():
        fig = Figure(figsize=(1.2 + 0.32 * len(features), 1.0 + 0.24 * len(segments)))
        ax = fig.subplots()
        image = ax.imshow(grid, cmap="RdYlGn_r", vmin=0.0, vmax=HEAT_MAX_RATIO, aspect="auto")
        for segment, feature in drifted:
            ax.text(
                features.index(feature),
                segments.index(segment),
                "x",
                ha="center",
                va="center",
                fontsize=7,
            )
        ax.set_xticks(range(len(features)), features, rotation=90, fontsize=7)
        ax.set_yticks(range(len(segments)), segments, fontsize=7)
        bar = fig.colorbar(image, ax=ax, fraction=0.03)
        bar.set_label("value / threshold (x: drifted)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
        return _png(fig)


def series_figure(traces: Sequence[SeriesTrace]) -> str | None:
    """Forecast against actual tonnes for the worst series, one panel each, as a PNG data
    URI; None when there are none."""
    if not traces:
        return None
    traces = traces[:MAX_SERIES_PANELS]
    ncols = min(2, len(traces))
    nrows = math.ceil(len(traces) / ncols)
    with _style():
        fig = Figure(figsize=(4.6 * ncols, 2.5 * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, t in zip(axes.flat, traces, strict=False):
            ax.plot(t.dates, t.actual, color="black", marker=".", label="actual")
            ax.plot(t.dates, t.forecast, marker=".", label="forecast")
            wape = "-" if t.wape is None else f"{t.wape:.2f}"
            ax.set_title(
                f"{t.origin_station} → {t.destination_station}, {t.cargo_type} (WAPE {wape})"
            )
            ax.set_ylabel("tonnes", fontsize=7)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
            ax.tick_params(axis="x", labelsize=7, rotation=45)
            ax.tick_params(axis="y", labelsize=7)
        for ax in list(axes.flat)[len(traces) :]:
            ax.set_visible(False)
        axes[0][0].legend(fontsize=7)
        return _png(fig)


def _num(value: float | None, digits: int = 3) -> str:
    """A number for the page; "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render_html(snapshot: Snapshot) -> str:
    """The report page as a string (see :func:`render_report`)."""
    template = resources.files("freightml.monitoring").joinpath("report.html.j2").read_text()
    env = jinja2.Environment(
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )
    env.filters["num"] = _num
    env.filters["share"] = _share
    rows = drift_rows(snapshot)
    quality = snapshot.quality
    segments: list[SegmentStatus] = sorted(
        snapshot.segments,
        key=lambda s: (s.segment != ALL, _STATUS_RANK[s.status], s.segment),
    )
    cells = []
    if quality is not None:
        order = {
            s: i for i, s in enumerate(_segment_order(snapshot, [c.segment for c in quality.cells]))
        }
        cells = sorted(quality.cells, key=lambda c: order[c.segment])
    return env.from_string(template).render(
        s=snapshot,
        segments=segments,
        drift_rows=rows[:MAX_DRIFT_ROWS],
        drift_total=len(rows),
        drift_drifted=sum(r.result.drifted for r in rows),
        drift_png=drift_heat_map(snapshot, rows),
        quality=quality,
        cells=cells,
        wape_png=None if quality is None else wape_figure(snapshot, quality.daily),
        wape_panels=MAX_WAPE_PANELS,
        series_png=None if quality is None else series_figure(quality.worst_series),
        series_panels=MAX_SERIES_PANELS,
    )


def render_report(snapshot: Snapshot, path: Path) -> Path:
    """Write the snapshot's report to ``path`` (parents created) as one self-contained HTML
    page: status per segment, alerts, drift, realised against expected quality, the worst
    series and freshness. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(snapshot), encoding="utf-8")
    return path


def summary_lines(snapshot: Snapshot) -> list[str]:
    """A few plain-text lines for the terminal: the overall status, each non-green segment
    with its reasons, and the number of alerts."""
    version = f" v{snapshot.model_version}" if snapshot.model_version else ""
    lines = [
        f"{snapshot.status.upper()}: {snapshot.model_name}{version} as of {snapshot.as_of} "
        f"({snapshot.window_days}-day window"
        + (f", environment {snapshot.environment})" if snapshot.environment else ")")
    ]
    for seg in sorted(snapshot.segments, key=lambda s: (_STATUS_RANK[s.status], s.segment)):
        if seg.status != "green":
            reasons = "; ".join(seg.reasons) or "no reason recorded"
            lines.append(f"{seg.segment}: {seg.status}: {reasons}")
    n = len(snapshot.alerts)
    lines.append(f"{n} alert{'' if n == 1 else 's'}")
    return lines
