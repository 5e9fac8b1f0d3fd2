"""Export writers: one channel's message stream as DCE JSON and CSV files, named and partitioned as DCE does
(``[part N]`` files, one folder per day), and the bundled sample landing folder."""

from __future__ import annotations

import csv
import tempfile
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from tests.synth.config import SynthConfig
from tests.synth.discord import (
    CSV_HEADER,
    SynthChannel,
    SynthUser,
    channel_header,
    csv_date,
    export_file_stem,
    make_users,
    ms_of,
    plan_channels,
    to_dce_json_bytes,
)
from tests.synth.messages import ChannelMessages, channel_export_time_ms, day_export_time_ms

# --------------------------------------------------------------------------------------------------------------
# JSON and CSV files
# --------------------------------------------------------------------------------------------------------------

_INDENT = orjson.OPT_INDENT_2
_JSON_FLUSH_EVERY = 64
# Serialising a batch as [[m1, m2, ...]] puts each message at the depth it has in the DCE document (level 2), so
# the batch text is the document's text once the two wrapper lines are cut off.
_BATCH_HEAD = b"[\n  [\n    "
_BATCH_TAIL = b"\n  ]\n]"


class _JsonExportFile:
    """Streams one DCE JSON document: header, messages in batches, ``messageCount``. Memory: one batch."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path = path
        head = orjson.dumps(header, option=_INDENT)
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._file.write(to_dce_json_bytes(head[:-2]) + b',\n  "messages": [')
        self._pending: list[dict] = []
        self._written = 0
        self.count = 0

    def write(self, message: dict) -> None:
        self._pending.append(message)
        self.count += 1
        if len(self._pending) >= _JSON_FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        batch = orjson.dumps([self._pending], option=_INDENT)
        if not (batch.startswith(_BATCH_HEAD) and batch.endswith(_BATCH_TAIL)):
            raise RuntimeError(f"{self.path}: unexpected orjson batch layout {batch[:20]!r}")
        body = to_dce_json_bytes(batch[len(_BATCH_HEAD) - 4:-len(_BATCH_TAIL)])  # keep the 4-space indent
        self._file.write((b",\n" if self._written else b"\n") + body)
        self._written += len(self._pending)
        self._pending.clear()

    def close(self) -> None:
        self._flush()
        self._file.write(b"\n  ]" if self._written else b"]")
        self._file.write(b',\n  "messageCount": %d\n}' % self.count)
        self._file.close()


class _CsvExportFile:
    """Streams one DCE CSV document: literal header, every field quoted, one record per message."""

    def __init__(self, path: Path, date_format: str, line_terminator: str) -> None:
        self.path = path
        self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
        self._file.write(CSV_HEADER + line_terminator)
        self._writer = csv.writer(self._file, quoting=csv.QUOTE_ALL, lineterminator=line_terminator)
        self._date_format = date_format
        self.count = 0

    def write(self, message: dict, author: SynthUser) -> None:
        self._writer.writerow((
            author.id,
            author.full_name,
            csv_date(message["timestamp"], self._date_format),
            message["content"],
            ",".join(attachment["url"] for attachment in message["attachments"]),
            ",".join(f"{reaction['emoji']['name']} ({reaction['count']})" for reaction in message["reactions"]),
        ))
        self.count += 1

    def close(self) -> None:
        self._file.close()


class _ChannelExport:
    """All files of one channel export: opens the next ``[part N]`` file or day folder as messages arrive."""

    def __init__(self, out_dir: Path, cfg: SynthConfig, channel: SynthChannel, export_time_ms: int | None) -> None:
        self.out_dir = out_dir
        self.cfg = cfg
        self.channel = channel
        self.export_time_ms = export_time_ms
        self.files: list[Path] = []
        self._json: _JsonExportFile | None = None
        self._csv: _CsvExportFile | None = None
        self._day: str | None = None
        self._part = 0
        self._in_part = 0
        self._part_limit = cfg.partition_size or -1

    def write(self, message: dict, author: SynthUser) -> None:
        if self.cfg.date_partitioned:
            day = message["timestamp"][:10]
            if day != self._day:
                self._day = day
                self._part = 0
                self._start_part()
        if self._in_part == self._part_limit or not self.files:
            self._start_part()
        if self._json is not None:
            self._json.write(message)
        if self._csv is not None:
            self._csv.write(message, author)
        self._in_part += 1

    def _start_part(self) -> None:
        self._close_open()
        self._part += 1
        self._in_part = 0
        directory = self.out_dir
        after = before = after_ms = before_ms = None
        exported_ms = self.export_time_ms
        if self.cfg.date_partitioned:
            after = date.fromisoformat(self._day)
            before = after + timedelta(days=1)
            after_ms = ms_of(datetime(after.year, after.month, after.day, tzinfo=UTC))
            before_ms = after_ms + 86_400_000
            exported_ms = ms_of(self.cfg.exported_at) if self.cfg.exported_at else day_export_time_ms(after_ms)
            directory = self.out_dir / self._day
        directory.mkdir(parents=True, exist_ok=True)
        stem = export_file_stem(self.channel, after, before, self._part)
        for fmt in self.cfg.formats:
            path = directory / f"{stem}.{fmt}"
            if fmt == "json":
                self._json = _JsonExportFile(path, channel_header(self.channel, exported_ms, after_ms, before_ms))
            else:
                self._csv = _CsvExportFile(path, self.cfg.csv_date_format, self.cfg.csv_line_terminator)
            self.files.append(path)

    def _close_open(self) -> None:
        for export_file in (self._json, self._csv):
            if export_file is not None:
                export_file.close()
        self._json = self._csv = None

    def close(self) -> None:
        if not self.files and not self.cfg.date_partitioned:
            self._start_part()  # DCE always creates the file, even for an empty channel
        self._close_open()


def write_exports(out_dir: str | Path, cfg: SynthConfig) -> list[Path]:
    """Generate the config's messages and write them as DCE-named export files under ``out_dir``.

    Every format in ``cfg.formats`` is written from the same message stream, streaming (memory does not grow
    with ``cfg.messages``). Returns the written paths in writing order. Files of the same names are overwritten,
    as DCE does.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    users = make_users(cfg.seed, cfg.users)
    written: list[Path] = []
    for channel in plan_channels(cfg):
        export_time_ms = channel_export_time_ms(cfg, channel)
        messages = ChannelMessages(cfg, channel, users, export_time_ms=export_time_ms,
                                   fragments="json" in cfg.formats)
        export = _ChannelExport(out_dir, cfg, channel, export_time_ms)
        try:
            for message, author in messages.generate():
                export.write(message, author)
        finally:
            export.close()
        written.extend(export.files)
    return written


# --------------------------------------------------------------------------------------------------------------
# Bundled samples
# --------------------------------------------------------------------------------------------------------------

SAMPLES_SEED = 2022
_SAMPLE_ZIP_TIME = (2023, 1, 15, 9, 30, 0)


def build_samples(out_dir: str | Path) -> list[Path]:
    """Write the bundled sample landing folder (see include/promptmill/samples/README.md). Byte-identical on
    every run."""
    out_dir = Path(out_dir)
    base = SynthConfig(seed=SAMPLES_SEED, users=40, channels=1)
    written: list[Path] = []
    # The original pipeline's input: slash-era CSVs of two channels, an ISO-dated one (DCE >= 2.42.3, Linux)
    # and a legacy-dated one (DCE <= 2.40, Windows: CRLF, minute precision, unsigned CDN URLs).
    written += write_exports(out_dir / "csv", replace(base, messages=600, channels=1, first_channel=1,
                                                      formats=("csv",)))
    written += write_exports(out_dir / "csv", replace(base, messages=500, channels=1, first_channel=2,
                                                      formats=("csv",), csv_date_format="legacy",
                                                      csv_line_terminator="\r\n", cdn_signatures=False))
    written += write_exports(out_dir / "json", replace(base, messages=100, first_channel=3))
    written += write_exports(out_dir / "json", replace(base, messages=120, era="text", first_channel=7))
    written += write_exports(out_dir / "partitioned", replace(base, messages=120, first_channel=5,
                                                              partition_size=50))
    # Daily scheduled exports of one channel: one file per day in <YYYY-MM-DD>/ folders.
    written += write_exports(out_dir, replace(base, messages=90, first_channel=6, mean_gap_s=2400.0,
                                              date_partitioned=True))
    # An archive holding the same channel exported as CSV and JSON, in nested folders.
    with tempfile.TemporaryDirectory() as scratch:
        members = write_exports(scratch, replace(base, messages=120, first_channel=4, formats=("json", "csv")))
        archive = out_dir / "archives" / "dreambot-4-export.zip"
        archive.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive, "w") as bundle:
            for member in members:
                kind = member.suffix.lstrip(".")
                info = zipfile.ZipInfo(f"exports/2023-01-15/{kind}/{member.name}", date_time=_SAMPLE_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # unix, whatever the building OS
                info.external_attr = 0o644 << 16
                bundle.writestr(info, member.read_bytes(), compresslevel=9)
        written.append(archive)
    return written
