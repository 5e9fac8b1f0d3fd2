"""Bot message templates of both dreambot eras -> generation records.

:func:`extract` turns the content of one message into a :class:`~promptmill.records.Generation`.

Slash-command era (``/dream prompt:...``): rules 1-10 of the original notebook, reproduced exactly
(docs/cleaning-rules.md), including the way rule 7 drops the *last character of the message* and
rule 9 (``' [^ ]*:.*'``) may eat across a newline. ``args`` (seed, cfg_scale, negative_prompt, ...,
warnings) are parsed separately as extra information and never influence ``raw_prompt``.

Text-command era (``!dream "..." -flags``): the equivalent rules. The prompt is the quoted text of the
first ``!dream`` code span (the closing quote is the last ``"`` before the flags); flags, per-image seeds
and commands, warnings and the CLIP tokens block go to ``args``. The original had no multiplicity test
for this era: the per-image command lines legitimately repeat the command.

Profiles (see :data:`promptmill.cleaning.PROFILES`):

- ``"parity"``: the notebook's behaviour, defects included.
- ``"quality"`` differs here in exactly one point: rule 3's word test. Parity rejects ("nsfw_word") any
  message whose whole content holds the case-sensitive substring ``sex`` (so "Sussex", "sextant" and a
  username like "sexton" too); quality rejects only a whole word ``sex`` (any case) in the raw prompt.
  Rule 9 is deliberately unchanged: slash-command prompts are single-line, and making the regex stop at
  newlines only turns some truncated prompts into rejections by rule 25 (the real culprit is rule 7 taking
  the last character of a trailing WARNING line instead of the closing backtick).

Rejection reasons: "empty", "not_a_generation", "in_progress", "nsfw", "nsfw_word",
"multiple_commands", "no_user", "multiple_users" (slash era), "malformed_command" (text era), and in every era
"too_long" (a prompt over MAX_PROMPT_CHARS; its message keeps its text).
Rejected records still carry the NSFW flag (set whenever the era's NSFW notice is present), the era when
the message is the bot's (None for "empty"/"not_a_generation") and, for "nsfw"/"nsfw_word", the username,
raw prompt and args, so nothing is lost; only records with ``reject is None`` are usable generations.

Never raises on any string; precompiled regexes and cheap substring tests first, because the pipeline
runs this on millions of messages.
"""

from __future__ import annotations

import ast
import re

from promptmill.cleaning import PROFILES, check_profile
from promptmill.records import Generation

__all__ = ["PROFILES", "extract"]

# --- shared markers -------------------------------------------------------------------------------
NAUGHTY_NOTICE = "There were naughty dreams that had to be popped"
MITIGATION_NOTICE = "mitigation was applied"
_WARNING_LINE = re.compile(r"^\*\*WARNING:\*\*[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_NSFW_WORD_IMPROVED = re.compile(r"\bsex\b", re.IGNORECASE)

# --- slash era --------------------------------------------------------------------------------------
SLASH_COMMAND = "/dream prompt:"
_SLASH_ARGS_CUT = re.compile(" [^ ]*:.*")  # rule 9, verbatim: no flags, "[^ ]" also matches "\n"
_SLASH_INT_ARGS = frozenset({"seed", "steps", "width", "height", "count", "n_images", "num_images", "number"})
_SLASH_FLOAT_ARGS = frozenset({"cfg_scale", "guidance", "guidance_scale", "strength"})

# --- text era ---------------------------------------------------------------------------------------
_TEXT_COMMAND_START = re.compile(r'`!dream "')
# The end of the quoted prompt: the first '"' followed (on the same line, without another quote) by
# nothing or by whitespace-led flags, then the span's closing backtick. A '"' or '`' inside the prompt
# is skipped because what follows it is not a flag list closed by a backtick.
_TEXT_COMMAND_END = re.compile(r'"((?:[ \t][^"`\n]*)?)`')
_TEXT_SEEDS = re.compile(r"The seeds for each individual image are: \[([^\]]*)\]")
_TEXT_COMMANDS_MARKER = "The commands for each individual image are:"
_TEXT_IMAGE_COMMAND = re.compile(r"^`(!dream [^\n]*)`[ \t]*$", re.MULTILINE)
_TEXT_TOKENS = re.compile(r"\*\*TOKENS \((\d+)/(\d+)\):\*\*\s*(`{1,3})(.*?)\3", re.DOTALL)
_TEXT_USER_END = "'s "
_INTEGER = re.compile(r"-?\d+")

# flag -> (args key, converter); converters raise ValueError on a bad value.
_TEXT_VALUE_FLAGS = {
    "-S": ("seed", int),
    "--seed": ("seed", int),
    "-n": ("count", int),
    "-W": ("width", int),
    "--width": ("width", int),
    "-H": ("height", int),
    "--height": ("height", int),
    "-C": ("cfg_scale", float),
    "--cfg_scale": ("cfg_scale", float),
    "-s": ("steps", int),
    "--steps": ("steps", int),
    "-A": ("sampler", str.lower),
    "--sampler": ("sampler", str.lower),
}
# The bot's reply, which holds the prompt, is a Discord message: at most 2,000 characters. A longer prompt did not
# come from the bot (and would cost more to label than a thousand real ones), so no real prompt is ever refused.
MAX_PROMPT_CHARS = 2_000
_TEXT_GRID_FLAGS = frozenset({"-g", "--grid"})
_TEXT_SWITCH_FLAGS = frozenset({"-i", "-t", "-p", "-a"})


def extract(content: str, *, profile: str = "parity") -> Generation:
    """Parse one message's content into a generation record (or a rejected one, with the reason).

    ``profile`` is "parity" (the notebook, exactly) or "quality" (see the module docstring); an unknown
    profile raises ValueError. Any ``content`` string, however malformed, gives a record. A prompt longer than
    MAX_PROMPT_CHARS is rejected as ``too_long`` in every profile.
    """
    generation = _extract(content, profile)
    if generation.raw_prompt is not None and len(generation.raw_prompt) > MAX_PROMPT_CHARS:
        return Generation(era=generation.era, username=generation.username, nsfw=generation.nsfw, reject="too_long")
    return generation


def _extract(content: str, profile: str) -> Generation:
    if profile not in PROFILES:
        check_profile(profile)
    if not isinstance(content, str) or not content:
        return Generation(era=None, reject="empty")  # rule 1
    # Rule 2 tests the first whitespace-separated word; the common case avoids splitting the message.
    if content.startswith("Dreamt") and (len(content) == 6 or content[6].isspace()):
        first_word = "Dreamt"
    else:
        words = content.split(None, 1)
        if not words:
            return Generation(era=None, reject="empty")
        first_word = words[0]
    if SLASH_COMMAND in content:
        era = "slash"
        nsfw = NAUGHTY_NOTICE in content
    elif "!dream" in content:
        era = "text"
        nsfw = MITIGATION_NOTICE in content or NAUGHTY_NOTICE in content
    else:
        era = None
        nsfw = NAUGHTY_NOTICE in content or MITIGATION_NOTICE in content
    if first_word != "Dreamt":  # rule 2
        if first_word.startswith("Dreaming"):  # the bot's own message, never finished
            return Generation(era=era, nsfw=nsfw, reject="in_progress")
        return Generation(era=None, nsfw=nsfw, reject="not_a_generation")  # chatter, errors, system
    if era == "slash":
        return _extract_slash(content, nsfw, profile)
    if era == "text":
        return _extract_text(content, nsfw, profile)
    return Generation(era=None, nsfw=nsfw, reject="not_a_generation")


def _nsfw_word_reject(content: str, raw_prompt: str, profile: str) -> str | None:
    """Rule 3's word test: parity = substring "sex" anywhere in the message; quality = the word in the prompt."""
    if profile == "parity":
        return "nsfw_word" if "sex" in content else None
    return "nsfw_word" if _NSFW_WORD_IMPROVED.search(raw_prompt) else None


# --- slash era --------------------------------------------------------------------------------------
def _extract_slash(content: str, nsfw: bool, profile: str) -> Generation:
    """Rules 3-10 for a message whose first word is ``Dreamt`` and that holds ``/dream prompt:``."""
    if content.count(SLASH_COMMAND) != 1:  # rule 4
        malformed = "multiple_commands"
    else:
        users = content.count("for @")  # rule 5
        malformed = None if users == 1 else ("no_user" if users == 0 else "multiple_users")
    # Rule 3 comes before rules 4-5 in the notebook, so its reason wins when both apply.
    if nsfw:
        reject = "nsfw"
    elif profile == "parity" and "sex" in content:
        reject = "nsfw_word"
    else:
        reject = malformed
    if malformed is not None:
        return Generation(era="slash", nsfw=nsfw, reject=reject)

    # Rule 6: after "for @", up to the first "... " (both as str.split(...)[i] would give).
    username = content.partition("for @")[2].partition("... ")[0]
    # Rule 7: everything after "/dream prompt:" minus its last character (the closing backtick when the
    # command ends the message; the last character of a trailing WARNING line otherwise).
    command = content.partition(SLASH_COMMAND)[2]
    raw_prompt = command[:-1].partition("negative_prompt:")[0]  # rule 8
    if ":" in raw_prompt:
        raw_prompt = _SLASH_ARGS_CUT.sub("", raw_prompt)  # rule 9
    if "\n**WARNING:**" in raw_prompt:
        raw_prompt = raw_prompt.partition("\n**WARNING:**")[0]  # rule 10
    if reject is None and profile != "parity":
        reject = _nsfw_word_reject(content, raw_prompt, profile)
    return Generation(
        era="slash",
        username=username,
        raw_prompt=raw_prompt,
        args=_parse_slash_args(content, command),
        nsfw=nsfw,
        reject=reject,
    )


def _parse_slash_args(content: str, command: str) -> dict:
    """The `` name:value`` arguments of the /dream command, plus ``warnings`` (information only).

    ``command`` is the text after ``/dream prompt:``; the command runs to its closing backtick, before any
    WARNING line. Any `` word:`` token (an ASCII identifier after a space) starts an argument whose value
    runs to the next such token, so a negative prompt keeps its spaces. Known numeric arguments are
    converted; a value that does not convert stays a string.
    """
    args: dict = {}
    if "\n**WARNING:**" in command:
        command = command.partition("\n**WARNING:**")[0]
        args["warnings"] = _warnings(content)
    else:
        args["warnings"] = []
    command = command.rstrip()
    if command.endswith("`"):
        command = command[:-1]
    # Walk the colons (a handful) instead of regex-scanning every word of the prompt.
    name_spans: list[tuple[int, int, str]] = []  # (space before the name, colon, name)
    colon = command.find(":")
    while colon != -1:
        space = command.rfind(" ", 0, colon)
        if space != -1:
            name = command[space + 1 : colon]
            if name.isidentifier() and name.isascii():
                name_spans.append((space, colon, name))
        colon = command.find(":", colon + 1)
    for index, (_, colon, name) in enumerate(name_spans):
        end = name_spans[index + 1][0] if index + 1 < len(name_spans) else len(command)
        value = command[colon + 1 : end].strip()
        try:
            if name in _SLASH_INT_ARGS:
                args[name] = int(value)
                continue
            if name in _SLASH_FLOAT_ARGS:
                args[name] = float(value)
                continue
        except ValueError:
            pass
        args[name] = value
    return args


def _warnings(content: str) -> list[str]:
    if "**WARNING:**" not in content:
        return []
    return [match.group(1) for match in _WARNING_LINE.finditer(content)]


# --- text era ---------------------------------------------------------------------------------------
def _extract_text(content: str, nsfw: bool, profile: str) -> Generation:
    """The text-era equivalent of rules 3-10 for a ``Dreamt`` message holding ``!dream``."""
    start = _TEXT_COMMAND_START.search(content)
    end = _TEXT_COMMAND_END.search(content, start.end()) if start is not None else None
    if end is None:
        reject = "nsfw" if nsfw else "malformed_command"
        return Generation(era="text", nsfw=nsfw, reject=reject)
    raw_prompt = content[start.end() : end.start()]
    username = _text_username(content[: start.start()])
    args = _parse_text_flags(end.group(1))
    _parse_text_suffixes(content[end.end() :], args)
    if nsfw:
        reject = "nsfw"
    else:
        reject = _nsfw_word_reject(content, raw_prompt, profile)
    return Generation(era="text", username=username, raw_prompt=raw_prompt, args=args, nsfw=nsfw, reject=reject)


def _text_username(header: str) -> str | None:
    """The user between ``for @`` and ``'s `` in the text before the command; None when absent."""
    _, found, after = header.partition("for @")
    if not found:
        return None
    # The header ends with "'s " right before the command's backtick: take the last one, so a username
    # that itself contains "'s " stays whole.
    end = after.rfind(_TEXT_USER_END)
    username = after[:end] if end >= 0 else after.strip()
    return username or None


def _parse_text_flags(flags: str) -> dict:
    """``-W 768 -n 4 -g -S 123`` -> typed args; unknown or unconvertible flags go to ``args["flags"]``."""
    args: dict = {"grid": False}
    other: list[str] = []
    tokens = flags.split()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        known = _TEXT_VALUE_FLAGS.get(token)
        if known is not None:
            if index < len(tokens) and not _looks_like_flag(tokens[index]):
                value = tokens[index]
                index += 1
                key, convert = known
                try:
                    args[key] = convert(value)
                except ValueError:
                    other.append(f"{token} {value}")
            else:
                other.append(token)
        elif token in _TEXT_GRID_FLAGS:
            args["grid"] = True
        elif token in _TEXT_SWITCH_FLAGS:
            other.append(token)
        elif token.startswith("-") and index < len(tokens) and not _looks_like_flag(tokens[index]):
            other.append(f"{token} {tokens[index]}")  # an unknown flag with its value
            index += 1
        else:
            other.append(token)
    args["flags"] = other
    return args


def _looks_like_flag(token: str) -> bool:
    return token.startswith("-") and not _INTEGER.fullmatch(token)


def _parse_text_suffixes(tail: str, args: dict) -> None:
    """Per-image seeds and commands, warnings and the CLIP tokens block after the command span."""
    seeds: list[int] = []
    seeds_match = _TEXT_SEEDS.search(tail)
    if seeds_match is not None:
        seeds = [seed for text in _INTEGER.findall(seeds_match.group(1)) if (seed := _to_int(text)) is not None]
    commands: list[str] = []
    if _TEXT_COMMANDS_MARKER in tail:
        listed = tail.split(_TEXT_COMMANDS_MARKER, 1)[1]
        commands = [match.group(1) for match in _TEXT_IMAGE_COMMAND.finditer(listed)]
        if not seeds:
            seeds = [seed for command in commands if (seed := _last_seed(command)) is not None]
    args["seeds"] = seeds
    args["image_commands"] = commands
    args["warnings"] = _warnings(tail)
    tokens_match = _TEXT_TOKENS.search(tail) if "**TOKENS" in tail else None
    if tokens_match is not None:
        args["token_count"] = _to_int(tokens_match.group(1))
        args["tokens"] = _parse_token_list(tokens_match.group(4))


def _last_seed(command: str) -> int | None:
    """The value of the last -S/--seed flag of a per-image command (the bot appends it last)."""
    tokens = command.rsplit(None, 2)
    if len(tokens) == 3 and tokens[1] in ("-S", "--seed"):
        return _to_int(tokens[2])
    return None


def _to_int(text: str) -> int | None:
    """int(text), or None for what is not an integer (int() also refuses more than 4300 digits)."""
    try:
        return int(text)
    except ValueError:
        return None


def _parse_token_list(text: str) -> list[str] | str:
    """The tokens block is a Python-style list of strings; anything else is kept as the raw text."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if isinstance(value, list | tuple) and all(isinstance(token, str) for token in value):
        return list(value)
    return text
