"""``python -m tests.synth``: write synthetic exports, or regenerate the bundled samples (``--samples DIR``)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from tests.synth.config import CSV_DATE_FORMATS, ERAS, SynthConfig
from tests.synth.writers import build_samples, write_exports


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.synth",
        description="Write synthetic DiscordChatExporter exports of Stable Diffusion dreambot channels.")
    parser.add_argument("out_dir", nargs="?", type=Path, help="output folder (created if missing)")
    parser.add_argument("--samples", type=Path, metavar="DIR",
                        help="write the bundled sample landing folder into DIR instead (other options ignored)")
    defaults = SynthConfig()
    parser.add_argument("--messages", type=int, default=defaults.messages)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--channels", type=int, default=defaults.channels)
    parser.add_argument("--first-channel", type=int, default=defaults.first_channel)
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--era", choices=ERAS, default=defaults.era)
    parser.add_argument("--formats", default=",".join(defaults.formats), help="comma-separated: json,csv")
    parser.add_argument("--start", type=datetime.fromisoformat, help="ISO time with offset (default: era start)")
    parser.add_argument("--mean-gap", type=float, default=defaults.mean_gap_s, help="seconds between messages")
    parser.add_argument("--partition-size", type=int, help="messages per file ([part N] files)")
    parser.add_argument("--date-partitioned", action="store_true", help="one file per channel per day")
    parser.add_argument("--near-dup-rate", type=float, default=defaults.near_dup_rate)
    parser.add_argument("--junk-rate", type=float, default=defaults.junk_rate)
    parser.add_argument("--csv-date-format", choices=CSV_DATE_FORMATS, default=defaults.csv_date_format)
    parser.add_argument("--crlf", action="store_true", help="CSV records end with CRLF (Windows exports)")
    parser.add_argument("--no-cdn-signatures", action="store_true", help="plain attachment URLs (pre-2024)")
    args = parser.parse_args(argv)
    if args.out_dir is None and args.samples is None:
        parser.error("give OUT_DIR or --samples DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    began = time.perf_counter()
    if args.samples is not None:
        paths = build_samples(args.samples)
        total = None
    else:
        try:
            cfg = SynthConfig(
                messages=args.messages, seed=args.seed, channels=args.channels, users=args.users, era=args.era,
                formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()), start=args.start,
                mean_gap_s=args.mean_gap, partition_size=args.partition_size,
                date_partitioned=args.date_partitioned, near_dup_rate=args.near_dup_rate,
                junk_rate=args.junk_rate, first_channel=args.first_channel,
                csv_date_format=args.csv_date_format, csv_line_terminator="\r\n" if args.crlf else "\n",
                cdn_signatures=not args.no_cdn_signatures)
        except ValueError as error:
            print(f"tests.synth: {error}", file=sys.stderr)
            return 2
        paths = write_exports(args.out_dir, cfg)
        total = cfg.messages
    elapsed = time.perf_counter() - began
    size = sum(path.stat().st_size for path in paths)
    for path in paths:
        print(path)
    rate = f", {total / elapsed:,.0f} messages/s" if total else ""
    print(f"wrote {len(paths)} files, {size / 1e6:,.1f} MB in {elapsed:.2f} s{rate}", file=sys.stderr)
    return 0
