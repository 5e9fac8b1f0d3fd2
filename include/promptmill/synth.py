"""Synthetic DiscordChatExporter exports of Stable Diffusion "dreambot" channels.

The generator feeds the bundled sample exports, the test suites and the benchmarks, so it has three jobs:

* realism - message texts follow the bot templates of both eras exactly (docs/dreambot-messages.md) and carry
  the kinds of junk the original cleaning rules deal with (docs/seed-cleaning-rules.md); files follow the DCE
  2.4x JSON/CSV formats and file naming byte for byte (docs/discordchatexporter-formats.md);
* determinism - everything derives from seeded ``random.Random`` instances (never the global one) and from the
  configuration, never from the clock, so the same config always gives the same bytes;
* speed and bounded memory - messages are generated lazily and written streaming, so a benchmark can produce a
  1 GB export at more than 50,000 messages/s.

Each channel gets its own random streams (one for content, one for the time line), so a channel's messages do not
depend on which formats are written or how files are partitioned: the same config in JSON and CSV describes the
same messages.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import random
import re
import sys
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from pathlib import Path

import orjson

# --------------------------------------------------------------------------------------------------------------
# Discord constants
# --------------------------------------------------------------------------------------------------------------

DISCORD_EPOCH_MS = 1420070400000
SLASH_ERA_START = datetime(2022, 11, 1, tzinfo=UTC)
TEXT_ERA_START = datetime(2022, 8, 8, tzinfo=UTC)
ERAS = ("slash", "text", "mixed")
FORMATS = ("json", "csv")
CSV_DATE_FORMATS = ("iso", "legacy", "us")
CSV_HEADER = "AuthorID,Author,Date,Content,Attachments,Reactions"

GUILD_NAME = "Stable Diffusion"
CATEGORY_NAME = "Bots"
CDN = "https://cdn.discordapp.com"
TWEMOJI = "https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg"

# Worker/process bits of generated snowflakes (bits 12..21); the low 12 bits are a per-channel increment.
_SNOWFLAKE_WORKER_BITS = (1 << 17) | (0 << 12)


def snowflake(ms: int, increment: int = 0) -> int:
    """Discord snowflake for a Unix time in milliseconds: ((ms - epoch) << 22) | worker/process | increment."""
    return ((ms - DISCORD_EPOCH_MS) << 22) | _SNOWFLAKE_WORKER_BITS | (increment & 0xFFF)


def snowflake_ms(snowflake_id: int | str) -> int:
    """Unix time in milliseconds encoded in a snowflake."""
    return (int(snowflake_id) >> 22) + DISCORD_EPOCH_MS


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. All fields have defaults; ``SynthConfig(messages=..., seed=...)`` is the usual call.

    ``era="mixed"`` alternates the channels' eras (slash, text, slash, ...): real bots never mixed eras within a
    channel, so a single "mixed" channel is a slash-era one.
    ``start`` None means the era's own start (slash: 2022-11-01, text: 2022-08-08); a given ``start`` applies
    to every channel. ``first_channel`` numbers the channels (``dreambot-<n>`` / ``dream-<n>``); a channel's
    id depends only on its era and number, so exports made with different configs can describe the same channel.
    ``exported_at`` None derives the export time from the channel's last message (JSON ``exportedAt`` and the
    CDN signature parameters of attachment URLs).
    """

    messages: int = 1000
    seed: int = 0
    channels: int = 2
    users: int = 50
    era: str = "slash"
    formats: tuple[str, ...] = ("json",)
    start: datetime | None = None
    mean_gap_s: float = 2.0
    partition_size: int | None = None
    date_partitioned: bool = False
    near_dup_rate: float = 0.3
    junk_rate: float = 0.08
    first_channel: int = 1
    csv_date_format: str = "iso"
    csv_line_terminator: str = "\n"
    cdn_signatures: bool = True
    exported_at: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.formats, str):
            object.__setattr__(self, "formats", tuple(f for f in self.formats.split(",") if f))
        problems = []
        if self.messages < 0:
            problems.append(f"messages must be >= 0, got {self.messages}")
        if self.channels < 1:
            problems.append(f"channels must be >= 1, got {self.channels}")
        if self.users < 1:
            problems.append(f"users must be >= 1, got {self.users}")
        if self.era not in ERAS:
            problems.append(f"era must be one of {ERAS}, got {self.era!r}")
        if not self.formats or any(f not in FORMATS for f in self.formats) or len(set(self.formats)) != len(
            self.formats
        ):
            problems.append(f"formats must be distinct values among {FORMATS}, got {self.formats!r}")
        if self.mean_gap_s <= 0:
            problems.append(f"mean_gap_s must be > 0, got {self.mean_gap_s}")
        if self.partition_size is not None and self.partition_size < 1:
            problems.append(f"partition_size must be >= 1 or None, got {self.partition_size}")
        for name in ("near_dup_rate", "junk_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.first_channel < 1:
            problems.append(f"first_channel must be >= 1, got {self.first_channel}")
        if self.csv_date_format not in CSV_DATE_FORMATS:
            problems.append(f"csv_date_format must be one of {CSV_DATE_FORMATS}, got {self.csv_date_format!r}")
        if self.csv_line_terminator not in ("\n", "\r\n"):
            problems.append(f"csv_line_terminator must be '\\n' or '\\r\\n', got {self.csv_line_terminator!r}")
        for name in ("start", "exported_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                problems.append(f"{name} must be timezone-aware, got {value!r}")
        if problems:
            raise ValueError("invalid SynthConfig: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------------------------

SUBJECTS = (
    "a lighthouse on a cliff", "a cyberpunk city", "an astronaut riding a horse", "a cute corgi",
    "a portrait of a young woman", "a dragon", "a cozy cabin in the woods", "a samurai", "a steampunk airship",
    "a medieval castle", "a fox in a forest", "an old fisherman", "a robot", "a mermaid", "a wizard",
    "a futuristic car", "a bowl of ramen", "a koi pond", "a haunted mansion", "a space station", "a red panda",
    "a knight in shining armor", "an owl", "a waterfall", "a cat wearing a hat", "a viking warrior",
    "a mushroom village", "a bioluminescent jellyfish", "a tiger", "an elven queen", "a giant tree",
    "a lone traveler", "a train station", "a tea house", "a desert oasis", "a gothic cathedral",
    "a floating island", "a hummingbird", "a city street", "a giant mech", "a goblin merchant",
    "a sunflower field", "a polar bear", "a spaceship", "a clockwork heart", "a skull", "a phoenix", "a witch",
    "a pirate ship", "a crystal cave", "a portrait of an old man", "a sailor navigating with a sextant",
    "a girl with a red umbrella", "a dog", "two cats playing chess", "a frog prince", "a lion", "a mountain temple",
    "a neon diner", "a scarecrow", "a jellyfish city", "a bonsai tree", "an abandoned amusement park",
)
ADJECTIVES = (
    "beautiful", "ancient", "futuristic", "gloomy", "colorful", "tiny", "giant", "abandoned", "ethereal",
    "majestic", "neon", "cozy", "epic", "surreal", "minimalist", "haunted", "glowing", "overgrown", "cute",
)
SCENES = (
    "at dusk", "at sunset", "in the rain", "under a starry sky", "in a misty forest", "on the moon",
    "in tokyo at night", "by the sea", "in winter", "in a snowy mountain landscape", "in a field of flowers",
    "in the sussex countryside", "underwater", "in a post - apocalyptic wasteland", "inside a library",
    "on mars", "in the clouds", "at golden hour", "in a dark dungeon", "on a rainy street",
)
STYLES = (
    "oil painting", "watercolor", "digital art", "concept art", "photograph", "35mm film photo", "pixel art",
    "anime", "studio ghibli style", "low poly", "isometric", "3 d render", "matte painting", "ukiyo - e",
    "pencil sketch", "art nouveau", "vaporwave", "fantasy art", "cinematic still", "polaroid", "synthwave",
    "baroque painting", "comic book style", "claymation", "tarot card", "stained glass",
)
ARTISTS = (
    "greg rutkowski", "alphonse mucha", "artgerm", "wlop", "james gurney", "thomas kinkade", "makoto shinkai",
    "simon stålenhag", "zdzisław beksiński", "h. r. giger", "beeple", "moebius", "hayao miyazaki",
    "ilya kuvshinov", "craig mullins", "john singer sargent", "ross tran", "peter mohrbacher", "rené magritte",
    "gustav klimt", "claude monet", "vincent van gogh", "katsushika hokusai", "syd mead", "dan mumford",
    "loish", "yoshitaka amano", "frank frazetta", "ivan aivazovsky", "james jean",
)
MODIFIERS = (
    "trending on artstation", "8 k", "4 k", "unreal engine", "octane render", "highly detailed", "intricate",
    "sharp focus", "cinematic lighting", "volumetric lighting", "hyperrealistic", "photorealistic", "masterpiece",
    "award winning", "dramatic lighting", "unreal engine 5", "artstation hd", "hdr", "depth of field", "bokeh",
    "ultra detailed", "smooth", "elegant", "4 k uhd", "digital painting", "matte", "illustration", "vivid colors",
    "soft lighting", "rim light", "god rays", "8k resolution", "dslr", "85 mm lens", "f / 1. 8", "1 9 8 0 s",
    "deviantart", "behance", "pixiv", "centered", "symmetrical", "wide angle", "ultra - detailed", "studio quality",
)
NEGATIVES = (
    "blurry", "ugly", "deformed", "extra fingers", "bad anatomy", "low quality", "watermark", "text",
    "disfigured", "mutated hands", "poorly drawn face", "cropped", "jpeg artifacts", "extra limbs",
)
SHORT_PROMPTS = (
    "a cat", "surprise me", "dog", "hello", "test", "love", "the meaning of life", "happiness", "vnj vdf asdo 12",
    "asdfgh", "com", "my dreams", "ok", "something cool", "anything", "pizza", "elon musk", "a house",
)
FOREIGN_PROMPTS = (
    "un chat sur la lune, peinture à l'huile", "ein schöner wald im herbst, ölgemälde",
    "una casa en la playa al atardecer", "гора на закате, масляная живопись", "富士山と桜, 浮世絵",
    "고양이 우주비행사", "café à paris, aquarelle", "niño jugando en la lluvia", "łódź na jeziorze o świcie",
    "ツンデレ 少女, アニメ", "über den wolken, fantasy",
)
# (character, DCE shortcode, twemoji file name). Astral emoji are written as surrogate escapes in DCE JSON,
# BMP ones (✨, ❤) literally - both kinds are useful to parsers and to the emoji-removal rule.
EMOJI = (
    ("🔥", "fire", "1f525"), ("😍", "heart_eyes", "1f60d"), ("🙂", "slight_smile", "1f642"),
    ("🎨", "art", "1f3a8"), ("🤖", "robot", "1f916"), ("🐉", "dragon", "1f409"), ("🌸", "cherry_blossom", "1f338"),
    ("😂", "joy", "1f602"), ("👍", "thumbsup", "1f44d"), ("🌌", "milky_way", "1f30c"), ("😺", "smiley_cat", "1f63a"),
    ("✨", "sparkles", "2728"), ("❤", "heart", "2764"),
)
SAMPLERS_SLASH = ("k_lms", "k_euler", "k_euler_ancestral", "k_dpm_2", "k_dpm_2_ancestral", "ddim", "plms", "k_heun")
SAMPLERS_TEXT = SAMPLERS_SLASH + ("K_EULER_A", "K_LMS", "Ddim")
SIZES = ((512, 512), (512, 768), (768, 512), (640, 640), (512, 640), (768, 768), (1024, 576), (576, 1024))
CHATTER = (
    "wow this is amazing", "how do I make it landscape?", "lol", "can we get more steps?", "bot is slow today",
    "that one is 🔥", "anyone know good prompts for portraits?", "this channel moves so fast", "nice!!",
    "how do negative prompts work", "why is my image black?", "très beau 😍", "спасибо!", "すごい！",
    "genial 👍", "i love the second one", "what sampler is best for faces", "gm", "is the bot down?",
    "try adding trending on artstation", "haha the hands again", "ok this is getting addictive",
    "where can I find the seed?", "/dream prompt:a cat in space", '!dream "a cat in space" -n 4',
    "check https://lexica.art for ideas", "my gpu could never", "use cfg_scale:12 for that",
)
ERROR_PASTES = (
    "```ERROR: CUDA out of memory. Tried to allocate 1.50 GiB (GPU 0; 23.70 GiB total capacity)```",
    "```ERROR: Prompt too long, max 77 tokens```",
    "```ERROR: invalid literal for int() with base 10: 'abc'```",
    "```ERROR: The bot is overloaded, please try again later```",
    "```ERROR: Traceback (most recent call last):\n  File \"dream.py\", line 212, in generate\n"
    "RuntimeError: expected scalar type Half but found Float```",
)
SLASH_WARNINGS_STEPS = "Requested more than 50 `steps`"
NAUGHTY = "There were naughty dreams that had to be popped"
MITIGATION = "One or more images passed the classifier thresholds, and mitigation was applied."
NAME_PARTS = (
    "moon", "fox", "pixel", "witch", "dan", "neo", "art", "dream", "lucid", "kai", "mira", "zoe", "void",
    "sky", "tom", "nova", "raven", "echo", "ghost", "leo", "luna", "max", "sam", "ivy", "kenji", "ana", "owl",
)
NICKNAME_FORMS = ("{a} {b}", "{A}{B}", "{a}.{b}", "{A} {b} {d}", "{A}_{d}", "{a}{d}", "{A}.{B}.")
NON_ASCII_NICKNAMES = (
    "Zoë", "Влад", "さくら", "José Ñandú", "Łukasz", "Ørjan", "李明", "Renée", "Jürgen 88", "Ἀθηνᾶ", "Ангелина",
    "kōhai", "Sørina.art",
)
ROLE_NAMES = (("Member", "#99AAB5"), ("Artist", "#E67E22"), ("Beta Tester", "#3498DB"), ("Supporter", "#9B59B6"))


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
    return _ms(datetime.fromisoformat(text))


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
    base_ms = _ms(datetime(2022, 7, 20, tzinfo=UTC))
    return tuple(
        {"id": str(snowflake(base_ms + i * 60_000, i)), "name": name, "color": color, "position": len(ROLE_NAMES) - i}
        for i, (name, color) in enumerate(ROLE_NAMES)
    )


_ROLES = _make_roles()
_BOT_ROLE = {"id": str(snowflake(_ms(datetime(2022, 7, 21, tzinfo=UTC)), 7)), "name": "Bots", "color": "#1ABC9C",
             "position": 10}


def _make_bots() -> dict[str, SynthUser]:
    text_bot = _make_user(snowflake(_ms(datetime(2022, 8, 1, 9, tzinfo=UTC)), 1), "DreamBotMothership", "6958",
                          "DreamBotMothership", True, [_BOT_ROLE], "5f1b2c0e9d8a7b6c5d4e3f2a1b0c9d8e")
    slash_bot = _make_user(snowflake(_ms(datetime(2022, 10, 25, 15, tzinfo=UTC)), 2), "DreamBot", "0357",
                           "DreamBot", True, [_BOT_ROLE], "a0c4e2b1d3f5a7c9e1b3d5f7a9c1e3b5")
    return {"text": text_bot, "slash": slash_bot}


BOTS = _make_bots()


def make_users(seed: int, count: int) -> list[SynthUser]:
    """The human members of the server for a seed: usernames with dots/digits, nicknames with spaces, dots,
    digits and non-ASCII letters, some legacy ``name#1234`` accounts."""
    rng = _rng(seed, "users", 0)
    users: list[SynthUser] = []
    taken: set[str] = set()
    earliest = _ms(datetime(2016, 1, 1, tzinfo=UTC))
    latest = _ms(datetime(2022, 7, 1, tzinfo=UTC))
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


GUILD_ID = str(snowflake(_ms(datetime(2022, 7, 20, 12, tzinfo=UTC)), 1))
CATEGORY_ID = str(snowflake(_ms(datetime(2022, 7, 20, 12, 5, tzinfo=UTC)), 2))
GUILD_JSON = {"id": GUILD_ID, "name": GUILD_NAME,
              "iconUrl": f"{CDN}/icons/{GUILD_ID}/8d4f1c2b3a596e7d8c9b0a1f2e3d4c5b.png?size=512"}


def channel_id(era: str, number: int) -> str:
    """Stable id of ``dreambot-<n>`` (slash) / ``dream-<n>`` (text): the same channel in every export."""
    created = datetime(2022, 10, 20, tzinfo=UTC) if era == "slash" else datetime(2022, 8, 5, tzinfo=UTC)
    return str(snowflake(_ms(created) + number * 61_000, number))


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


def _rng(seed: int, purpose: str, ordinal: int) -> random.Random:
    # String seeds go through SHA-512 in random.Random, so they are stable across runs and PYTHONHASHSEED.
    return random.Random(f"promptmill-synth:{seed}:{purpose}:{ordinal}")


# --------------------------------------------------------------------------------------------------------------
# Time line
# --------------------------------------------------------------------------------------------------------------


def _channel_start_ms(cfg: SynthConfig, channel: SynthChannel) -> int:
    if cfg.start is not None:
        return _ms(cfg.start)
    return _ms(SLASH_ERA_START if channel.era == "slash" else TEXT_ERA_START) + channel.ordinal * 7_919


def _iter_times(cfg: SynthConfig, channel: SynthChannel) -> Iterator[int]:
    """Message times in ms: exponential gaps (capped at 30x the mean), strictly increasing."""
    rng = _rng(cfg.seed, "timeline", channel.ordinal)
    rate = 1.0 / cfg.mean_gap_s
    cap = 30.0 * cfg.mean_gap_s
    expovariate = rng.expovariate
    ms = _channel_start_ms(cfg, channel)
    for _ in range(channel.message_count):
        gap = expovariate(rate)
        ms += int((gap if gap < cap else cap) * 1000) or 1
        yield ms


def _channel_last_ms(cfg: SynthConfig, channel: SynthChannel) -> int:
    last = _channel_start_ms(cfg, channel)
    for last in _iter_times(cfg, channel):  # noqa: B007 - the last value is the point
        pass
    return last


def _full_export_time_ms(cfg: SynthConfig, channel: SynthChannel) -> int:
    """When the one-shot export of a channel ran: a fixed 17.5 minutes after its last message, whole seconds
    plus a DCE-like fraction, so ``exportedAt`` is always later than every exported message."""
    if cfg.exported_at is not None:
        return _ms(cfg.exported_at)
    return (_channel_last_ms(cfg, channel) // 1000 + 1050) * 1000 + 483


def _day_export_time_ms(day_start_ms: int) -> int:
    """Daily scheduled exports run 7 minutes after midnight UTC of the next day."""
    return day_start_ms + 86_400_000 + 7 * 60_000 + 121


# --------------------------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------------------------
# The hot paths below pick from tuples with ``seq[int(random() * len(seq))]`` rather than ``rng.choice``: it is
# several times faster and just as deterministic, and generation speed is what the benchmarks measure.


def _split_article(subject: str) -> tuple[str, str]:
    for article in ("a ", "an "):
        if subject.startswith(article):
            return article, subject[len(article):]
    return "", subject


_SUBJECT_PARTS = tuple(_split_article(subject) for subject in SUBJECTS)
_ADJECTIVES_WITH_ARTICLE = tuple(("an " if adjective[0] in "aeiou" else "a ") + adjective for adjective in ADJECTIVES)
_RESTYLES = STYLES + MODIFIERS


class _PromptWriter:
    """Builds prompts as lists of comma-separated segments (so retries can edit them) and the junk users typed."""

    def __init__(self, rng: random.Random) -> None:
        self.random = rng.random

    def fresh(self) -> list[str]:
        r = self.random
        roll = r()
        if roll < 0.05:
            return [SHORT_PROMPTS[int(r() * len(SHORT_PROMPTS))]]
        if roll < 0.08:
            return FOREIGN_PROMPTS[int(r() * len(FOREIGN_PROMPTS))].split(", ")
        article, bare = _SUBJECT_PARTS[int(r() * len(_SUBJECT_PARTS))]
        roll = r()
        if roll < 0.25 and article:
            subject = f"{_ADJECTIVES_WITH_ARTICLE[int(r() * len(ADJECTIVES))]} {bare}"
        elif roll < 0.45:
            subject = f"{ADJECTIVES[int(r() * len(ADJECTIVES))]} {bare}"
        else:
            subject = article + bare
        if r() < 0.6:
            subject = f"{subject} {SCENES[int(r() * len(SCENES))]}"
        segments = [subject]
        if r() < 0.7:
            segments.append(STYLES[int(r() * len(STYLES))])
        roll = r()
        if roll < 0.35:
            segments.append("by " + ARTISTS[int(r() * len(ARTISTS))])
        elif roll < 0.55:
            segments.append(f"by {ARTISTS[int(r() * len(ARTISTS))]} and {ARTISTS[int(r() * len(ARTISTS))]}")
        for _ in range(int(r() * 6)):
            segments.append(MODIFIERS[int(r() * len(MODIFIERS))])
        return list(dict.fromkeys(segments))

    def retry(self, segments: list[str]) -> list[str]:
        """A small edit of a previous attempt: the same text re-rolled, a modifier added or dropped, a style
        swapped, the scene changed. Stays recognisable: merging these is the near-duplicate rule's job."""
        r = self.random
        roll = r()
        edited = list(segments)
        if roll < 0.35:
            return edited
        if roll < 0.6 or len(edited) == 1:
            edited.insert(1 + int(r() * len(edited)), MODIFIERS[int(r() * len(MODIFIERS))])
        elif roll < 0.72:
            del edited[1 + int(r() * (len(edited) - 1))]
        elif roll < 0.9:
            edited[1 + int(r() * (len(edited) - 1))] = _RESTYLES[int(r() * len(_RESTYLES))]
        else:
            edited[0] = f"{edited[0]} {SCENES[int(r() * len(SCENES))]}"
        return edited

    def junk(self, segments: list[str], era: str) -> list[str]:
        """The garbage real users typed into the prompt field (what cleaning rules 9 and 14-33 deal with)."""
        r = self.random

        def pick(options: tuple[str, ...]) -> str:
            return options[int(r() * len(options))]

        text = ", ".join(segments)
        kind = int(r() * 16)
        if kind == 0:
            text += " " + pick(("--ar 16:9", "--ar 2:3 --v 4", "--no text", "--q 2 --stylize 750 --ar 3:2"))
        elif kind == 1:
            negatives = ", ".join(dict.fromkeys(pick(NEGATIVES) for _ in range(3)))
            text += ", " + pick(("negative prompt ", "negative _ prompt ", "Negative prompt: ")) + negatives
        elif kind == 2:
            text += " seed"
        elif kind == 3:
            text += f" cfg _ scale {pick(('7', '10', '12', '15'))}"
        elif kind == 4:
            text = pick(("https://i.imgur.com/Xy7bQ2a.png ", "in the style of https://www.artstation.com/artwork/lD8aZ4 ")
                        ) + text
        elif kind == 5:
            emoji = pick(_EMOJI_CHARS)
            text = pick((f"{text} {emoji}", f"{emoji} {text} {emoji}", f"{text}{emoji}{pick(_EMOJI_CHARS)}"))
        elif kind == 6:
            text = text.replace("a ", "á ", 1) if "a " in text else text + ", café"
        elif kind == 7:
            text = pick(("prompt ", "prompt: ", "Prompt = ", "prompt:")) + text
        elif kind == 8:
            text = f'"{text}"'
        elif kind == 9:
            text = pick(("(masterpiece:1.2), ", "((best quality)), ", "[cat:dog:0.5], ")) + text
        elif kind == 10:
            text = pick(("...", "1234", "???", "!!!", "--", "12 34", "ok", "æøå", "🙂"))
        elif kind == 11:
            text += pick((", 1 9 9 5 s", ", 3 d", ", 4 k", " {detailed} | [sharp]"))
        elif kind == 12:
            text = pick(("dreamt in ", "Dreaming for ")) + text
        elif kind == 13:
            text += " <lora:epiNoiseoffset_v2:0.8>"
        elif kind == 14:
            text = text + ", sextant" if r() < 0.5 else "sex appeal, " + text
        elif era == "text":
            text += "\nhighly detailed"  # a raw newline: only the text-era command line allowed one
        else:
            text += ", 100% detailed, <3, ~wow~, a=b"
        return [text]


# --------------------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------------------

_EMOJI_CHARS = tuple(char for char, _, _ in EMOJI)
_EMOJI_BY_CHAR = {char: (code, svg) for char, code, svg in EMOJI}
_EMOJI_RE = re.compile("[" + "".join(_EMOJI_CHARS) + "]")  # all single code points: a class is fastest
_REACTION_EMOJI = ("🔥", "😍", "👍", "❤", "😂")
_SLUG_TABLE = str.maketrans({chr(code): " " for code in range(128) if not chr(code).isalnum()})
_CFG_SCALES = ("7.0", "7.0", "7.0", "7.5", "8.0", "10.0", "12.5", "15.0", "5.0")
_TEXT_COUNTS = (2, 3, 4, 4, 4, 6, 9)
_TEXT_CFG = ("7.5", "10", "12.0", "5")
_STEPS = (20, 30, 75, 100, 150)
_TEXT_STEPS = (25, 30, 75, 100, 150)
_CHATTER_FILES = ("image.png", "unknown.png", "Screenshot_2022.jpg")

# Kinds of junk messages and their cumulative weights within junk_rate.
_JUNK_KINDS = ("chatter", "nsfw", "junk_prompt", "dreaming", "error", "multi_command")
_JUNK_CUM_WEIGHTS = (0.30, 0.54, 0.76, 0.86, 0.92, 1.0)
_BURST_WINDOW_MS = 10 * 60_000  # a retry comes seconds to minutes after the previous attempt
_MAX_ACTIVE_BURSTS = 24
_RECENT_PROMPTS = 256
_EXACT_REPEAT_RATE = 0.02  # somebody re-submits a prompt another user used recently
_REACTION_RATE = 0.04
_OPTION_TABLE_SIZE = 1024

# Depth (in spaces) of a message's keys inside the DCE document: messages sit at level 2 of the top object.
_MESSAGE_KEY_INDENT = 6


def _emoji_json(char: str) -> dict:
    code, svg = _EMOJI_BY_CHAR[char]
    return {"id": "", "name": char, "code": code, "isAnimated": False, "imageUrl": f"{TWEMOJI}/{svg}.svg"}


def _fragment(value: object, indent: int) -> orjson.Fragment:
    """``value`` pre-serialised for a position ``indent`` spaces deep in the indented DCE document."""
    return orjson.Fragment(orjson.dumps(value, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n" + b" " * indent))


class _UserViews:
    """How one user appears inside messages: plain dicts (public API) or pre-serialised fragments (writers).

    Serialising the same author/mention objects again for every message would be most of the JSON writing cost;
    fragments are byte-identical to what orjson would write for the dicts at that position."""

    __slots__ = ("author", "interaction_user", "mention", "user")

    def __init__(self, user: SynthUser, fragments: bool) -> None:
        self.user = user
        data = user.json_with_roles
        if fragments:
            self.author = _fragment(data, _MESSAGE_KEY_INDENT)
            self.mention = _fragment([data], _MESSAGE_KEY_INDENT)
            self.interaction_user = _fragment(data, _MESSAGE_KEY_INDENT + 2)
        else:
            self.author = data
            self.mention = None  # a fresh one-element list per message
            self.interaction_user = data

    def mentions(self) -> list | orjson.Fragment:
        return self.mention if self.mention is not None else [self.user.json_with_roles]


class _ChannelMessages:
    """Generates one channel's messages lazily, in time order, as ``(DCE JSON dict, author)`` pairs.

    Nested user dicts are shared between messages: treat yielded dicts as read-only.
    """

    def __init__(self, cfg: SynthConfig, channel: SynthChannel, users: list[SynthUser], *,
                 export_time_ms: int | None, fragments: bool = False) -> None:
        self.cfg = cfg
        self.channel = channel
        self.rng = _rng(cfg.seed, "content", channel.ordinal)
        self.random = self.rng.random
        self.prompts = _PromptWriter(self.rng)
        self.users = users
        self.views = {user.id: _UserViews(user, fragments) for user in users}
        self.bot = _UserViews(channel.bot, fragments)
        # Zipf-like activity: a few regulars post most of the prompts.
        weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(users))]
        running = 0.0
        self.cum_weights = []
        for weight in weights:
            running += weight
            self.cum_weights.append(running)
        self.bursts: deque[list] = deque()  # [user, segments, last attempt ms]
        self.recent_prompts: deque[str] = deque(maxlen=_RECENT_PROMPTS)
        self.recent_ids: deque[str] = deque(maxlen=64)
        self.increment = 0
        self.text_generations = 0
        # The text-era bot did not name the user in its first messages.
        self.anonymous_generations = max(3, channel.message_count // 30) if channel.era == "text" else 0
        self.export_time_ms = export_time_ms
        self.attachment_prefix = f"{CDN}/attachments/{channel.id}/"
        self.signature_prefixes: dict[int, str] = {}
        self.slugs: dict[str, str] = {}
        self.signed = cfg.cdn_signatures
        self.getrandbits = self.rng.getrandbits
        self.fragments = fragments
        if channel.era == "slash":
            self.slash_option_table = tuple(self._slash_options() for _ in range(_OPTION_TABLE_SIZE))
        else:
            self.text_option_table = tuple(self._text_options() for _ in range(_OPTION_TABLE_SIZE))

    # -- small pieces -----------------------------------------------------------------------------------------------

    def _pick_user(self) -> SynthUser:
        index = bisect.bisect_left(self.cum_weights, self.random() * self.cum_weights[-1])
        return self.users[min(index, len(self.users) - 1)]

    def _signature_prefix(self, day: int) -> str:
        """CDN signature parameters (URLs in DCE >= 2.4x exports): expiry and issue times in hex, then ``hm=``."""
        issued = (self.export_time_ms or _day_export_time_ms(day * 86_400_000)) // 1000
        prefix = self.signature_prefixes[day] = f"?ex={issued + 86_400:08x}&is={issued:08x}&hm="
        return prefix

    def _attachment(self, ms: int, file_name: str, size: int) -> dict:
        self.increment += 1
        attachment_id = str(((ms - DISCORD_EPOCH_MS) << 22) | _SNOWFLAKE_WORKER_BITS | (self.increment & 0xFFF))
        url = f"{self.attachment_prefix}{attachment_id}/{file_name}"
        if self.signed:
            day = ms // 86_400_000
            prefix = self.signature_prefixes.get(day) or self._signature_prefix(day)
            url = f"{url}{prefix}{self.getrandbits(256).to_bytes(32, 'big').hex()}&"  # hm: a 256-bit HMAC
        return {"id": attachment_id, "url": url, "fileName": file_name, "fileSizeBytes": size}

    def _reactions(self) -> list[dict]:
        r = self.random
        reactions = []
        first = int(r() * len(_REACTION_EMOJI))
        for offset in range(1 + (r() < 0.3)):
            reactors = {user.id: user for user in (self._pick_user() for _ in range(1 + int(r() * 4)))}
            reactions.append({"emoji": _emoji_json(_REACTION_EMOJI[(first + offset) % len(_REACTION_EMOJI)]),
                              "count": len(reactors),
                              "users": [user.json_without_roles for user in reactors.values()]})
        return reactions

    def _message(self, ms: int, message_type: str, content: str, author: object, edited_ms: int | None = None,
                 attachments: list | None = None, mentions: object = None, reference: dict | None = None,
                 interaction: dict | None = None, emoji_source: str | None = None) -> dict:
        """A DCE message dict. ``emoji_source`` is the part of the content that can hold emoji (the prompt of a
        generation), scanned instead of the whole content for ``inlineEmojis``."""
        self.increment += 1
        message_id = str(((ms - DISCORD_EPOCH_MS) << 22) | _SNOWFLAKE_WORKER_BITS | (self.increment & 0xFFF))
        message = {
            "id": message_id,
            "type": message_type,
            "timestamp": format_json_timestamp(ms),
            "timestampEdited": None if edited_ms is None else format_json_timestamp(edited_ms),
            "callEndedTimestamp": None,
            "isPinned": False,
            "content": content,
            "author": author,
            "attachments": [] if attachments is None else attachments,
            "embeds": [],
            "stickers": [],
            "reactions": self._reactions() if self.random() < _REACTION_RATE else [],
            "mentions": [] if mentions is None else mentions,
        }
        if reference is not None:
            message["reference"] = reference
        if interaction is not None:
            message["interaction"] = interaction
        if emoji_source is None:
            emoji_source = content
        if emoji_source.isascii():
            message["inlineEmojis"] = []
        else:  # DCE >= 2.44 lists the emoji found in the content, deduplicated
            message["inlineEmojis"] = [_emoji_json(char) for char in dict.fromkeys(_EMOJI_RE.findall(content))]
        self.recent_ids.append(message_id)
        return message

    # -- who asks for what ------------------------------------------------------------------------------------------

    def _choose_prompt(self, ms: int) -> tuple[SynthUser, list[str]]:
        """A retry within an active burst (near-duplicates of the same user), an exact repeat of a recent prompt
        by somebody else, or a fresh prompt (which may open a burst)."""
        r = self.random
        bursts = self.bursts
        while bursts and ms - bursts[0][2] > _BURST_WINDOW_MS:
            bursts.popleft()
        if bursts and r() < self.cfg.near_dup_rate:
            burst = bursts[int(r() * len(bursts))]
            burst[1] = self.prompts.retry(burst[1])
            burst[2] = ms
            return burst[0], burst[1]
        user = self._pick_user()
        if self.recent_prompts and r() < _EXACT_REPEAT_RATE:
            segments = [self.recent_prompts[int(r() * len(self.recent_prompts))]]
        else:
            segments = self.prompts.fresh()
        if r() < 0.5:
            if len(bursts) >= _MAX_ACTIVE_BURSTS:
                bursts.popleft()
            bursts.append([user, segments, ms])
        return user, segments

    def _multi_command(self, prompt: str) -> str:
        """Prompts that make a message hold two commands or two ``for @`` (pasted commands, dedications)."""
        if self.channel.era == "text":
            return f'{prompt}" !dream "{prompt}'
        if self.random() < 0.5:
            return f"/dream prompt:{prompt}"
        return f"{prompt}, a gift for @{self._pick_user().nickname}"

    # -- the stream -------------------------------------------------------------------------------------------------

    def generate(self) -> Iterator[tuple[dict, SynthUser]]:
        r = self.random
        junk_rate = self.cfg.junk_rate
        slash = self.channel.era == "slash"
        bot = self.channel.bot
        for ms in _iter_times(self.cfg, self.channel):
            kind = "generation"
            if r() < junk_rate:
                kind = _JUNK_KINDS[bisect.bisect_left(_JUNK_CUM_WEIGHTS, r())]
                if kind == "chatter":
                    yield self._chatter(ms)
                    continue
                if kind == "error":
                    yield self._error(ms)
                    continue
                if kind == "dreaming" and slash:
                    yield self._dreaming(ms), bot
                    continue
            user, segments = self._choose_prompt(ms)
            if kind == "junk_prompt":
                segments = self.prompts.junk(segments, self.channel.era)
            prompt = ", ".join(segments) if len(segments) > 1 else segments[0]
            if kind == "multi_command":
                prompt = self._multi_command(prompt)
            self.recent_prompts.append(prompt)
            if slash:
                yield self._slash_generation(ms, user, prompt, nsfw=kind == "nsfw"), bot
            else:
                yield self._text_generation(ms, user, prompt, nsfw=kind == "nsfw"), bot

    def __iter__(self) -> Iterator[dict]:
        for message, _ in self.generate():
            yield message

    # -- bot messages -----------------------------------------------------------------------------------------------

    def _file_name(self, prompt: str, seed: int) -> str:
        """``<prompt slug>_<seed>.png`` (ASCII letters and digits joined by ``_``); slugs are cached because
        retries and repeats share prompt heads."""
        head = prompt[:48]
        slug = self.slugs.get(head)
        if slug is None:
            if len(self.slugs) > 50_000:
                self.slugs.clear()
            ascii_head = head if head.isascii() else head.encode("ascii", "ignore").decode("ascii")
            slug = self.slugs[head] = "_".join(ascii_head.lower().translate(_SLUG_TABLE).split()) or "dream"
        return f"{slug}_{seed}.png"

    def _slash_options(self) -> tuple:
        """One combination of the optional slash-command arguments, drawn once per table slot.

        Returns (text before ``seed:``, text after the seed, images requested, warning lines, time factor).
        Drawing whole combinations from a per-channel table costs one random number per message instead of a
        dozen, with the same distribution over a channel."""
        r = self.random
        before_seed = ""
        if r() < 0.15:
            negatives = ", ".join(dict.fromkeys(NEGATIVES[int(r() * len(NEGATIVES))] for _ in range(1 + int(r() * 4))))
            before_seed = f" negative_prompt:{negatives}"
        after_seed = f" cfg_scale:{_CFG_SCALES[int(r() * len(_CFG_SCALES))]}"
        steps = 50
        if r() < 0.2:
            steps = _STEPS[int(r() * len(_STEPS))]
            after_seed += f" steps:{steps}"
        if r() < 0.1:
            after_seed += f" sampler:{SAMPLERS_SLASH[int(r() * len(SAMPLERS_SLASH))]}"
        width = height = 512
        if r() < 0.2:
            width, height = SIZES[int(r() * len(SIZES))] if r() < 0.9 else (700, 500)
            after_seed += f" width:{width} height:{height}"
        count = 1
        if r() < 0.1:
            count = 2 + int(r() * 3)
            after_seed += f" count:{count}"
        warnings = ""
        if steps > 50:
            warnings += "\n**WARNING:** Requested more than 50 `steps`"
        if width % 64 or height % 64:
            warnings += "\n**WARNING:** `width` was not a multiple of 64"
        cost = count * steps / 50.0 * (width * height) / 262_144
        return before_seed, after_seed, count, warnings, cost, width

    def _slash_generation(self, ms: int, user: SynthUser, prompt: str, nsfw: bool) -> dict:
        r = self.random
        options = self.slash_option_table[int(r() * _OPTION_TABLE_SIZE)]
        before_seed, after_seed, count, warnings, cost, width = options
        seed = self.rng.getrandbits(32)
        elapsed = (1.2 + r() * 4.0) * cost
        content = (f"Dreamt in `{elapsed:.2f}s` for @{user.nickname}... "
                   f"`/dream prompt:{prompt}{before_seed} seed:{seed}{after_seed}`{warnings}")
        if len(prompt) > 300:
            content += "\n**WARNING:** Prompt truncated after tokenization"
        images = count
        if nsfw:
            images = int(r() * count)
            content += "\n" + NAUGHTY
        file_name = self._file_name(prompt, seed)
        size = 250_000 + int(r() * 260_000) * width // 512
        if images == 1:
            attachments = [self._attachment(ms, file_name, size)]
        else:
            attachments = [self._attachment(ms, file_name, size + index * 7_919) for index in range(images)]
        views = self.views[user.id]
        interaction = {"id": str(snowflake(ms - 400, self.increment)), "name": "dream",
                       "user": views.interaction_user}
        return self._message(ms, "20", content, self.bot.author, ms + int(elapsed * 1000) + 150, attachments,
                             views.mentions(), None, interaction, prompt)

    def _dreaming(self, ms: int) -> dict:
        """A slash-era generation the bot never finished: ``Dreaming`` and the command, no images."""
        user, segments = self._choose_prompt(ms)
        views = self.views[user.id]
        prompt = ", ".join(segments)
        content = (f"Dreaming for @{user.nickname}... `/dream prompt:{prompt} "
                   f"seed:{self.rng.getrandbits(32)} cfg_scale:7.0`")
        interaction = {"id": str(snowflake(ms - 400, self.increment)), "name": "dream",
                       "user": views.interaction_user}
        return self._message(ms, "20", content, self.bot.author, mentions=views.mentions(),
                             interaction=interaction, emoji_source=prompt)

    def _text_options(self) -> tuple:
        """One combination of ``!dream`` flags, drawn once per table slot (see ``_slash_options``).

        Returns (flags before ``-S``, flags echoed in per-image commands, image count, grid, warning lines,
        time factor, width, print tokens)."""
        r = self.random
        flags: list[str] = []
        repeated: list[str] = []
        width = height = 512
        if r() < 0.3:
            width, height = SIZES[int(r() * len(SIZES))] if r() < 0.9 else (700, 500)
            long_form = r() < 0.2
            if width != 512:
                repeated += ["--width" if long_form else "-W", str(width)]
            if height != 512:
                repeated += ["--height" if long_form else "-H", str(height)]
            flags += repeated
        count = 1
        if r() < 0.45:
            count = _TEXT_COUNTS[int(r() * len(_TEXT_COUNTS))]
            flags += ["-n", str(count)]
        grid = count > 1 and r() < 0.5
        if grid:
            flags.append("-g")
        if r() < 0.1:
            option = ["-C" if r() < 0.7 else "--cfg_scale", _TEXT_CFG[int(r() * len(_TEXT_CFG))]]
            flags += option
            repeated += option
        steps = 50
        if r() < 0.12:
            steps = _TEXT_STEPS[int(r() * len(_TEXT_STEPS))]
            option = ["-s" if r() < 0.7 else "--steps", str(steps)]
            flags += option
            repeated += option
        if r() < 0.08:
            option = ["-A", SAMPLERS_TEXT[int(r() * len(SAMPLERS_TEXT))]]
            flags += option
            repeated += option
        tokens = r() < 0.04
        if tokens:
            flags.append("-t")
        deprecated_i = r() < 0.02
        if deprecated_i:
            flags.append("-i")
        if r() < 0.02:
            flags.append("-p" if r() < 0.5 else "-a")
        warnings = ""
        if count > 4:
            warnings += "\n**WARNING:** Requested more than 4 images"
        if width % 64 or height % 64:
            warnings += "\n**WARNING:** `width` was not a multiple of 64"
        if steps > 50:
            warnings += "\n**WARNING:** Requested more than 50 `steps`"
        if deprecated_i:
            warnings += "\n**WARNING:** `-i` flag is deprecated"
        cost = count * steps / 50.0 * (width * height) / 262_144
        before_seed = "".join(flag + " " for flag in flags)
        echoed = "".join(" " + flag for flag in repeated)
        return before_seed, echoed, count, grid, warnings, cost, width, tokens

    def _text_generation(self, ms: int, user: SynthUser, prompt: str, nsfw: bool) -> dict:
        r = self.random
        self.text_generations += 1
        anonymous = self.text_generations <= self.anonymous_generations
        options = self.text_option_table[int(r() * _OPTION_TABLE_SIZE)]
        before_seed, echoed, count, grid, warnings, cost, width, tokens = options
        getrandbits = self.getrandbits
        seed = getrandbits(32)
        whom = "for " if anonymous else f"for @{user.nickname}'s "
        elapsed = (2.0 + r() * 6.0) * cost
        content = f'Dreamt in `{elapsed:.2f}s` {whom}`!dream "{prompt}" {before_seed}-S {seed}`'
        if count > 1:
            seeds = [seed] + [getrandbits(32) for _ in range(count - 1)]
            if r() < 0.5:
                content += f" The seeds for each individual image are: [{', '.join(map(str, seeds))}]"
            else:
                content += " \nThe commands for each individual image are: \n" + "\n".join(
                    f'`!dream "{prompt}"{echoed} -S {s}`' for s in seeds)
        else:
            seeds = [seed]
        content += warnings
        if len(prompt) > 300:
            content += "\n**WARNING:** Prompt truncated after tokenization"
        if nsfw:
            content += "\n**WARNING:** " + MITIGATION
        if tokens:
            token_list = [word.lower().strip(",.") + "</w>" for word in prompt.split()[:75]]
            content += f"\n\n**TOKENS ({len(token_list)}/77):** `{token_list!r}`"
        size = 250_000 + int(r() * 260_000) * width // 512
        if grid:
            attachments = [self._attachment(ms, f"grid_{seed}.png", size * 3)]
        else:
            file_name = self._file_name(prompt, seed)
            attachments = [self._attachment(ms, file_name, size)]
            for index in range(1, count):
                attachments.append(self._attachment(ms, f"{seeds[index]}.png", size + index * 7_919))
        mentions = None if anonymous else self.views[user.id].mentions()
        edited_ms = None if r() < 0.5 else ms + int(elapsed * 1000) + 90
        return self._message(ms, "Default", content, self.bot.author, edited_ms, attachments, mentions,
                             emoji_source=prompt)

    # -- people and failures ----------------------------------------------------------------------------------------

    def _chatter(self, ms: int) -> tuple[dict, SynthUser]:
        r = self.random
        user = self._pick_user()
        content = CHATTER[int(r() * len(CHATTER))]
        mentions = None
        if r() < 0.1:
            other = self._pick_user()
            content = f"@{other.nickname} {content}"
            mentions = self.views[other.id].mentions()
        attachments = None
        if r() < 0.05:
            attachments = [self._attachment(ms, _CHATTER_FILES[int(r() * len(_CHATTER_FILES))],
                                            40_000 + int(r() * 900_000))]
        author = self.views[user.id].author
        if self.recent_ids and r() < 0.2:
            reference = {"type": "Default", "messageId": self.recent_ids[-1 - int(r() * len(self.recent_ids))],
                         "channelId": self.channel.id, "guildId": GUILD_ID}
            message = self._message(ms, "Reply", content, author, attachments=attachments, mentions=mentions,
                                    reference=reference)
        else:
            edited_ms = ms + 20_000 + int(r() * 60_000) if r() < 0.05 else None
            message = self._message(ms, "Default", content, author, edited_ms=edited_ms, attachments=attachments,
                                    mentions=mentions)
        return message, user

    def _error(self, ms: int) -> tuple[dict, SynthUser]:
        """```` ```ERROR: ```` blocks, posted by the bot or pasted by a user asking for help."""
        r = self.random
        text = ERROR_PASTES[int(r() * len(ERROR_PASTES))]
        if r() < 0.5:
            return self._message(ms, "Default", text, self.bot.author), self.channel.bot
        user = self._pick_user()
        return self._message(ms, "Default", "why does it say this? " + text, self.views[user.id].author), user


# --------------------------------------------------------------------------------------------------------------
# Public generation API
# --------------------------------------------------------------------------------------------------------------


def _export_time_ms(cfg: SynthConfig, channel: SynthChannel) -> int | None:
    """The one-shot export time of a channel, None for date-partitioned (daily) exports."""
    return None if cfg.date_partitioned else _full_export_time_ms(cfg, channel)


def iter_channel_messages(cfg: SynthConfig, channel: SynthChannel, users: list[SynthUser] | None = None
                          ) -> Iterator[dict]:
    """One channel's messages, lazily, in time order (DCE JSON message dicts; treat them as read-only)."""
    users = users if users is not None else make_users(cfg.seed, cfg.users)
    return iter(_ChannelMessages(cfg, channel, users, export_time_ms=_export_time_ms(cfg, channel)))


def iter_messages(cfg: SynthConfig) -> Iterator[dict]:
    """All messages of a config, channel after channel (see ``plan_channels``), each channel in time order.

    Generated lazily: memory stays flat whatever ``cfg.messages`` is. These are exactly the ``messages`` of the
    JSON files ``write_exports`` writes for the same config (partitions concatenated)."""
    users = make_users(cfg.seed, cfg.users)
    return chain.from_iterable(iter_channel_messages(cfg, channel, users) for channel in plan_channels(cfg))


# --------------------------------------------------------------------------------------------------------------
# Writers
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


def csv_date(json_timestamp: str, style: str = "iso") -> str:
    """The CSV ``Date`` value of a message from its DCE JSON timestamp."""
    if style == "iso" and json_timestamp.endswith("+00:00"):
        main, _, fraction = json_timestamp[:-6].partition(".")
        return f"{main}.{fraction:0<7}+00:00"
    return format_csv_date(_parse_json_timestamp_ms(json_timestamp), style)


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
            after_ms = _ms(datetime(after.year, after.month, after.day, tzinfo=UTC))
            before_ms = after_ms + 86_400_000
            exported_ms = _ms(self.cfg.exported_at) if self.cfg.exported_at else _day_export_time_ms(after_ms)
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
        export_time_ms = _export_time_ms(cfg, channel)
        messages = _ChannelMessages(cfg, channel, users, export_time_ms=export_time_ms,
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
    """Write the bundled sample landing folder (see samples/README.md). Byte-identical on every run."""
    import tempfile

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


# --------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m promptmill.synth",
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
            print(f"promptmill.synth: {error}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "BOTS", "SynthChannel", "SynthConfig", "SynthUser", "build_samples", "channel_header", "channel_id", "csv_date",
    "export_file_stem", "format_csv_date", "format_json_timestamp", "iter_channel_messages", "iter_messages",
    "main", "make_users", "plan_channels", "snowflake", "snowflake_ms", "to_dce_json_bytes", "write_exports",
]
