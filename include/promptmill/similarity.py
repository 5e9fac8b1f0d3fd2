"""How alike two attempts of one user are (rule 13's near-duplicate test): the metrics, by name.

``content_words`` is the quality profile's: rapidfuzz's token-set ratio of the words that carry the picture, after
the words that do not are dropped: English function words and the style and quality keywords that Stable Diffusion
users append to almost every prompt ("trending on artstation", "highly detailed", "octane render", "8k", famous
artists' names). Two attempts that share only those keywords ("ninja goat, digital art, 8k" and "ninja mouse,
digital art, 8k") are different pictures; the original Jaro similarity, on whole strings, merges them. Measured
against human judgement in benchmarks/quality.py (the README's "Which profile" table).

The keyword list is fixed (it ships with the code), not learned from the store: a verdict must not depend on what
else happens to be stored, or the same exports ingested in another order would give other verdicts.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=65_536)
def content_words(prompt: str) -> str:
    """The words of a prompt that carry the picture: lower-cased, without function and style words, each once,
    sorted (cached: the walk compares each attempt with several others)."""
    return " ".join(sorted({w for w in _WORD.findall(prompt.lower()) if w not in _IGNORED}))


def content_words_similarity(a: str, b: str) -> float:
    """Token-set ratio of the content words in [0, 1]; of the whole prompts when either has none left."""
    words_a, words_b = content_words(a), content_words(b)
    if not words_a or not words_b:
        return fuzz.token_set_ratio(a, b) / 100.0
    return fuzz.token_set_ratio(words_a, words_b, processor=None) / 100.0


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
