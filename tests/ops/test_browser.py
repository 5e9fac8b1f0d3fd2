"""The dataset page in a real headless Chromium: it renders its numbers and its charts.

Needs Debian's `chromium` package (CI installs it); a missing browser FAILS the test, it never skips.
"""

from __future__ import annotations

import re

import pytest
from promptmill.dashboard import create_app
from promptmill.dashboard.charts import palette_color
from promptmill.dashboard.page import KEPT_COLOR, REJECTED_COLOR, fmt_int
from promptmill.store.db import connect

from tests.ops.browser import color_counts, dump_dom, find_chromium, png_size, screenshot
from tests.ops.dataset import CURRENT_VERSION, fill_store


@pytest.fixture
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (or set PROMPTMILL_CHROMIUM)", pytrace=False)
    return binary


def test_page_renders_numbers_and_charts_in_chromium(chromium, served_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    fill_store(connect(url), tmp_path)
    base = served_app(create_app(lambda: url, label_version_resolver=lambda: CURRENT_VERSION))
    import httpx

    data = httpx.get(f"{base}/api/summary", timeout=30).json()

    dom = dump_dom(chromium, f"{base}/")
    for card, value in (("messages", data["messages"]["total"]), ("kept", data["messages"]["kept"]),
                        ("rejected", data["messages"]["rejected"])):
        assert re.search(rf'id="card-{card}"><div class="value">{re.escape(fmt_int(value))}</div>', dom), card
    assert "<svg" in dom and 'aria-label="Labeling spend per day (USD)"' in dom
    quality = data["quality"]  # the newest publication's quality report, rendered with its numbers
    assert f'<h2 id="quality">Quality of <code>{quality["version"]}</code></h2>' in dom
    assert re.search(rf'id="card-held-out"><div class="value">{fmt_int(quality["split"]["held_out"])}</div>', dom)
    assert '<table id="quality-rejections">' in dom and '<table id="quality-merges">' in dom

    png = screenshot(chromium, f"{base}/", tmp_path / "dataset-page.png")
    assert png_size(png) == (1280, 1600)
    counts = color_counts(chromium, png, {
        "kept": KEPT_COLOR, "rejected": REJECTED_COLOR,
        "old_version": palette_color(0), "current_version": palette_color(1),
    })
    # Every chart series is on screen as solid pixels, and the page is far from blank.
    assert counts["kept"] > 500 and counts["rejected"] > 2000, counts
    assert counts["old_version"] > 300 and counts["current_version"] > 300, counts
    assert counts["__non_white"] > 0.03 * counts["__pixels"], counts
