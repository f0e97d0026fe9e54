"""The monitoring report in real headless Chromium: it loads with no console error, no
uncaught exception, no failed resource load and every image decoded; and the same checks
do catch each of those on pages built to have them."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from freightml.monitoring.report import render_report
from freightml.monitoring.types import SegmentStatus, Snapshot
from helpers import Chromium, chromium_binary, sample_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with Chromium(chromium_binary(), tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height


@pytest.mark.parametrize(
    "snapshot",
    [
        pytest.param(sample_snapshot(), id="sample"),
        # were it not escaped, this segment would load a missing image and log an error
        pytest.param(
            sample_snapshot(
                segments=[
                    SegmentStatus(
                        segment="origin_region=<img src=missing.png onerror=console.error(1)>",
                        status="red",
                        reasons=["<script>console.error('reason')</script>"],
                    )
                ]
            ),
            id="hostile-labels",
        ),
        pytest.param(sample_snapshot(quality=None, drift=[], segments=[]), id="sparse"),
    ],
)
def test_report_loads_cleanly(browser: Chromium, tmp_path: Path, snapshot: Snapshot) -> None:
    page = render_report(snapshot, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    load = browser.load(page.as_uri(), shot)
    assert load.problems == []
    heat_map = int(any(report.results for report in snapshot.drift))
    assert load.images == heat_map + (0 if snapshot.quality is None else 2)
    width, height = _png_size(shot)
    assert width > 1200 and height > 600  # 1280 less a scrollbar
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


BROKEN = {
    "console-error": ("<script>console.error('planted')</script>", "console_errors"),
    "exception": ("<script>throw new Error('planted')</script>", "exceptions"),
    "missing-image": ('<img src="missing.png" alt="x">', "failed_loads"),
    "undecodable-image": ('<img src="data:image/png;base64,AAAA" alt="x">', "broken_images"),
    "missing-stylesheet": ('<link rel="stylesheet" href="missing.css">', "failed_loads"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_pages_are_caught(browser: Chromium, tmp_path: Path, case: str) -> None:
    body, kind = BROKEN[case]
    page = tmp_path / "broken.html"
    page.write_text(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title>'
        f"</head><body><p>text</p>{body}</body></html>"
    )
    load = browser.load(page.as_uri(), tmp_path / "broken.png")
    assert getattr(load, kind), f"{case} not caught in {kind}: {load.problems}"
    if kind in {"console_errors", "exceptions"}:
        assert "planted" in " ".join(getattr(load, kind))
    assert (tmp_path / "broken.png").read_bytes().startswith(PNG_SIGNATURE)
