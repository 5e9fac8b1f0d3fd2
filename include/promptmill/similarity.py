"""How alike two attempts of one user are (rule 13's near-duplicate test): the metrics, by name.

``content_words`` is the quality profile's: rapidfuzz's token-set ratio of the words that carry the picture (0 when
two prompts share none of them), after the words that do not are dropped: English function words and the style and quality keywords that Stable Diffusion
users append to almost every prompt ("trending on artstation", "highly detailed", "octane render", "8k", famous
artists' names). Two attempts that share only those keywords ("ninja goat, digital art, 8k" and "ninja mouse,
digital art, 8k") are different pictures; the original Jaro similarity, on whole strings, merges them. Measured
against human judgement in benchmarks/quality.py (the README's "Which profile" table).

The keyword list is fixed (it ships with the code), not learned from the store: a verdict must not depend on what
else happens to be stored, or the same exports ingested in another order would give other verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rapidfuzz import fuzz
from rapidfuzz.distance import Indel, Jaro

from promptmill.choices import NEAR_DUP_METRICS

FUNCTION_WORDS = frozenset("""
a an the of in on at by with and or to for from as is are it its into onto over under this that these those be
very
""".split())
STYLE_WORDS = frozenset("""
trending artstation cgsociety deviantart pixiv behance featured wallpaper award winning masterpiece
art digital painting concept illustration style render rendering rendered octane unreal engine 3d cg vray
highly detailed detail details intricate elegant sharp focus smooth soft volumetric ambient global illumination
ray tracing raytracing rtx hdr hd uhd 4k 8k 16k resolution high quality ultra hyper hyperrealistic hyperrealism
realistic photorealistic photorealism realism photo photograph photography cinematic lighting light dramatic
epic beautiful stunning gorgeous colorful vibrant vivid colors color matte canvas oil
bokeh lens depth field dof 35mm 50mm 85mm dslr shot full body centered symmetrical
greg rutkowski alphonse mucha artgerm wlop ross tran loish beeple
""".split())
_IGNORED = FUNCTION_WORDS | STYLE_WORDS
_WORD = re.compile(r"[^\W_]+")


# ASCII punctuation and symbols split words (as the regex below does); most prompts are ASCII, and a translate
# and split is several times faster than the regex.
_ASCII_SEPARATORS = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def content_word_set(prompt: str) -> frozenset[str]:
    """The words of a prompt that carry the picture: lower-cased, without function and style words; all of its
    words when none is left ("digital art, 8k")."""
    lowered = prompt.lower()
    words = set(lowered.translate(_ASCII_SEPARATORS).split() if lowered.isascii() else _WORD.findall(lowered))
    return frozenset(words - _IGNORED or words)


def only_style_words(prompt: str) -> bool:
    """True when every word of a prompt is a function or style word, numbers aside ("digital art, trending on
    artstation, 8k"): modifiers with no subject."""
    lowered = prompt.lower()
    words = lowered.translate(_ASCII_SEPARATORS).split() if lowered.isascii() else _WORD.findall(lowered)
    return all(word in _IGNORED or word.isdigit() for word in words)


def content_words(prompt: str) -> str:
    """:func:`content_word_set` as text: the words sorted, separated by a space."""
    return " ".join(sorted(content_word_set(prompt)))


class ContentWordsMetric:
    """The token-set ratio of the content words, in [0, 1]; 0 for two prompts that share none of them (different
    pictures however their letters compare). The walk prepares each attempt once (``prepare``) and compares it only
    with the kept attempts that share a word with it (``compare``)."""

    @staticmethod
    def prepare(prompt: str) -> tuple[frozenset[str], str]:
        words = content_word_set(prompt)
        return words, " ".join(sorted(words))

    @staticmethod
    def compare(a: tuple[frozenset[str], str], b: tuple[frozenset[str], str]) -> float:
        if a[0].isdisjoint(b[0]):
            return 0.0
        return fuzz.token_set_ratio(a[1], b[1], processor=None) / 100.0

    def __call__(self, a: str, b: str) -> float:
        return self.compare(self.prepare(a), self.prepare(b))


content_words_similarity = ContentWordsMetric()


def similarity_function(metric: str) -> Callable[[str, str], float] | None:
    """The near-duplicate similarity of two raw prompts in [0, 1], or None when near-dedupe is off."""
    if metric == "off":
        return None
    if metric == "jaro":
        # Identical values to jellyfish.jaro_distance (which is Jaro *similarity*), as the notebook used.
        return Jaro.similarity
    if metric == "token_set":
        return lambda a, b: fuzz.token_set_ratio(a, b) / 100.0
    if metric == "indel":
        return Indel.normalized_similarity
    if metric == "content_words":
        return content_words_similarity
    raise ValueError(f"unknown near-duplicate metric {metric!r} ({', '.join(NEAR_DUP_METRICS)})")
