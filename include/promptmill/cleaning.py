"""Per-prompt clean-up: rules 14-33 of the original notebook, in order, as named steps.

The input is a raw prompt as produced by :func:`promptmill.bots.extract` (slash era: after rules 6-10;
text era: the quoted prompt). The output is a :class:`~promptmill.records.Cleaned`: the cleaned text, or
the reason of the first rule that rejected the prompt. Rules 11-13 (date parse, exact and near-duplicate
removal on the raw prompt) and 34-35 (exact dedupe on the cleaned prompt, ordering) work across messages
and live in the dedupe/store code, not here.

Profiles
--------
``"parity"`` reproduces the notebook exactly (see docs/cleaning-rules.md, including its defects):
:data:`CLEANING_STEPS`. ``"quality"``, the default, runs :data:`QUALITY_STEPS`: parity's steps where they judge
well, and its own where they did not, measured against human judgement (benchmarks/quality.py); every rule
has its own reason (:data:`PROFILE_REASONS`).

Each step is a function ``text -> text | None``; ``None`` rejects the prompt with the step's reason.
The steps avoid pandas and precompile their regexes: this runs on millions of prompts.
"""

from __future__ import annotations

import importlib.util
import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from promptmill.choices import CLEANING_PROFILES
from promptmill.records import Cleaned
from promptmill.similarity import only_style_words

PROFILES = CLEANING_PROFILES  # written once, in choices.CleaningProfile


class Step(NamedTuple):
    """One rule of the original cleaning.

    ``function`` returns the new text, or None to reject the prompt; ``reject`` is the reason recorded
    then (None for steps that only transform).
    """

    rule: int
    name: str
    function: Callable[[str], str | None]
    reject: str | None = None


# --- character sets of the notebook (note the en dash "–", U+2013) -------------------------------
# Rules 21, 22 and 29 share this set; rule 25 extends it with "+*_#|".
TEXT_SYMBOLS = frozenset(" .,\"-'!–/;&?")
ALLOWED_SYMBOLS = frozenset(" .,\"-'!–/;&?+*_#|")


def _ascii_class(keep: Callable[[str], bool]) -> re.Pattern[str]:
    """A regex matching one ASCII character for which ``keep`` is false (derived, not hand-written)."""
    chars = "".join(re.escape(chr(code)) for code in range(128) if not keep(chr(code)))
    return re.compile(f"[{chars}]")


# Rule 21 keeps a prompt only if it holds an ASCII character that is neither in TEXT_SYMBOLS nor a digit
# (non-ASCII characters never count).
_ASCII_TEXT_CHAR = _ascii_class(lambda c: c in TEXT_SYMBOLS or c.isdigit())
# Rule 25 on ASCII text: a character that is not in ALLOWED_SYMBOLS, not a digit and not a letter.
_ASCII_FORBIDDEN_CHAR = _ascii_class(lambda c: c in ALLOWED_SYMBOLS or c.isdigit() or c.isalpha())
_ASCII_LETTER = re.compile(r"[A-Za-z]")


# --- rules 14-19: junk users typed into the prompt field --------------------------------------------
def drop_prompt_prefix(text: str) -> str:
    """Rule 14: a prompt whose lower-cased text starts with "prompt" loses its first 6 characters."""
    if text.lower().startswith("prompt"):
        return text[6:]
    return text


def cut_negative_prompt(text: str) -> str:
    """Rule 15: keep the part before "negative prompt", then "negative _ prompt", then "negative_prompt"."""
    if "negative" in text:  # cheap exit: all three markers start with it
        text = text.split("negative prompt", 1)[0]
        text = text.split("negative _ prompt", 1)[0]
        text = text.split("negative_prompt", 1)[0]
    return text


def cut_trailing_seed(text: str) -> str:
    """Rule 16: a prompt ending with "seed" and holding "seed" exactly once keeps the part before it."""
    if text.endswith("seed") and text.count("seed") == 1:
        return text[:-4]
    return text


def cut_cfg_scale(text: str) -> str:
    """Rule 17: keep the part before "cfg _ scale"."""
    return text.split("cfg _ scale", 1)[0]


def reject_long_flag_tail(text: str) -> str | None:
    """Rule 18: reject when the text after the first "--" is longer than 20 characters."""
    _, found, after = text.partition("--")
    if found and len(after) > 20:
        return None
    return text


def cut_flags(text: str) -> str:
    """Rule 19: keep the part before the first "--" (flags of other tools, e.g. "--ar 16:9")."""
    return text.split("--", 1)[0]


# --- rule 20: emoji ---------------------------------------------------------------------------------
class _EmojiRemover:
    """``demoji.replace(text, "")`` without its 5000-way regex alternation (slow on every call).

    demoji's pattern lists every emoji sequence longest-first, so at each position the regex removes the
    longest sequence that starts there and then continues after it; the result is finally stripped of
    every variation selector U+FE0E/U+FE0F. This class does the same with a per-first-character lookup:
    identical output (tests compare it with demoji itself) at a fraction of the cost. It reads demoji's
    own bundled table, so a demoji upgrade changes both the same way.
    """

    _VARIATION_SELECTORS = re.compile("[\ufe0e\ufe0f]")

    def __init__(self) -> None:
        # The table file without importing demoji: its import compiles the 5000-way regex, in every process.
        package_dir = importlib.util.find_spec("demoji").submodule_search_locations[0]
        codes = json.loads(Path(package_dir, "codes.json").read_text("utf-8"))
        by_first: dict[str, tuple[list[int], set[str]]] = {}
        for code in codes:
            if not code:
                continue
            lengths, members = by_first.setdefault(code[0], ([], set()))
            members.add(code)
            if len(code) not in lengths:
                lengths.append(len(code))
        self._by_first = {
            first: (tuple(sorted(lengths, reverse=True)), frozenset(members))
            for first, (lengths, members) in by_first.items()
        }
        self._first_chars = frozenset(self._by_first)

    def __call__(self, text: str) -> str:
        if text.isascii():  # no demoji sequence is pure ASCII (checked by the tests)
            return text
        if not self._first_chars.isdisjoint(text):
            pieces = []
            kept_from = 0
            position = 0
            end = len(text)
            while position < end:
                entry = self._by_first.get(text[position])
                if entry is not None:
                    lengths, members = entry
                    for length in lengths:
                        if text[position : position + length] in members:
                            pieces.append(text[kept_from:position])
                            position += length
                            kept_from = position
                            break
                    else:
                        position += 1
                else:
                    position += 1
            pieces.append(text[kept_from:])
            text = "".join(pieces)
        return self._VARIATION_SELECTORS.sub("", text)


remove_emoji = _EmojiRemover()
remove_emoji.__doc__ = "Rule 20: remove emoji exactly as ``demoji.replace(text, '')``."


# --- rules 21-25: reject prompts that are not text --------------------------------------------------
def reject_without_text(text: str) -> str | None:
    """Rule 21: reject when every character is in TEXT_SYMBOLS, a digit or non-ASCII (an empty text too)."""
    return text if _ASCII_TEXT_CHAR.search(text) else None


def reject_without_letters(text: str) -> str | None:
    """Rule 22: reject when no character is alphabetic (str.isalpha, so non-ASCII letters count)."""
    if text.isascii():
        return text if _ASCII_LETTER.search(text) else None
    return text if any(c.isalpha() for c in text) else None


def reject_url(text: str) -> str | None:
    """Rule 23: reject when the text contains "http"."""
    return None if "http" in text else text


_BRACKETS = str.maketrans("", "", "()[]{}|")


def delete_brackets(text: str) -> str:
    """Rule 24: delete the characters ( ) [ ] { } |."""
    # Seven substring tests cost far less than a translate over a text that has none of them (most do not).
    if "(" in text or ")" in text or "[" in text or "]" in text or "{" in text or "}" in text or "|" in text:
        return text.translate(_BRACKETS)
    return text


def reject_suspicious_chars(text: str) -> str | None:
    """Rule 25: reject when a character is not in ALLOWED_SYMBOLS, not a digit and not alphabetic.

    This drops colons, "=", "@", "<", ">", "%", "~", backticks and newlines; non-ASCII letters and digits
    pass (rule 29 deals with them).
    """
    if text.isascii():
        return None if _ASCII_FORBIDDEN_CHAR.search(text) else text
    for c in text:
        if not (c in ALLOWED_SYMBOLS or c.isdigit() or c.isalpha()):
            return None
    return text


# --- rules 26-30: normalise spacing -----------------------------------------------------------------
_SPLIT_NUMBER = re.compile(r"(?<=\d)\s(?=\d|[KkdDs][^\w]|[KkdDs]$)")
_SPACE_BEFORE_COMMA = re.compile(r"\s,")
_WHITESPACE_RUN = re.compile(r"\s+")


def _has_control_whitespace(text: str) -> bool:
    """True if ``text`` holds an ASCII whitespace character other than " " (for str.isspace and \\s alike)."""
    return (
        "\t" in text
        or "\n" in text
        or "\r" in text
        or "\x0b" in text
        or "\x0c" in text
        or "\x1c" in text
        or "\x1d" in text
        or "\x1e" in text
        or "\x1f" in text
    )


def _has_digit_then_space(text: str) -> bool:
    """True if an ASCII digit is directly followed by " " (a chain of substring tests beats a regex scan)."""
    return (
        "0 " in text
        or "1 " in text
        or "2 " in text
        or "3 " in text
        or "4 " in text
        or "5 " in text
        or "6 " in text
        or "7 " in text
        or "8 " in text
        or "9 " in text
    )


def glue_digits(text: str) -> str:
    """Rule 26: "1 9 9 5 s" -> "1995s", "4 k" -> "4k", "3 d" -> "3d" (the notebook's exact regex)."""
    # The regex needs a digit (\d: any Unicode decimal, hence the ASCII-only shortcut) then whitespace.
    if text.isascii() and not _has_digit_then_space(text) and not _has_control_whitespace(text):
        return text
    return _SPLIT_NUMBER.sub("", text)


def glue_commas(text: str) -> str:
    """Rule 27: a whitespace character before a comma is removed."""
    # Most prompts have commas but no space before them: look only at the character before each comma
    # (str.isspace is the definition of the regex class \s).
    index = text.find(",", 1)
    while index != -1:
        if text[index - 1].isspace():
            return _SPACE_BEFORE_COMMA.sub(",", text)
        index = text.find(",", index + 1)
    return text


def collapse_whitespace(text: str) -> str:
    """Rule 28: every run of whitespace becomes one space."""
    if "  " not in text and text.isascii() and not _has_control_whitespace(text):
        return text  # nothing to collapse: skip the (slow) regex
    return _WHITESPACE_RUN.sub(" ", text)


def reject_non_ascii(text: str) -> str | None:
    """Rule 29: reject when a character is non-ASCII, not in TEXT_SYMBOLS and not a digit (e.g. "é")."""
    if text.isascii():
        return text
    for c in text:
        if not (c.isascii() or c in TEXT_SYMBOLS or c.isdigit()):
            return None
    return text


_EDGE_CHARS = ": ='.,\""


def strip_edges(text: str) -> str:
    """Rule 30: strip the characters : = ' . , " and spaces from both ends."""
    return text.strip(_EDGE_CHARS)


# --- rules 31-33: leftovers of the bot's own messages -----------------------------------------------
def reject_bot_echo(text: str) -> str | None:
    """Rule 31: reject when the text contains "dreamt in" (case-sensitive)."""
    return None if "dreamt in" in text else text


def reject_too_short(text: str) -> str | None:
    """Rule 32: reject texts of 2 characters or fewer."""
    return text if len(text) > 2 else None


def reject_dreaming_echo(text: str) -> str | None:
    """Rule 33: reject when the text starts with "dreaming for" (case-sensitive)."""
    return None if text.startswith("dreaming for") else text


# --- the quality profile's own rules -----------------------------------------------------------------
# Measured against human judgement (benchmarks/quality.py): the parity rules reject good prompts for a curly quote,
# an accented name or a colon, and keep a bare word. Each rule below has its own reason.

# Typographic characters and their plain equivalents; other Unicode spaces become " " (see normalise_typography).
_TYPOGRAPHY = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    # dashes as a spaced hyphen: two of them must not become "--", which rule 19 takes for the start of flags
    "\u2010": "-", "\u2011": "-", "\u2012": " - ", "\u2013": " - ", "\u2014": " - ", "\u2015": " - ", "\u2212": "-",
    "\u2026": "...", "\u00d7": "x",
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "", "\u00ad": "",
})
_SPACES = re.compile(r"[^\S ]|[\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def normalise_typography(text: str) -> str:
    """Quality: curly quotes, primes, dashes, the ellipsis and ``\\'`` (an escape the bot left) become plain ASCII;
    invisible characters go; every other space or line break becomes " "."""
    if text.isascii() and "\\'" not in text and "`" not in text and not _has_control_whitespace(text):
        return text
    text = unicodedata.normalize("NFC", text).translate(_TYPOGRAPHY).replace("\\'", "'")
    return _SPACES.sub(" ", text)


# A URL as users pasted it, or as the bot echoed it with spaces around its punctuation ("https : / / cdn. x. com /
# a / b. png"), which then runs to the file extension (and Discord's "?width=...&height=..." after it).
_URL = re.compile(
    r"https?://\S+"
    r"|https?\s*:\s*/\s*/.*?\.\s?(?:png|jpe?g|gif|webp|bmp|mp\s?4)\b(?:\s?\?\s?(?:width|height)[\s\d=&]*(?:height[\s\d=]*)?)?"
    r"|www\.\S+",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]{2,}")


def remove_urls(text: str) -> str | None:
    """Quality: a URL is removed and the prompt kept when a real subject remains (two words or more); rejected
    (``url``) when the URL was the prompt."""
    lowered = text.lower()
    if "http" not in lowered and "www." not in lowered:
        return text
    rest = _URL.sub(" ", text)
    if len(_WORD.findall(rest)) < 2:
        return None
    return rest.strip(" ,")


def reject_foreign_script(text: str) -> str | None:
    """Quality: reject (``foreign_script``) a prompt whose first word is not in the Latin script or whose letters
    are mostly in another one: its subject is in a language the dataset is not about. A few words of another
    script beside an English subject ("japanese 寺 in a 雪 landscape") stay."""
    if text.isascii():
        return text
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return text  # no letters at all: rule 22 decides
    latin = sum(1 for c in letters if _is_latin(c))
    first = next(c for c in text if c.isalpha())
    return text if _is_latin(first) and 2 * latin > len(letters) else None


def _is_latin(letter: str) -> bool:
    return letter.isascii() or unicodedata.name(letter, "").startswith("LATIN ")


# Parity's allowed symbols, and what real prompts use as syntax: weights and separators ("subject :: 2",
# "height : 18 meters", "a => b"), parentheses (removed by rule 24 anyway), percent and degree signs.
QUALITY_SYMBOLS = ALLOWED_SYMBOLS | frozenset(":=<>()%°@")


def reject_odd_chars(text: str) -> str | None:
    """Quality's rule 25: reject (``suspicious_chars``) a character that is no letter (of any script), digit or
    QUALITY_SYMBOLS, such as "$", "{", "~", "^", "\\" or a control character: keyboard mash and code."""
    for c in text:
        if not (c in QUALITY_SYMBOLS or c.isalnum()):
            return None
    return text


def reject_single_word(text: str) -> str | None:
    """Quality: reject (``single_word``) a prompt of fewer than two words ("soup", "dragon"): no picture to
    describe beyond the word itself."""
    return text if len(_WORD.findall(text)) >= 2 else None


def reject_modifiers_only(text: str) -> str | None:
    """Quality: reject (``no_subject``) a prompt made only of style and quality keywords ("digital art, trending on
    artstation, 8k"): modifiers with no subject. The keywords are the near-duplicate metric's
    (``similarity.STYLE_WORDS``), so a name or any other word counts as a subject ("artwork by Raphael" stays)."""
    return None if only_style_words(text) else text


_QUESTION_END = re.compile(r"\?[\s!?.]*$")
_CHAT_OPENER = re.compile(
    r"(?i)^(?:hi|hello(?! kitty)|hey|thanks|thank you|test|testing|pls|plz|please|anyone"
    r"|(?:can|could) (?:someone|anyone|you|i|we)|does anyone|how (?:do|can|did) (?:i|you|we))\b"
)


def reject_chat(text: str) -> str | None:
    """Quality: reject (``chat``) a line of conversation sent to the bot instead of a picture: a question ("what do
    you look like?") or a greeting, test or request ("testing if this works", "can i nest quotes"). Only a prompt
    without a comma: a described picture lists its parts and keywords with commas, a chat line does not."""
    if "," in text:
        return text
    return None if _QUESTION_END.search(text) or _CHAT_OPENER.match(text) else text


CLEANING_STEPS: list[Step] = [
    Step(14, "drop_prompt_prefix", drop_prompt_prefix),
    Step(15, "cut_negative_prompt", cut_negative_prompt),
    Step(16, "cut_trailing_seed", cut_trailing_seed),
    Step(17, "cut_cfg_scale", cut_cfg_scale),
    Step(18, "reject_long_flag_tail", reject_long_flag_tail, "flag_tail"),
    Step(19, "cut_flags", cut_flags),
    Step(20, "remove_emoji", remove_emoji),
    Step(21, "reject_without_text", reject_without_text, "no_text"),
    Step(22, "reject_without_letters", reject_without_letters, "no_letters"),
    Step(23, "reject_url", reject_url, "url"),
    Step(24, "delete_brackets", delete_brackets),
    Step(25, "reject_suspicious_chars", reject_suspicious_chars, "suspicious_chars"),
    Step(26, "glue_digits", glue_digits),
    Step(27, "glue_commas", glue_commas),
    Step(28, "collapse_whitespace", collapse_whitespace),
    Step(29, "reject_non_ascii", reject_non_ascii, "non_ascii"),
    Step(30, "strip_edges", strip_edges),
    Step(31, "reject_bot_echo", reject_bot_echo, "bot_echo"),
    Step(32, "reject_too_short", reject_too_short, "too_short"),
    Step(33, "reject_dreaming_echo", reject_dreaming_echo, "bot_echo"),
]
"""The parity steps, in the notebook's order (rules 14-33)."""

_PARITY_BY_NAME = {step.name: step for step in CLEANING_STEPS}
QUALITY_STEPS: tuple[Step, ...] = (
    Step(0, "normalise_typography", normalise_typography),
    *(_PARITY_BY_NAME[name] for name in ("drop_prompt_prefix", "cut_negative_prompt", "cut_trailing_seed",
                                         "cut_cfg_scale", "reject_long_flag_tail", "cut_flags")),
    Step(23, "remove_urls", remove_urls, "url"),
    _PARITY_BY_NAME["remove_emoji"],
    Step(0, "reject_foreign_script", reject_foreign_script, "foreign_script"),
    *(_PARITY_BY_NAME[name] for name in ("reject_without_text", "reject_without_letters", "delete_brackets")),
    Step(25, "reject_odd_chars", reject_odd_chars, "suspicious_chars"),
    *(_PARITY_BY_NAME[name] for name in ("glue_digits", "glue_commas", "collapse_whitespace", "strip_edges",
                                         "reject_bot_echo", "reject_too_short", "reject_dreaming_echo")),
    Step(0, "reject_single_word", reject_single_word, "single_word"),
    Step(0, "reject_modifiers_only", reject_modifiers_only, "no_subject"),
    Step(0, "reject_chat", reject_chat, "chat"),
)
"""The quality profile: parity's steps without rule 29 (non-ASCII) and with the rules above (rule 0: new)."""

PROFILE_STEPS: dict[str, tuple[Step, ...]] = {
    "parity": tuple(CLEANING_STEPS),
    "quality": QUALITY_STEPS,
}
# The reasons each profile can give (besides "empty").
PROFILE_REASONS: dict[str, frozenset[str]] = {
    profile: frozenset(step.reject for step in steps if step.reject) for profile, steps in PROFILE_STEPS.items()
}
# (function, rule, reject) per profile: what clean() iterates, without attribute look-ups per step.
_RUNNABLE_STEPS = {
    profile: tuple((step.function, step.rule, step.reject) for step in steps)
    for profile, steps in PROFILE_STEPS.items()
}


def check_profile(profile: str) -> None:
    """Raise ValueError naming the valid profiles when ``profile`` is not one of them."""
    if profile not in PROFILES:
        raise ValueError(f"unknown cleaning profile {profile!r}; expected one of {', '.join(PROFILES)}")


def clean(raw_prompt: str, *, profile: str = "parity") -> Cleaned:
    """Apply rules 14-33 to one raw prompt.

    Returns ``Cleaned(text, None)`` for a kept prompt, or ``Cleaned(None, reason)`` naming the first
    rejecting rule (see the ``reject`` of :data:`CLEANING_STEPS`); ``"empty"`` when nothing is left to
    judge (an empty or missing prompt, or one cut down to nothing). Never raises on any string.
    """
    steps = _RUNNABLE_STEPS.get(profile)
    if steps is None:
        check_profile(profile)
    if not isinstance(raw_prompt, str):
        return Cleaned(None, "empty")
    text = raw_prompt
    for function, _rule, reject in steps:
        result = function(text)
        if result is None:
            return Cleaned(None, reject if text else "empty")
        text = result
    return Cleaned(text)
