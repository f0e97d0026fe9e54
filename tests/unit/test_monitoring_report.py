"""The monitoring report page and the CLI summary, rendered from sample_snapshot() and
variations of it (no quality, no drift, no segments, all green, hostile labels)."""

from __future__ import annotations

import base64
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from freightml.monitoring.report import render_html, render_report, summary_lines
from freightml.monitoring.types import (
    Alert,
    DriftReport,
    SegmentStatus,
    SeriesTrace,
)
from helpers import sample_snapshot

pytestmark = [pytest.mark.unit]
WEST, EAST = "origin_region=Запад", "origin_region=Восток"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """What the tests look at: rows of each table (by class), the text of each segment
    card, every tag's attributes, and the page text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.segments: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.text: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._segment: list[str] | None = None
        self._segment_depth = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag == "table":
            self._table = cls
            self.tables[cls] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "li" and cls == "segment":
            self._segment, self._segment_depth = [], 1
        elif tag == "li" and self._segment is not None:
            self._segment_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._row:  # header rows have th cells only
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "li" and self._segment is not None:
            self._segment_depth -= 1
            if self._segment_depth == 0:
                self.segments.append(" ".join(" ".join(self._segment).split()))
                self._segment = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._segment is not None:
            self._segment.append(data)

    def images(self) -> list[str]:
        return [v for tag, k, v in self.attrs if tag == "img" and k == "src"]

    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def _page(snapshot: Any) -> tuple[str, _Page]:
    html = render_html(snapshot)
    return html, _Page(html)


def _pngs(page: _Page) -> list[bytes]:
    prefix = "data:image/png;base64,"
    srcs = page.images()
    assert all(src.startswith(prefix) for src in srcs), srcs
    return [base64.b64decode(src[len(prefix) :], validate=True) for src in srcs]


def test_sample_report_status_alerts_and_header(tmp_path: Path) -> None:
    path = render_report(sample_snapshot(), tmp_path / "nested" / "report.html")
    assert path == tmp_path / "nested" / "report.html"
    html = path.read_text(encoding="utf-8")
    page = _Page(html)
    text = page.words()
    assert "Monitoring: freight-volume version 3" in text
    assert re.search(r'<h1>.*<span class="badge red">red</span></h1>', html, re.S)
    assert "as of 2026-03-31" in text and "window 7 days" in text
    # one card per segment, "all" first, then red before green, each with its reasons
    assert page.segments == [
        "green all",
        f"red {WEST} realised WAPE 0.41 > expected 0.20 x 1.25 input drift",
        f"green {EAST}",
    ]
    assert page.tables["alerts"] == [
        ["quality", WEST, "realised WAPE 0.41 > 0.25 on 5 days"],
        ["drift", WEST, "3 of 4 features drifted"],
    ]
    assert "stale series 100 of 300 (33.3%)" in text
    assert "newest fact 2026-03-30" in text and "age 1.0 days" in text
    assert "too few rows to judge: origin_region=Север" in text


def test_drift_table_is_sorted_by_severity() -> None:
    snapshot = sample_snapshot()
    _, page = _page(snapshot)
    rows = page.tables["drift"]
    assert len(rows) == sum(len(r.results) for r in snapshot.drift) == 21
    # feature, role, segment, source, statistic, value, threshold, drifted, decides, rows
    # the drifted result that decides the verdict first (the target's Wasserstein), though
    # the target's PSI is further over its threshold
    assert rows[0][:9] == [
        "volume_tonnes",
        "target",
        WEST,
        "facts",
        "wasserstein",
        "0.2000",
        "0.1000",
        "yes",
        "yes",
    ]
    assert rows[1][:5] == ["volume_tonnes", "target", WEST, "facts", "psi"]
    assert [row[8] for row in rows[1:5]] == ["no"] * 4
    drifted = [row[7] for row in rows]
    assert drifted == ["yes"] * 5 + ["no"] * 16
    for group in (rows[1:5], rows[5:]):
        ratios = [float(row[5]) / float(row[6]) for row in group]
        assert ratios == sorted(ratios, reverse=True)
    assert rows[-1][:5] == ["origin_station", "input", EAST, "facts", "unseen_share"]


def test_many_drift_results_are_a_heat_map_and_the_top_rows() -> None:
    """Finding 9: the drift section was a 1,400-row table."""
    base = sample_snapshot()
    report = base.drift[0]
    results = [
        r.model_copy(update={"segment": f"origin_region=R{i:02d}"})
        for i in range(60)
        for r in report.results
    ]
    snapshot = sample_snapshot(drift=[report.model_copy(update={"results": results})])
    _, page = _page(snapshot)
    assert len(page.tables["drift"]) == 30
    drifted = sum(r.drifted for r in results)
    assert f"{drifted} of {len(results)} results drifted; the top 30:" in page.words()
    assert len(_pngs(page)) == 3
    assert "drift heat map" in _page(snapshot)[0]


def test_quality_tables_and_embedded_figures() -> None:
    _, page = _page(sample_snapshot())
    cells = page.tables["cells"]
    assert [(c[0], c[1]) for c in cells[:3]] == [("all", "1-7"), ("all", "8-14"), ("all", "15-28")]
    assert [c[0] for c in cells[3:6]] == [WEST] * 3  # red before green
    assert {c[8] for c in cells if c[0] == WEST} == {"yes"}
    assert cells[3][4:6] == ["0.410", "0.200"]
    assert page.tables["series"] == [["Запад-1", "Восток-2", "coal", WEST, "0.520"]]
    pngs = _pngs(page)
    assert len(pngs) == 3  # drift heat map, WAPE over time, worst series
    for png in pngs:
        assert png.startswith(PNG_SIGNATURE) and len(png) > 5_000


def test_page_is_self_contained() -> None:
    html, page = _page(sample_snapshot())
    outside_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not re.search(r"https?:|//", outside_images, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    for tag, name, value in page.attrs:
        if name in {"src", "href"}:
            assert value.startswith("data:"), (tag, name, value)


def test_cyrillic_labels_have_glyphs() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render_html(sample_snapshot())
    assert not [w for w in caught if "missing from font" in str(w.message)]


def test_everything_is_escaped() -> None:
    hostile = "<script>alert('x')</script>"
    base = sample_snapshot()
    trace = base.quality.worst_series[0]
    snapshot = sample_snapshot(
        model_name=f"m{hostile}",
        segments=[
            SegmentStatus(segment=f"origin_region={hostile}", status="red", reasons=[hostile])
        ],
        alerts=[Alert(kind="drift", segment=hostile, message=f"<b>{hostile}</b>")],
        drift=[
            base.drift[0].model_copy(
                update={
                    "results": [base.drift[0].results[0].model_copy(update={"segment": hostile})],
                    "drifted_segments": [hostile],
                }
            )
        ],
        quality=base.quality.model_copy(
            update={
                "cells": [base.quality.cells[0].model_copy(update={"segment": hostile})],
                "daily": [d.model_copy(update={"segment": hostile}) for d in base.quality.daily],
                # a "$" pair is not mathtext in the figures
                "worst_series": [
                    trace.model_copy(update={"origin_station": hostile + "$\\frac{$"})
                ],
            }
        ),
    )
    html, page = _page(snapshot)
    assert "<script" not in html.lower() and "<b>" not in html
    assert html.count("&lt;script&gt;") >= 8
    assert page.segments == [f"red origin_region={hostile} {hostile}"]
    assert page.tables["alerts"] == [["drift", hostile, f"<b>{hostile}</b>"]]
    assert page.tables["drift"][0][2] == hostile
    assert len(_pngs(page)) == 3


def test_no_quality() -> None:
    _, page = _page(sample_snapshot(quality=None))
    assert "No realised quality in this run" in page.words()
    assert len(page.images()) == 1 and "cells" not in page.tables  # the drift heat map
    assert page.tables["drift"]  # the rest of the page is there


def test_quality_without_days_or_series() -> None:
    base = sample_snapshot()
    quality = base.quality.model_copy(update={"daily": [], "worst_series": [], "cells": []})
    _, page = _page(sample_snapshot(quality=quality))
    text = page.words()
    assert "No daily quality to plot." in text
    assert "No quality cells." in text
    assert "No series traces in this run." in text
    assert len(page.images()) == 1  # the drift heat map only


@pytest.mark.parametrize(
    "drift",
    [
        pytest.param([], id="no-reports"),
        pytest.param(
            [
                DriftReport(
                    source="requests",
                    window_start=sample_snapshot().as_of,
                    window_end=sample_snapshot().as_of,
                    rows=0,
                    results=[],
                    drifted_segments=[],
                    unsupported_segments=[],
                )
            ],
            id="empty-report",
        ),
    ],
)
def test_empty_drift(drift: list[DriftReport]) -> None:
    _, page = _page(sample_snapshot(drift=drift))
    assert "No drift results in this run." in page.words()
    assert "drift" not in page.tables


def test_no_segments_and_no_alerts() -> None:
    _, page = _page(sample_snapshot(segments=[], alerts=[]))
    text = page.words()
    assert "No segment was judged in this run." in text
    assert "No alerts." in text
    assert page.segments == []


def test_all_green() -> None:
    base = sample_snapshot()
    snapshot = sample_snapshot(
        status="green",
        segments=[s.model_copy(update={"status": "green", "reasons": []}) for s in base.segments],
        alerts=[],
        model_version=None,
    )
    html, page = _page(snapshot)
    assert page.segments == ["green all", f"green {EAST}", f"green {WEST}"]
    assert 'class="badge red"' in html  # only the freshness verdict (sample facts are stale)
    assert html.count('class="badge red"') == 1
    assert "Monitoring: freight-volume green" in page.words()
    assert summary_lines(snapshot) == [
        "GREEN: freight-volume as of 2026-03-31 (7-day window)",
        "0 alerts",
    ]


def test_summary_lines() -> None:
    assert summary_lines(sample_snapshot()) == [
        "RED: freight-volume v3 as of 2026-03-31 (7-day window)",
        f"{WEST}: red: realised WAPE 0.41 > expected 0.20 x 1.25; input drift",
        "2 alerts",
    ]
    amber = SegmentStatus(segment=EAST, status="amber", reasons=[])
    one_alert = [Alert(kind="no_data", segment="all", message="no facts")]
    lines = summary_lines(
        sample_snapshot(segments=[*sample_snapshot().segments[:1], amber], alerts=one_alert)
    )
    assert lines[1:] == [f"{EAST}: amber: no reason recorded", "1 alert"]


def test_many_segments_are_capped_in_the_figure() -> None:
    base = sample_snapshot()
    day = base.quality.daily[0]
    daily = [day.model_copy(update={"segment": f"origin_region=R{i:02d}"}) for i in range(20)]
    trace: SeriesTrace = base.quality.worst_series[0]
    quality = base.quality.model_copy(update={"daily": daily, "worst_series": [trace] * 9})
    _, page = _page(sample_snapshot(quality=quality))
    assert "first 12 segments" in page.words()
    assert len(page.tables["series"]) == 6
    assert len(_pngs(page)) == 3
