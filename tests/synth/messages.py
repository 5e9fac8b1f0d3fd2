"""The message stream of a channel: when messages are posted, who asks for which prompt (fresh prompts, retry
bursts, repeats, junk) and the bot's replies in the templates of both eras, as DCE JSON message dicts."""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Iterator
from itertools import chain

import orjson

from tests.synth.config import SynthConfig, seeded_random
from tests.synth.discord import (
    CDN,
    DISCORD_EPOCH_MS,
    GUILD_ID,
    SLASH_ERA_START,
    SNOWFLAKE_WORKER_BITS,
    TEXT_ERA_START,
    TWEMOJI,
    SynthChannel,
    SynthUser,
    format_json_timestamp,
    make_users,
    ms_of,
    plan_channels,
    snowflake,
)
from tests.synth.vocabulary import (
    CHATTER,
    EMOJI,
    EMOJI_CHARS,
    ERROR_PASTES,
    MITIGATION,
    NAUGHTY,
    NEGATIVES,
    SAMPLERS_SLASH,
    SAMPLERS_TEXT,
    SIZES,
    PromptWriter,
)

# --------------------------------------------------------------------------------------------------------------
# Time line
# --------------------------------------------------------------------------------------------------------------


def _channel_start_ms(cfg: SynthConfig, channel: SynthChannel) -> int:
    if cfg.start is not None:
        return ms_of(cfg.start)
    return ms_of(SLASH_ERA_START if channel.era == "slash" else TEXT_ERA_START) + channel.ordinal * 7_919


def _iter_times(cfg: SynthConfig, channel: SynthChannel) -> Iterator[int]:
    """Message times in ms: exponential gaps (capped at 30x the mean), strictly increasing."""
    rng = seeded_random(cfg.seed, "timeline", channel.ordinal)
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
        return ms_of(cfg.exported_at)
    return (_channel_last_ms(cfg, channel) // 1000 + 1050) * 1000 + 483


def day_export_time_ms(day_start_ms: int) -> int:
    """Daily scheduled exports run 7 minutes after midnight UTC of the next day."""
    return day_start_ms + 86_400_000 + 7 * 60_000 + 121


# --------------------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------------------

_EMOJI_BY_CHAR = {char: (code, svg) for char, code, svg in EMOJI}
_EMOJI_RE = re.compile("[" + "".join(EMOJI_CHARS) + "]")  # all single code points: a class is fastest
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


class ChannelMessages:
    """Generates one channel's messages lazily, in time order, as ``(DCE JSON dict, author)`` pairs.

    Nested user dicts are shared between messages: treat yielded dicts as read-only.
    """

    def __init__(self, cfg: SynthConfig, channel: SynthChannel, users: list[SynthUser], *,
                 export_time_ms: int | None, fragments: bool = False) -> None:
        self.cfg = cfg
        self.channel = channel
        self.rng = seeded_random(cfg.seed, "content", channel.ordinal)
        self.random = self.rng.random
        self.prompts = PromptWriter(self.rng)
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
        issued = (self.export_time_ms or day_export_time_ms(day * 86_400_000)) // 1000
        prefix = self.signature_prefixes[day] = f"?ex={issued + 86_400:08x}&is={issued:08x}&hm="
        return prefix

    def _attachment(self, ms: int, file_name: str, size: int) -> dict:
        self.increment += 1
        attachment_id = str(((ms - DISCORD_EPOCH_MS) << 22) | SNOWFLAKE_WORKER_BITS | (self.increment & 0xFFF))
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
        message_id = str(((ms - DISCORD_EPOCH_MS) << 22) | SNOWFLAKE_WORKER_BITS | (self.increment & 0xFFF))
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


def channel_export_time_ms(cfg: SynthConfig, channel: SynthChannel) -> int | None:
    """The one-shot export time of a channel, None for date-partitioned (daily) exports."""
    return None if cfg.date_partitioned else _full_export_time_ms(cfg, channel)


def iter_channel_messages(cfg: SynthConfig, channel: SynthChannel, users: list[SynthUser] | None = None
                          ) -> Iterator[dict]:
    """One channel's messages, lazily, in time order (DCE JSON message dicts; treat them as read-only)."""
    users = users if users is not None else make_users(cfg.seed, cfg.users)
    return iter(ChannelMessages(cfg, channel, users, export_time_ms=channel_export_time_ms(cfg, channel)))


def iter_messages(cfg: SynthConfig) -> Iterator[dict]:
    """All messages of a config, channel after channel (see ``plan_channels``), each channel in time order.

    Generated lazily: memory stays flat whatever ``cfg.messages`` is. These are exactly the ``messages`` of the
    JSON files ``write_exports`` writes for the same config (partitions concatenated)."""
    users = make_users(cfg.seed, cfg.users)
    return chain.from_iterable(iter_channel_messages(cfg, channel, users) for channel in plan_channels(cfg))
