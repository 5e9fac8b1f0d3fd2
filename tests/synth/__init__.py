"""Synthetic DiscordChatExporter exports of Stable Diffusion "dreambot" channels, for the tests and benchmarks
(the product never uses it; it also writes the bundled samples, ``python -m tests.synth --samples DIR``).

Three jobs:

* realism - message texts follow the bot templates of both eras exactly (docs/bot-messages.md) and carry the
  kinds of junk the cleaning rules deal with (docs/cleaning-rules.md); files follow the DCE 2.4x JSON/CSV formats
  and file naming byte for byte (docs/export-formats.md);
* determinism - everything derives from seeded ``random.Random`` instances (never the global one) and from the
  configuration, never from the clock, so the same config always gives the same bytes;
* speed and bounded memory - messages are generated lazily and written streaming, so a benchmark can produce a
  1 GB export without holding it.

Each channel gets its own random streams (one for content, one for the time line), so a channel's messages do not
depend on which formats are written or how files are partitioned: the same config in JSON and CSV describes the
same messages.

Modules: ``config`` (what to generate), ``vocabulary`` (word lists and the prompt writer), ``discord`` (ids,
timestamps, users, channels, file names), ``messages`` (the message stream), ``writers`` (JSON/CSV files and the
bundled samples), ``cli``.
"""

from tests.synth.config import CSV_DATE_FORMATS, ERAS, FORMATS, SynthConfig
from tests.synth.discord import (
    BOTS,
    SynthChannel,
    SynthUser,
    channel_header,
    channel_id,
    csv_date,
    export_file_stem,
    format_csv_date,
    format_json_timestamp,
    make_users,
    plan_channels,
    snowflake,
    snowflake_ms,
    to_dce_json_bytes,
)
from tests.synth.messages import iter_channel_messages, iter_messages
from tests.synth.vocabulary import MITIGATION, NAUGHTY, PromptWriter
from tests.synth.writers import build_samples, write_exports

__all__ = [
    "BOTS", "CSV_DATE_FORMATS", "ERAS", "FORMATS", "MITIGATION", "NAUGHTY", "PromptWriter", "SynthChannel",
    "SynthConfig", "SynthUser", "build_samples", "channel_header", "channel_id", "csv_date", "export_file_stem",
    "format_csv_date", "format_json_timestamp", "iter_channel_messages", "iter_messages", "make_users",
    "plan_channels", "snowflake", "snowflake_ms", "to_dce_json_bytes", "write_exports",
]
