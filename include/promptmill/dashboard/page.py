"""The dataset page as one self-contained HTML document (inline CSS and SVG; no script, no external asset).

``render_page`` takes the summary of :func:`promptmill.dashboard.queries.collect_summary` and the URL path the
app is mounted under (links must work both at the app's root and under Airflow's ``/promptmill`` prefix).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from html import escape
from typing import Any

from promptmill.dashboard.charts import Series, palette_color, stacked_columns, stacked_rows

KEPT_COLOR, REJECTED_COLOR, PENDING_COLOR = "#2e7d32", "#c62828", "#9e9e9e"
MAX_CHANNEL_ROWS = 15
MAX_DAY_ROWS = 14
MAX_EXAMPLE_CHARS = 90

STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:16px 24px;color:#1a1a1a;background:#fff;font-size:14px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #e0e0e0;padding-bottom:4px}
.meta{color:#666;font-size:12px;margin-bottom:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:110px}
.card .value{font-size:20px;font-weight:bold} .card .label{font-size:11px;color:#555;text-transform:uppercase}
.grid{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px} th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left}
th{background:#f5f5f5} td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:10px;background:#c62828;vertical-align:middle}
.progress{display:inline-block;width:120px;height:10px;background:#eee;vertical-align:middle}
.progress span{display:block;height:10px;background:#2e7d32}
.tag{background:#e3f2fd;border-radius:3px;padding:0 4px;font-size:11px}
.empty{color:#777;font-style:italic} code{font-size:12px}
"""


def fmt_int(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:,.4f}"


def axis_usd(value: float, step: float) -> str:
    """An axis tick in USD with as many decimals as the step needs, so that no two ticks read alike ($0.0002 twice
    for $0.000125 and $0.00025)."""
    decimals = 2 if step >= 0.01 else min(8, math.ceil(-math.log10(step)) + 2)
    return f"${value:,.{decimals}f}"


def fmt_pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def render_page(summary: dict[str, Any], base_path: str = "") -> str:
    base = base_path.rstrip("/")
    body = [
        '<h1>Prompt dataset</h1>',
        f'<div class="meta">as of {escape(summary["generated_at"])} &middot; store: {escape(summary["backend"])}'
        f' &middot; <a href="{escape(base)}/api/summary">this page as JSON</a></div>',
        _cards(summary),
        '<h2>Messages</h2><div class="grid">',
        _rejections(summary["messages"]),
        _channels_chart(summary["channels"]),
        "</div>",
        "<h2>Labeling</h2>",
        _versions(summary["labeling"]),
        '<div class="grid">',
        _spend_chart(summary["labeling"]["per_day"]),
        _per_day_table(summary["labeling"]["per_day"]),
        "</div>",
        "<h2>Publications</h2>",
        _publications(summary["publications"], base),
        _quality(summary.get("quality")),
        _quarantine(summary["files"]),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Prompt dataset</title><style>{STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )


def render_error_page(message: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Prompt dataset</title>'
        f"<style>{STYLE}</style></head><body><h1>Prompt dataset</h1>"
        f'<p>The store cannot be read: <code>{escape(message)}</code></p></body></html>'
    )


def _card(label: str, value: str, card_id: str) -> str:
    return (
        f'<div class="card" id="card-{card_id}"><div class="value">{escape(value)}</div>'
        f'<div class="label">{escape(label)}</div></div>'
    )


def _cards(summary: dict[str, Any]) -> str:
    msgs, files, labeling = summary["messages"], summary["files"], summary["labeling"]
    current = next((v for v in labeling["versions"] if v["current"]), None)
    cards = [
        _card("messages", fmt_int(msgs["total"]), "messages"),
        _card("kept", fmt_int(msgs["kept"]), "kept"),
        _card("rejected", fmt_int(msgs["rejected"]), "rejected"),
        _card("awaiting dedupe", fmt_int(msgs["pending_dedupe"]), "pending-dedupe"),
        _card("unique prompts", fmt_int(msgs["unique_prompts"]), "unique-prompts"),
        _card("files ingested", fmt_int(files["ingested"]), "files-ingested"),
        _card("files quarantined", fmt_int(files["quarantined"]), "files-quarantined"),
    ]
    if current is not None:
        cards.append(_card("labeled, current version", fmt_int(current["labeled"]), "labeled"))
        cards.append(_card("left to label", fmt_int(current["pending"]), "pending-labels"))
    cards.append(_card("spend, all time", fmt_usd(labeling["spend_usd_total"]), "spend"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _table(headers: Iterable[tuple[str, bool]], rows: Iterable[Iterable[str]], table_id: str) -> str:
    head = "".join(f'<th class="num">{escape(h)}</th>' if numeric else f"<th>{escape(h)}</th>" for h, numeric in headers)
    numeric = [n for _, n in headers]
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{cell}</td>' if numeric[i] else f"<td>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _rejections(messages: dict[str, Any]) -> str:
    reasons = messages["rejected_by_reason"]
    if not reasons:
        return '<div><p class="empty">No rejected messages.</p></div>'
    largest = max(reasons.values())
    rows = [
        (
            f"<code>{escape(reason)}</code>",
            fmt_int(count),
            fmt_pct(count, messages["total"]),
            f'<span class="bar" style="width:{max(1, round(120 * count / largest))}px"></span>',
        )
        for reason, count in reasons.items()
    ]
    headers = [("rejection reason", False), ("messages", True), ("of all", True), ("", False)]
    return "<div>" + _table(headers, rows, "rejections") + "</div>"


def _channels_chart(channels: list[dict[str, Any]]) -> str:
    shown = channels[:MAX_CHANNEL_ROWS]
    series = [
        Series("kept", [c["kept"] for c in shown], KEPT_COLOR),
        Series("rejected", [c["rejected"] for c in shown], REJECTED_COLOR),
    ]
    if any(c["pending"] for c in shown):
        series.append(Series("awaiting dedupe", [c["pending"] for c in shown], PENDING_COLOR))
    more = f'<p class="meta">{len(channels) - len(shown)} smaller channels not shown.</p>' if len(channels) > len(shown) else ""
    chart = stacked_rows([c["name"] for c in shown], series, title="Kept vs rejected messages per channel")
    return f'<div id="channels-chart"><div class="meta">kept vs rejected per channel</div>{chart}{more}</div>'


def _versions(labeling: dict[str, Any]) -> str:
    versions = labeling["versions"]
    if not versions:
        return '<p class="empty">Nothing labeled yet.</p>'
    rows = []
    for v in versions:
        done = v["labeled"] + v["failed"]
        whole = done + v["pending"]
        width = round(100 * v["labeled"] / whole) if whole else 0
        rows.append((
            f'<code>{escape(v["version"])}</code>' + (' <span class="tag">current</span>' if v["current"] else ""),
            escape(v["model"] or "-"),
            fmt_int(v["labeled"]),
            fmt_int(v["no_object"]),
            fmt_int(v["failed"]),
            fmt_int(v["pending"]),
            f'<span class="progress" title="{fmt_pct(v["labeled"], whole)}"><span style="width:{width}%"></span></span>'
            f" {fmt_pct(v['labeled'], whole)}",
            fmt_int(v["requests"]),
            fmt_usd(v["spend_usd"]),
            fmt_usd(v["usd_per_1k_labels"]),
            _evaluation(v.get("evaluation")),
        ))
    headers = [
        ("label version", False), ("model", False), ("labeled", True), ("no object", True), ("failed", True),
        ("pending", True), ("progress", False), ("requests", True), ("spend", True), ("per 1k labels", True),
        ("on the gold set", False),
    ]
    extra = []
    dropped = sum(v.get("labeled_not_kept", 0) for v in versions if v["current"])
    if dropped:
        extra.append(f"{fmt_int(dropped)} labels of the current version belong to prompts no longer kept (not counted)")
    if labeling["requests_by_status"]:
        extra.append("requests: " + ", ".join(f"{escape(k)} {fmt_int(n)}" for k, n in labeling["requests_by_status"].items()))
    if labeling["batch_jobs_by_state"]:
        extra.append("batch jobs: " + ", ".join(f"{escape(k)} {fmt_int(n)}" for k, n in labeling["batch_jobs_by_state"].items()))
    note = f'<p class="meta">{" &middot; ".join(extra)}</p>' if extra else ""
    return _table(headers, rows, "label-versions") + note


def _evaluation(result: dict[str, Any] | None) -> str:
    """promptmill evaluate-labels' newest result for a version: token F1, exact match, on which gold set."""
    if not result:
        return "-"

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.0f}%"

    return (f'<span title="{escape(result["gold"])}, {fmt_int(result["prompts"])} prompts">F1 '
            f'{pct(result.get("token_f1"))} &middot; exact {pct(result.get("exact_match"))} &middot; '
            f'{fmt_usd(result.get("usd_per_1k_prompts"))}/1k</span>')


def _spend_chart(per_day: list[dict[str, Any]]) -> str:
    days = _day_range(sorted({row["day"] for row in per_day}))
    versions = sorted({row["version"] for row in per_day})
    spend = {(row["day"], row["version"]): row["spend_usd"] for row in per_day}
    series = [
        Series(version, [spend.get((day, version), 0.0) for day in days], palette_color(i))
        for i, version in enumerate(versions)
    ]
    chart = stacked_columns(days, series, title="Labeling spend per day (USD)", value_format=fmt_usd,
                            axis_format=axis_usd)
    return f'<div id="spend-chart"><div class="meta">spend per day, by label version</div>{chart}</div>'


def _day_range(days: list[str]) -> list[str]:
    """Every day from the first to the last (days without spend show as gaps on a true time axis)."""
    if not days:
        return []
    first, last = dt.date.fromisoformat(days[0]), dt.date.fromisoformat(days[-1])
    return [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _per_day_table(per_day: list[dict[str, Any]]) -> str:
    if not per_day:
        return ""
    recent = sorted(per_day, key=lambda row: (row["day"], row["version"]), reverse=True)[:MAX_DAY_ROWS]
    rows = [
        (escape(r["day"]), f'<code>{escape(r["version"])}</code>', fmt_int(r["requests"]), fmt_int(r["labeled"]),
         fmt_int(r["tokens"]), fmt_usd(r["spend_usd"]))
        for r in recent
    ]
    headers = [("day (UTC)", False), ("label version", False), ("requests", True), ("labeled", True),
               ("tokens", True), ("spend", True)]
    return "<div>" + _table(headers, rows, "per-day") + "</div>"


def _publications(publications: list[dict[str, Any]], base: str) -> str:
    if not publications:
        return '<p class="empty">Nothing published yet.</p>'
    rows = [
        (
            f'<code>{escape(p["version"])}</code>',
            escape(p["created_at"] or "-"),
            f'<code>{escape(p["label_version"] or "-")}</code>',
            fmt_int(p["train_rows"]),
            fmt_int(p["test_rows"]),
            fmt_int(p["train_rows"] + p["test_rows"]),
            f'<code>{escape(p["destination"])}</code>',
            f'<a href="{escape(base)}/publications/{p["id"]}/manifest.json">manifest</a>',
        )
        for p in publications
    ]
    headers = [("version", False), ("published (UTC)", False), ("label version", False), ("train", True),
               ("test", True), ("total", True), ("destination", False), ("", False)]
    return _table(headers, rows, "publications")


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return escape(text if len(text) <= MAX_EXAMPLE_CHARS else text[: MAX_EXAMPLE_CHARS - 1] + "\u2026")


def _quality(quality: dict[str, Any] | None) -> str:
    """The quality report of the newest publication: split figures, rejections, merges, label statistics."""
    if quality is None:
        return ""
    split, report = quality["split"], quality["report"]
    clusters, leakage = split["clusters"], split["leakage"]
    head = (
        f'<h2 id="quality">Quality of <code>{escape(quality["version"])}</code></h2>'
        f'<div class="meta">the newest publication, published {escape(quality["created_at"] or "-")}</div>'
    )
    cards = [
        _card("near-identical clusters", fmt_int(clusters["clusters"]), "clusters"),
        _card("clusters across users", fmt_int(clusters["cross_user"]), "cross-user"),
        _card("rows in clusters", fmt_int(clusters["rows"]), "cluster-rows"),
        _card("held out", fmt_int(split["held_out"]), "held-out"),
        _card("leaking test rows", f'{fmt_int(leakage["test_rows_with_near_identical_train_row"])}'
              f' ({100 * leakage["share"]:.2f}%)', "leakage"),
    ]
    if split["one_per_cluster_removed"]:
        cards.append(_card("left out, one per cluster", fmt_int(split["one_per_cluster_removed"]), "one-per-cluster"))
    parts = [head, '<div class="cards">' + "".join(cards) + "</div>"]
    if report is None:
        parts.append('<p class="empty">This publication was made before quality reports.</p>')
        return "".join(parts)
    rows = [
        (f"<code>{escape(reason)}</code>", fmt_int(entry["count"]),
         "; ".join(f"<code>{_short(e)}</code>" for e in entry["examples"][:2]) or '<span class="empty">-</span>')
        for reason, entry in report["rejections"].items()
    ]
    parts.append('<div class="grid" style="margin-top:12px"><div>')
    parts.append(_table([("rejected as", False), ("messages", True), ("examples", False)], rows, "quality-rejections")
                 if rows else '<p class="empty">No rejected messages.</p>')
    parts.append("</div><div>" + _label_stats(report["labels"]) + "</div></div>")
    merges = report["near_duplicate_merges"]
    if merges:
        merge_rows = [(f"<code>{_short(m['dropped'])}</code>", f"<code>{_short(m['kept'])}</code>") for m in merges]
        parts.append('<div class="meta" style="margin-top:12px">near-duplicate merges (the older attempt dropped,'
                     ' the newer kept)</div>')
        parts.append(_table([("dropped", False), ("kept", False)], merge_rows, "quality-merges"))
    return "".join(parts)


def _label_stats(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    chars = labels.get("description_chars") or {}
    rows = [
        ("labels", fmt_int(labels.get("labeled", 0))),
        ("<code>_no_object</code>", f'{fmt_int(labels.get("no_object", 0))} ({100 * labels.get("no_object_rate", 0):.1f}%)'),
    ]
    if chars:
        rows.append(("description chars: min / p25 / median / p75 / max",
                     f'{chars["min"]} / {chars["p25"]:g} / {chars["median"]:g} / {chars["p75"]:g} / {chars["max"]}'))
    table = _table([("labels of the version", False), ("", True)], rows, "quality-labels")
    repeated = labels.get("most_repeated_descriptions") or []
    if repeated:
        table += '<div class="meta">the most repeated descriptions</div>'
        table += _table([("description", False), ("rows", True)],
                        [(f"<code>{_short(text)}</code>", fmt_int(n)) for text, n in repeated], "quality-repeated")
    return table


def _quarantine(files: dict[str, Any]) -> str:
    if not files["latest_quarantined"]:
        return ""
    rows = [(f'<code>{escape(q["path"])}</code>', escape(q["reason"] or "")) for q in files["latest_quarantined"]]
    return "<h2>Quarantined files (latest)</h2>" + _table([("file", False), ("reason", False)], rows, "quarantine")
