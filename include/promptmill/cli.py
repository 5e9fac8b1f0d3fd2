"""The `promptmill` command: the same functions the DAG calls, behind argparse."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from pathlib import Path

from promptmill.choices import CLEANING_PROFILES, NEAR_DUP_METRICS
from promptmill.settings import PROFILE_NEAR_DUP, SAMPLES_DIR, Settings
from promptmill.store import options as store_options
from promptmill.store.db import StoreError, redact_url

JSON_HELP = "print the result as one JSON object on one line (default: text)"
EXIT_CODES = ("exit codes: 0 success; 1 a runtime error (unreachable database or server, refused credentials, "
              "a file that cannot be written, bad data); 2 a usage error (unknown command or option, a bad option or "
              "PROMPTMILL_* value, cleaning or near-duplicate options other than the store's). Errors are one line on "
              "stderr.")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("promptmill")
    except PackageNotFoundError:  # run from a checkout without installing it
        return "unknown"


class UsageError(Exception):
    """Bad command-line usage: exit code 2, one line."""


class _HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal; a text with line breaks (an epilog's examples) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """One-line usage errors (exit 2), no abbreviated options (`--no-dedup` is not `--no-dedupe`), examples kept as
    written in the epilog."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2 (argparse prints the whole usage by default)
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=Settings.option_help("database_url", "SQLAlchemy URL of the store (postgresql://... or sqlite:///...)",
                                  default="an SQLite file in the data folder, data/promptmill.sqlite in a checkout, "
                                  "~/.promptmill/promptmill.sqlite otherwise (PROMPTMILL_DATA_DIR moves it)"),
    )
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress lines or notices on stderr (errors still)")
    return common


def _dedupe_options(parser: argparse.ArgumentParser) -> None:
    by_profile = ", ".join(f"{name} {metric} {threshold}" for name, (metric, threshold) in PROFILE_NEAR_DUP.items())
    parser.add_argument("--profile", choices=CLEANING_PROFILES, help=Settings.option_help(
        "cleaning_profile", "cleaning rules: quality (measured against human judgement) or parity (the original "
        "notebook's); a store keeps the one it was made with", default="the store's, quality for a new store"))
    parser.add_argument("--near-dup-metric", choices=NEAR_DUP_METRICS, help=Settings.option_help(
        "near_dup_metric", "similarity of a user's attempts", default=f"the profile's: {by_profile}"))
    parser.add_argument("--near-dup-threshold", type=float, metavar="X", help=Settings.option_help(
        "near_dup_threshold", "similarity above which the older attempt is dropped", default="the profile's"))
    parser.add_argument("--near-dup-window", type=int, metavar="SECONDS", help=Settings.option_help(
        "near_dup_window_s", "how close in time attempts must be"))


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="promptmill",
        description="Turn DiscordChatExporter dumps of Stable Diffusion bot channels into a labeled prompt dataset.",
        epilog="example:\n  promptmill ingest exports/ && promptmill label && promptmill publish\n\n"
               + textwrap.fill(EXIT_CODES, 100),
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"promptmill {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "ingest",
        parents=[common],
        help="ingest export files (.json, .csv, .zip) or folders, then dedupe",
        description="Read DiscordChatExporter exports (files or folders, searched recursively; zip archives "
        "expanded), store every message with a status, and dedupe what changed. Files already ingested "
        "(same content hash) are skipped; bad files are quarantined with the reason and the run goes on.",
        epilog="examples:\n  promptmill ingest exports/\n  promptmill ingest dump.zip 'dream-1 [123].json' "
               "--db postgresql://me@localhost/prompts",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="export files (.json, .csv, .zip) or folders")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--no-dedupe", action="store_true", help="only load; run `promptmill dedupe` later (default: off)")
    _dedupe_options(p)

    p = sub.add_parser(
        "dedupe", parents=[common], help="recompute statuses of what changed (or --full)",
        description="Apply the exact and near-duplicate rules to the messages stored since the last dedupe (ingest "
        "does this itself unless --no-dedupe), or to every message with --full, e.g. to change the "
        "near-duplicate options of the whole store.",
        epilog="examples:\n  promptmill dedupe\n  promptmill dedupe --full --near-dup-threshold 0.85",
    )
    p.add_argument("--full", action="store_true",
                   help="recompute every message, e.g. after changing near-duplicate options (default: off)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _dedupe_options(p)

    p = sub.add_parser(
        "reprocess",
        parents=[common],
        help="re-derive every stored message from its content (after a rule change), then a full dedupe",
        description="Re-derive every stored message from its stored content with the given (or the store's) "
        "cleaning profile and near-duplicate options, then dedupe the whole store; the options become the "
        "store's. Nothing is read from the export files again.",
        epilog="example:\n  promptmill reprocess --profile parity   # reproduce the original notebook's dataset",
    )
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _dedupe_options(p)

    p = sub.add_parser(
        "status", parents=[common], help="counts of the store, and where it is",
        description="Where the store is, its options, and its counts: messages by status and rejection reason, "
        "prompts, channels, files, labels and spend of the current label version.",
        epilog="examples:\n  promptmill status\n  promptmill status --json",
    )
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = sub.add_parser(
        "export-cleaned",
        parents=[common],
        help="write the original notebook's cleaned_discord_prompts.tsv",
        description="Write the kept prompts in the original notebook's format: tab-separated, an index "
        "column then content, attachments, username, ordered by date.",
        epilog="example:\n  promptmill export-cleaned cleaned_discord_prompts.tsv",
    )
    p.add_argument("out", metavar="OUT.tsv", help="the file to write (its folder must exist)")

    p = sub.add_parser(
        "audit",
        parents=[common],
        help="random messages a rule rejected, for a spot check (near-duplicates beside the attempt kept)",
        description="Print random messages rejected with REASON (see `promptmill status`): near-duplicates and "
        "duplicates side by side with the message kept instead. NSFW rejections are never shown.",
        epilog="examples:\n  promptmill audit near_duplicate --sample 5\n  promptmill audit single_word --seed 1",
    )
    p.add_argument("reason", metavar="REASON", help="a rejection reason, as `promptmill status` lists them")
    p.add_argument("--sample", type=int, default=10, metavar="N", help="how many (default: 10)")
    p.add_argument("--seed", type=int, help="the same seed gives the same sample (default: a new one each time)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="run the pipeline end to end on the bundled sample exports",
        description="Ingest the sample exports shipped with promptmill, dedupe, label them when an API key or "
        "the base URL of a local OpenAI-compatible server is set (else show the cost estimate), and publish, in the "
        "demo's own store and destination under <data folder>/demo/ (your own exports never mix with them).",
        epilog="example:\n  promptmill demo   # what `make run` does",
    )
    p.add_argument("--samples", type=Path, default=SAMPLES_DIR, help=argparse.SUPPRESS)

    for extension in ("promptmill.labeling.cli", "promptmill.publishing.cli"):
        try:
            module = __import__(extension, fromlist=["add_commands"])
        except ModuleNotFoundError as exc:
            if exc.name != extension:
                raise
            continue
        module.add_commands(sub, common)
    return parser


def _settings(args) -> Settings:
    overrides = {
        "database_url": getattr(args, "db", None),
        "cleaning_profile": getattr(args, "profile", None),
        "near_dup_metric": getattr(args, "near_dup_metric", None),
        "near_dup_threshold": getattr(args, "near_dup_threshold", None),
        "near_dup_window_s": getattr(args, "near_dup_window", None),
    }
    return Settings.from_env(**overrides)


def _engine(settings: Settings):
    return settings.connect_store()


def _print_json(obj) -> None:
    print(json.dumps(obj, default=str))  # one line, as every command's --json


def cmd_ingest(args, settings: Settings) -> int:
    from promptmill.ingest import ingest_paths

    # A path that does not exist is a mistake in the command, not a file to quarantine: one line each, nothing
    # recorded for it, exit 1; the other paths are ingested.
    missing = [path for path in args.paths if not os.path.lexists(path)]
    for path in missing:
        print(f"promptmill ingest: {path}: no such file or directory", file=sys.stderr)
    paths = [path for path in args.paths if path not in missing]
    if not paths:
        if args.json:
            _print_json({"error": "no such file or directory", "missing": missing})
        return 1
    engine = _engine(settings)
    settings = store_options.settle(engine, settings)  # the store's options; other ones stop here (exit 2)
    report = ingest_paths(engine, paths, settings, run_dedupe=not args.no_dedupe)
    data = report.as_dict()
    nothing_found = data["files_seen"] == 0 and not data["files_quarantined"]
    if nothing_found:
        from promptmill.exports.discovery import what_is_here

        found = what_is_here(paths)
        print(f"promptmill ingest: no .json, .csv, .html, .txt or .zip exports under {', '.join(paths)}; found "
              + "; ".join(found), file=sys.stderr)
    if args.json:
        _print_json(data)
    else:
        print(
            f"files: {data['files_seen']} seen, {data['files_ingested']} ingested, "
            f"{data['files_skipped']} skipped (already ingested), {len(data['files_quarantined'])} quarantined"
        )
        for item in data["files_quarantined"]:
            print(f"  quarantined: {item['reason']}")
        for item in data["warnings"]:
            print(f"  warning: {item['path']}: {item['warning']}")
        print(f"messages: {data['messages']:,} ({data['generations']:,} generations)")
        print(f"kept: {data['kept']:,}")
        if data["rejected"]:
            print("rejected: " + ", ".join(f"{k} {v:,}" for k, v in data["rejected"].items()))
        print(f"elapsed: {data['elapsed_s']:.1f}s")
    return 1 if missing or nothing_found else 0


def cmd_dedupe(args, settings: Settings) -> int:
    from dataclasses import asdict

    from promptmill.dedupe import run_dedupe

    engine = _engine(settings)
    # --full recomputes every verdict: it may change the near-duplicate options (the profile needs reprocess)
    settings = store_options.settle(engine, settings, may_change=store_options.NEAR_DUP_OPTIONS if args.full else ())
    report = run_dedupe(engine, settings, full=args.full)
    if args.full:
        store_options.record(engine, store_options.StoreOptions.of(settings))
    if args.json:
        _print_json(asdict(report))
    else:
        print(
            f"dedupe: {report.dirty_messages:,} messages rechecked, {report.near_dup_changes:,} near-duplicate "
            f"changes, {report.clean_groups:,} prompt groups in {report.elapsed_s:.1f}s"
        )
    return 0


def cmd_reprocess(args, settings: Settings) -> int:
    from promptmill.reprocess import reprocess

    engine = _engine(settings)
    settings = store_options.settle(engine, settings, may_change=store_options.OPTIONS)
    count = reprocess(engine, settings)  # every message re-derived, then a full dedupe
    store_options.record(engine, store_options.StoreOptions.of(settings))
    if args.json:
        _print_json({"messages": count})
    else:
        print(f"reprocessed {count:,} messages")
    return 0


def cmd_status(args, settings: Settings) -> int:
    from promptmill.status import format_status, store_status

    status = store_status(_engine(settings), settings)
    if args.json:
        _print_json({"store": redact_url(settings.effective_database_url), **status})
    else:
        print(f"store: {redact_url(settings.effective_database_url)}")
        print(format_status(status))
    return 0


def cmd_export_cleaned(args, settings: Settings) -> int:
    from promptmill.export_cleaned import export_cleaned

    rows = export_cleaned(_engine(settings), args.out)
    print(f"wrote {rows:,} prompts to {args.out}")
    return 0


def cmd_audit(args, settings: Settings) -> int:
    from promptmill.audit import AuditError, audit, format_samples

    if args.sample < 1:
        raise UsageError("--sample must be at least 1")
    try:
        total, samples = audit(_engine(settings), args.reason, sample=args.sample, seed=args.seed)
    except AuditError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        _print_json({"reason": args.reason, "rejected": total, "samples": [s.as_dict() for s in samples]})
    else:
        print("\n".join(format_samples(args.reason, total, samples)))
    return 0


def cmd_demo(args, settings: Settings) -> int:
    from promptmill.demo import demo_settings, run_demo

    settings = demo_settings(settings, database_url=getattr(args, "db", None))
    return run_demo(store_options.settle(_engine(settings), settings), samples=args.samples)


COMMANDS = {
    "ingest": cmd_ingest,
    "dedupe": cmd_dedupe,
    "reprocess": cmd_reprocess,
    "status": cmd_status,
    "export-cleaned": cmd_export_cleaned,
    "audit": cmd_audit,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"promptmill: error: {exc}", file=sys.stderr)
        return 2
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = _settings(args)
    except ValueError as exc:  # a bad option or PROMPTMILL_* value: how the command was called
        print(f"promptmill: error: {exc}", file=sys.stderr)
        return 2
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:  # extension commands (labeling, publishing) register their own handler
            return handler(args, _engine(settings), settings)
        return COMMANDS[args.command](args, settings)
    except (UsageError, store_options.OptionsConflict) as exc:  # a conflict: see EXIT_CODES
        print(f"promptmill: error: {exc}", file=sys.stderr)
        return 2
    except (StoreError, ValueError) as exc:
        print(f"promptmill: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file or folder the command was to write or read (read-only, full disk, missing)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"promptmill: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("promptmill: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
