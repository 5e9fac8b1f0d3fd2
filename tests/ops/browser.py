"""Headless Chromium (Debian's `chromium` package) for the page tests: screenshot, rendered DOM, pixel counts.

The pixel counts come from Chromium itself: a second headless run loads the screenshot (as a data: URL, so the
canvas is not tainted) into a canvas and writes how many pixels have each colour asked for. No image library
is needed in the venv.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 1600)


def find_chromium() -> str | None:
    explicit = os.environ.get("PROMPTMILL_CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(binary: str, args: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="pm-chromium-") as profile:
        command = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}", *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(binary: str, url: str, out: Path, window: tuple[int, int] = WINDOW) -> Path:
    result = _run(binary, [f"--window-size={window[0]},{window[1]}", f"--screenshot={out}", url])
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium screenshot of {url} failed ({result.returncode}): {result.stderr[-2000:]}")
    return out


def dump_dom(binary: str, url: str, *, budget_ms: int = 5000) -> str:
    result = _run(binary, [f"--virtual-time-budget={budget_ms}", "--dump-dom", url])
    if result.returncode != 0:
        raise RuntimeError(f"chromium --dump-dom {url} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


_HARNESS = """<!doctype html><html><body><pre id="stats">pending</pre><script>
const wanted = %(colors)s;
const img = new Image();
img.onload = () => {
  const canvas = document.createElement('canvas');
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, img.width, img.height).data;
  const counts = {}; for (const name in wanted) counts[name] = 0;
  let nonWhite = 0;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    if (r < 245 || g < 245 || b < 245) nonWhite++;
    for (const name in wanted) {
      const c = wanted[name];
      if (Math.abs(r - c[0]) <= 2 && Math.abs(g - c[1]) <= 2 && Math.abs(b - c[2]) <= 2) counts[name]++;
    }
  }
  counts.__non_white = nonWhite; counts.__pixels = img.width * img.height;
  document.getElementById('stats').textContent = JSON.stringify(counts);
};
img.onerror = () => { document.getElementById('stats').textContent = 'error'; };
img.src = 'data:image/png;base64,%(png)s';
</script></body></html>"""


def hex_rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def color_counts(binary: str, png: Path, colors: dict[str, str]) -> dict[str, int]:
    """How many pixels of the PNG have each named colour (within 2 per channel), plus __non_white and __pixels."""
    harness = png.with_suffix(".count.html")
    harness.write_text(_HARNESS % {
        "colors": json.dumps({name: hex_rgb(value) for name, value in colors.items()}),
        "png": base64.b64encode(png.read_bytes()).decode("ascii"),
    })
    dom = dump_dom(binary, harness.as_uri(), budget_ms=10000)
    match = re.search(r'<pre id="stats">(.*?)</pre>', dom, re.S)
    if not match or not match.group(1).startswith("{"):
        raise RuntimeError(f"could not count the pixels of {png}: {dom[:500]}")
    return json.loads(match.group(1))
