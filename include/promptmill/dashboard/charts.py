"""Inline SVG charts drawn on the server: the page must work with no network (no CDN, no chart library).

Two shapes cover the page: stacked columns over time (spend per day, one colour per label version) and stacked
horizontal bars per category (kept / rejected / pending messages per channel). Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#3366cc", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e")
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]
    color: str


def palette_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (axis maximum); 1 for nothing to show."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10**exponent
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10.0 ** (exponent + 1)


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts = []
    for series_item in series:
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{series_item.color}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{y:.1f}" font-size="11" {FONT}>{escape(series_item.name)}</text>')
        x += 24 + 7 * len(series_item.name)
    return parts


def stacked_columns(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    value_format: Callable[[float], str] = lambda v: f"{v:g}",
    axis_format: Callable[[float, float], str] | None = None,
    width: int = 560,
    height: int = 240,
) -> str:
    """Vertical stacked columns, one per category (e.g. a day), each split by series (e.g. a label version).
    ``axis_format(value, step)`` labels the axis ticks when ``value_format`` would round two of them alike."""
    if not categories:
        return f'<p class="empty">{escape(title)}: nothing to chart yet.</p>'
    left, right, top, bottom = 64, 12, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    axis_max = nice_ceiling(max(totals))
    slot = plot_w / len(categories)
    bar_w = max(2.0, min(36.0, slot * 0.7))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(5):  # horizontal grid lines with their values
        value = axis_max * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" {FONT}>'
            f"{escape(axis_format(value, axis_max / 4) if axis_format else value_format(value))}</text>"
        )
    label_every = max(1, math.ceil(len(categories) / 10))  # at most about ten labels under the axis
    for index, category in enumerate(categories):
        x = left + slot * index + (slot - bar_w) / 2
        y = top + plot_h
        for series_item in series:
            value = series_item.values[index]
            if value <= 0:
                continue
            h = plot_h * value / axis_max
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{series_item.color}">'
                f"<title>{escape(category)} {escape(series_item.name)}: {escape(value_format(value))}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle" {FONT}>'
                f"{escape(category[5:] if len(category) == 10 else category)}</text>"
            )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#888"/>'
    )
    parts.extend(_legend(series, left, height - 8))
    parts.append("</svg>")
    return "".join(parts)


def stacked_rows(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    value_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
    width: int = 560,
    row_height: int = 22,
) -> str:
    """Horizontal stacked bars, one row per label (e.g. a channel), each split by series (e.g. kept/rejected)."""
    if not labels:
        return f'<p class="empty">{escape(title)}: nothing to chart yet.</p>'
    left, right, top, bottom = 150, 70, 8, 28
    plot_w = width - left - right
    height = top + row_height * len(labels) + bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    scale_max = max(totals) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    for index, label in enumerate(labels):
        y = top + row_height * index
        shown = label if len(label) <= 22 else label[:21] + "\u2026"
        parts.append(
            f'<text x="{left - 6}" y="{y + row_height * 0.65:.1f}" font-size="11" text-anchor="end" {FONT}>'
            f"{escape(shown)}</text>"
        )
        x = float(left)
        for series_item in series:
            value = series_item.values[index]
            if value <= 0:
                continue
            w = plot_w * value / scale_max
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_height - 6}" fill="{series_item.color}">'
                f"<title>{escape(label)} {escape(series_item.name)}: {escape(value_format(value))}</title></rect>"
            )
            x += w
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + row_height * 0.65:.1f}" font-size="10" {FONT}>'
            f"{escape(value_format(totals[index]))}</text>"
        )
    parts.extend(_legend(series, left, height - 8))
    parts.append("</svg>")
    return "".join(parts)
