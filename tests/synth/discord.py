"""Discord and DiscordChatExporter shapes: snowflakes, timestamps as DCE writes them, the server's members and
bots, the channels, the JSON header, file names and DCE's escaping of characters outside the BMP."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from tests.synth.config import CSV_DATE_FORMATS, SynthConfig, seeded_random
from tests.synth.vocabulary import NAME_PARTS, NICKNAME_FORMS, NON_ASCII_NICKNAMES, ROLE_NAMES

# --------------------------------------------------------------------------------------------------------------
# Discord constants
# --------------------------------------------------------------------------------------------------------------

DISCORD_EPOCH_MS = 1420070400000
SLASH_ERA_START = datetime(2022, 11, 1, tzinfo=UTC)
TEXT_ERA_START = datetime(2022, 8, 8, tzinfo=UTC)
CSV_HEADER = "AuthorID,Author,Date,Content,Attachments,Reactions"

GUILD_NAME = "Stable Diffusion"
CATEGORY_NAME = "Bots"
CDN = "https://cdn.discordapp.com"
TWEMOJI = "https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg"

# Worker/process bits of generated snowflakes (bits 12..21); the low 12 bits are a per-channel increment.
SNOWFLAKE_WORKER_BITS = (1 << 17) | (0 << 12)


def snowflake(ms: int, increment: int = 0) -> int:
    """Discord snowflake for a Unix time in milliseconds: ((ms - epoch) << 22) | worker/process | increment."""
    return ((ms - DISCORD_EPOCH_MS) << 22) | SNOWFLAKE_WORKER_BITS | (increment & 0xFFF)


def snowflake_ms(snowflake_id: int | str) -> int:
    """Unix time in milliseconds encoded in a snowflake."""
    return (int(snowflake_id) >> 22) + DISCORD_EPOCH_MS


def ms_of(moment: datetime) -> int:
    """A datetime as Unix milliseconds."""
    return int(moment.timestamp() * 1000)


# --------------------------------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------------------------------

# DCE JSON: fraction trimmed of trailing zeros, omitted if zero. CSV "o" format: always 7 digits.
_JSON_FRACTIONS = tuple((("." + f"{ms:03d}".rstrip("0")) if ms else "") + "+00:00" for ms in range(1000))
_CSV_FRACTIONS = tuple(f".{ms:03d}0000" for ms in range(1000))
_SECONDS = tuple(f"{second:02d}" for second in range(60))
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_day_prefixes: dict[int, str] = {}
_minute_prefixes: dict[int, str] = {}  # "2022-11-01T12:00:" by minute since the epoch (timestamps are hot)


def _day_prefix(day_number: int) -> str:
    prefix = _day_prefixes.get(day_number)
    if prefix is None:
        prefix = _day_prefixes[day_number] = (date(1970, 1, 1) + timedelta(days=day_number)).isoformat()
    return prefix


def _minute_prefix(minute_number: int) -> str:
    if len(_minute_prefixes) > 200_000:
        _minute_prefixes.clear()
    day, minute_of_day = divmod(minute_number, 1440)
    prefix = f"{_day_prefix(day)}T{minute_of_day // 60:02d}:{minute_of_day % 60:02d}:"
    _minute_prefixes[minute_number] = prefix
    return prefix


def format_json_timestamp(ms: int) -> str:
    """A UTC time in ms as DCE JSON writes it: ``2022-11-01T12:00:03.12+00:00``."""
    seconds, fraction = divmod(ms, 1000)
    minute, second = divmod(seconds, 60)
    prefix = _minute_prefixes.get(minute) or _minute_prefix(minute)
    return prefix + _SECONDS[second] + _JSON_FRACTIONS[fraction]


def format_csv_date(ms: int, style: str = "iso") -> str:
    """A UTC time in ms as the DCE CSV ``Date`` column of a given generation of DCE writes it."""
    seconds, fraction = divmod(ms, 1000)
    day, second_of_day = divmod(seconds, 86400)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    if style == "iso":
        return f"{_day_prefix(day)}T{hour:02d}:{minute:02d}:{second:02d}{_CSV_FRACTIONS[fraction]}+00:00"
    moment = date(1970, 1, 1) + timedelta(days=day)
    hour12 = hour % 12 or 12
    meridiem = "AM" if hour < 12 else "PM"
    if style == "legacy":  # dd-MMM-yy hh:mm tt
        return f"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year % 100:02d} {hour12:02d}:{minute:02d} {meridiem}"
    if style == "us":  # MM/dd/yyyy h:mm tt
        return f"{moment.month:02d}/{moment.day:02d}/{moment.year:04d} {hour12}:{minute:02d} {meridiem}"
    raise ValueError(f"unknown CSV date format {style!r}; expected one of {CSV_DATE_FORMATS}")


def _parse_json_timestamp_ms(text: str) -> int:
    return ms_of(datetime.fromisoformat(text))


def csv_date(json_timestamp: str, style: str = "iso") -> str:
    """The CSV ``Date`` value of a message from its DCE JSON timestamp."""
    if style == "iso" and json_timestamp.endswith("+00:00"):
        main, _, fraction = json_timestamp[:-6].partition(".")
        return f"{main}.{fraction:0<7}+00:00"
    return format_csv_date(_parse_json_timestamp_ms(json_timestamp), style)


# --------------------------------------------------------------------------------------------------------------
# People and channels
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthUser:
    """A Discord account with its DCE JSON objects precomputed (they are shared by every message of the user)."""

    id: str
    name: str
    discriminator: str
    nickname: str
    is_bot: bool
    json_with_roles: dict = field(repr=False)
    json_without_roles: dict = field(repr=False)

    @property
    def full_name(self) -> str:
        """DCE "FullName": ``name`` for new-system accounts, ``name#1234`` for legacy and bot accounts."""
        return self.name if self.discriminator == "0000" else f"{self.name}#{self.discriminator}"


def _make_user(
    user_id: int, name: str, discriminator: str, nickname: str, is_bot: bool, roles: list[dict], avatar: str | None
) -> SynthUser:
    color = roles[0]["color"] if roles else None
    if avatar:
        avatar_url = f"{CDN}/avatars/{user_id}/{avatar}.{'gif' if avatar.startswith('a_') else 'png'}?size=512"
    else:
        avatar_url = f"{CDN}/embed/avatars/{(user_id >> 22) % 6}.png"
    base = {"id": str(user_id), "name": name, "discriminator": discriminator, "nickname": nickname, "color": color,
            "isBot": is_bot}
    with_roles = {**base, "roles": roles, "avatarUrl": avatar_url}
    without_roles = {**base, "avatarUrl": avatar_url}
    return SynthUser(str(user_id), name, discriminator, nickname, is_bot, with_roles, without_roles)


def _make_roles() -> tuple[dict, ...]:
    base_ms = ms_of(datetime(2022, 7, 20, tzinfo=UTC))
    return tuple(
        {"id": str(snowflake(base_ms + i * 60_000, i)), "name": name, "color": color, "position": len(ROLE_NAMES) - i}
        for i, (name, color) in enumerate(ROLE_NAMES)
    )


_ROLES = _make_roles()
_BOT_ROLE = {"id": str(snowflake(ms_of(datetime(2022, 7, 21, tzinfo=UTC)), 7)), "name": "Bots", "color": "#1ABC9C",
             "position": 10}


def _make_bots() -> dict[str, SynthUser]:
    text_bot = _make_user(snowflake(ms_of(datetime(2022, 8, 1, 9, tzinfo=UTC)), 1), "DreamBotMothership", "6958",
                          "DreamBotMothership", True, [_BOT_ROLE], "5f1b2c0e9d8a7b6c5d4e3f2a1b0c9d8e")
    slash_bot = _make_user(snowflake(ms_of(datetime(2022, 10, 25, 15, tzinfo=UTC)), 2), "DreamBot", "0357",
                           "DreamBot", True, [_BOT_ROLE], "a0c4e2b1d3f5a7c9e1b3d5f7a9c1e3b5")
    return {"text": text_bot, "slash": slash_bot}


BOTS = _make_bots()


def make_users(seed: int, count: int) -> list[SynthUser]:
    """The human members of the server for a seed: usernames with dots/digits, nicknames with spaces, dots,
    digits and non-ASCII letters, some legacy ``name#1234`` accounts."""
    rng = seeded_random(seed, "users", 0)
    users: list[SynthUser] = []
    taken: set[str] = set()
    earliest = ms_of(datetime(2016, 1, 1, tzinfo=UTC))
    latest = ms_of(datetime(2022, 7, 1, tzinfo=UTC))
    for index in range(count):
        a, b = rng.choice(NAME_PARTS), rng.choice(NAME_PARTS)
        digits = str(rng.randrange(1, 2000))
        name = rng.choice((f"{a}{b}", f"{a}.{b}", f"{a}_{b}{digits}", f"{a}{digits}", f"{a}.{b}.{digits[:2]}"))
        while name in taken:
            name = f"{name}{index}"
        taken.add(name)
        if rng.random() < 0.18:
            nickname = rng.choice(NON_ASCII_NICKNAMES)
        else:
            nickname = rng.choice(NICKNAME_FORMS).format(a=a, b=b, A=a.capitalize(), B=b.capitalize(), d=digits)
        legacy = rng.random() < 0.3
        discriminator = f"{rng.randrange(1, 10000):04d}" if legacy else "0000"
        roles = [rng.choice(_ROLES)] if rng.random() < 0.35 else []
        avatar = None if rng.random() < 0.2 else ("a_" if rng.random() < 0.1 else "") + f"{rng.getrandbits(128):032x}"
        user_id = snowflake(rng.randrange(earliest, latest), rng.randrange(4096))
        users.append(_make_user(user_id, name, discriminator, nickname, False, roles, avatar))
    return users


@dataclass(frozen=True)
class SynthChannel:
    """One exported channel: its identity, era and share of the configured messages."""

    id: str
    number: int
    name: str
    era: str  # "slash" | "text"
    message_count: int
    ordinal: int  # position among the config's channels (seeds this channel's random streams)

    @property
    def bot(self) -> SynthUser:
        return BOTS[self.era]


GUILD_ID = str(snowflake(ms_of(datetime(2022, 7, 20, 12, tzinfo=UTC)), 1))
CATEGORY_ID = str(snowflake(ms_of(datetime(2022, 7, 20, 12, 5, tzinfo=UTC)), 2))
GUILD_JSON = {"id": GUILD_ID, "name": GUILD_NAME,
              "iconUrl": f"{CDN}/icons/{GUILD_ID}/8d4f1c2b3a596e7d8c9b0a1f2e3d4c5b.png?size=512"}


def channel_id(era: str, number: int) -> str:
    """Stable id of ``dreambot-<n>`` (slash) / ``dream-<n>`` (text): the same channel in every export."""
    created = datetime(2022, 10, 20, tzinfo=UTC) if era == "slash" else datetime(2022, 8, 5, tzinfo=UTC)
    return str(snowflake(ms_of(created) + number * 61_000, number))


def plan_channels(cfg: SynthConfig) -> list[SynthChannel]:
    """The channels of a config, with the messages split as evenly as possible (first channels get the rest)."""
    per_channel, remainder = divmod(cfg.messages, cfg.channels)
    channels = []
    for ordinal in range(cfg.channels):
        era = cfg.era if cfg.era != "mixed" else ("slash" if ordinal % 2 == 0 else "text")
        number = cfg.first_channel + ordinal
        name = f"dreambot-{number}" if era == "slash" else f"dream-{number}"
        count = per_channel + (1 if ordinal < remainder else 0)
        channels.append(SynthChannel(channel_id(era, number), number, name, era, count, ordinal))
    return channels


def channel_header(channel: SynthChannel, exported_at_ms: int, after_ms: int | None = None,
                   before_ms: int | None = None) -> dict:
    """The DCE JSON header (everything before ``messages``), key order as DCE writes it."""
    topic = "Use /dream to create images" if channel.era == "slash" else 'Type !dream "your prompt" to dream'
    return {
        "guild": GUILD_JSON,
        "channel": {"id": channel.id, "type": "GuildTextChat", "categoryId": CATEGORY_ID, "category": CATEGORY_NAME,
                    "name": channel.name, "topic": topic},
        "dateRange": {"after": None if after_ms is None else format_json_timestamp(after_ms),
                      "before": None if before_ms is None else format_json_timestamp(before_ms)},
        "exportedAt": format_json_timestamp(exported_at_ms),
    }


# --------------------------------------------------------------------------------------------------------------
# Files: JSON escaping and names
# --------------------------------------------------------------------------------------------------------------

# DCE (System.Text.Json, relaxed escaping) writes non-BMP characters as UTF-16 surrogate escapes; orjson writes
# them as raw UTF-8, so 4-byte sequences are rewritten after serialisation. Nearly all of them (emoji) start with
# 0xF0; a pattern starting with that literal byte is scanned at memchr speed, the general one only when needed.
_ASTRAL_F0 = re.compile(rb"\xf0[\x80-\xbf]{3}")
_ASTRAL_ANY = re.compile(rb"[\xf0-\xf4][\x80-\xbf]{3}")
_astral_escapes: dict[bytes, bytes] = {}


def _escape_astral(match: re.Match) -> bytes:
    raw = match.group()
    escaped = _astral_escapes.get(raw)
    if escaped is None:
        code_point = ord(raw.decode("utf-8")) - 0x10000
        escaped = b"\\u%04X\\u%04X" % (0xD800 + (code_point >> 10), 0xDC00 + (code_point & 0x3FF))
        _astral_escapes[raw] = escaped
    return escaped


def to_dce_json_bytes(raw_json: bytes) -> bytes:
    """orjson output -> DCE escaping: characters outside the BMP as ``\\uD83D\\uDE42``."""
    if b"\xf1" in raw_json or b"\xf2" in raw_json or b"\xf3" in raw_json or b"\xf4" in raw_json:
        return _ASTRAL_ANY.sub(_escape_astral, raw_json)
    if b"\xf0" in raw_json:
        return _ASTRAL_F0.sub(_escape_astral, raw_json)
    return raw_json


_UNSAFE_FILE_NAME_CHARS = re.compile(r'[\x00/\\:*?"<>|]')


def export_file_stem(channel: SynthChannel, after: date | None = None, before: date | None = None,
                     part: int = 1) -> str:
    """DCE default file name without extension: ``<Guild> - <Parent> - <Channel> [<id>]<range>[ [part N]]``."""
    stem = f"{GUILD_NAME} - {CATEGORY_NAME} - {channel.name} [{channel.id}]"
    if after is not None and before is not None:
        stem += f" ({after.isoformat()} to {before.isoformat()})"
    if part > 1:
        stem += f" [part {part}]"
    return _UNSAFE_FILE_NAME_CHARS.sub("_", stem)
