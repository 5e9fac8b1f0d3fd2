"""Rules 14-33 one by one, the fast paths against the notebook's own operations, and the profiles."""

from __future__ import annotations

import re
import sys

import demoji
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from promptmill import cleaning
from promptmill.cleaning import CLEANING_STEPS, PROFILES, clean

# Text that exercises the shortcuts: digits next to spaces, odd whitespace, brackets, commas, emoji.
tricky_text = st.lists(
    st.sampled_from(
        list("ab kKdDsS019,.-–()[]{}|:#*") + ["\t", "\n", "\x0b", "\x1c", "\u00a0", "\u2003", "٣", "²", "é", "日"]
        + ["😀", "👍🏽", "❤️", "\ufe0f", "\u200d", "1️⃣", "🇫🇷", "©"]
    ),
    max_size=40,
).map("".join)


def run_step(rule: int, text: str) -> str | None:
    (step,) = [step for step in CLEANING_STEPS if step.rule == rule]
    return step.function(text)


class TestStepList:
    def test_steps_are_rules_14_to_33_in_order(self):
        assert [step.rule for step in CLEANING_STEPS] == list(range(14, 34))

    def test_names_are_unique_and_rejecting_steps_name_their_reason(self):
        assert len({step.name for step in CLEANING_STEPS}) == len(CLEANING_STEPS)
        reasons = {step.rule: step.reject for step in CLEANING_STEPS if step.reject}
        assert reasons == {
            18: "flag_tail",
            21: "no_text",
            22: "no_letters",
            23: "url",
            25: "suspicious_chars",
            29: "non_ascii",
            31: "bot_echo",
            32: "too_short",
            33: "bot_echo",
        }


class TestEachStep:
    @pytest.mark.parametrize(
        ("rule", "text", "expected"),
        [
            (14, "prompt: a cat", ": a cat"),
            (14, "PROMPT a cat", " a cat"),
            (14, "promptly done", "ly done"),  # the notebook's defect, kept
            (14, "a prompt", "a prompt"),
            (15, "a cat negative prompt dog", "a cat "),
            (15, "a cat negative _ prompt dog", "a cat "),
            (15, "a cat negative_prompt dog", "a cat "),
            (15, "a cat Negative prompt dog", "a cat Negative prompt dog"),  # case-sensitive
            (16, "a cat seed", "a cat "),
            (16, "seed of a cat seed", "seed of a cat seed"),  # "seed" twice: kept
            (16, "a cat seeds", "a cat seeds"),
            (17, "a cat cfg _ scale 7", "a cat "),
            (17, "a cat cfg_scale 7", "a cat cfg_scale 7"),
            (18, "a cat --ar 16:9 --v 4 --q 2 --s 750", None),
            (18, "a cat --ar 16:9", "a cat --ar 16:9"),
            (18, "a cat --" + "x" * 20, "a cat --" + "x" * 20),  # exactly 20 characters: kept
            (18, "a cat --" + "x" * 21, None),
            (19, "a cat --ar 16:9", "a cat "),
            (19, "a cat", "a cat"),
            (20, "a cat 😀 and 👍🏽", "a cat  and "),
            (21, "1995 – ...", None),
            (21, "日本 123", None),
            (21, "", None),
            (21, "1995 :", "1995 :"),  # ":" is an ASCII character outside the set
            (22, "1995 :", None),
            (22, "日本", "日本"),  # str.isalpha counts non-ASCII letters
            (23, "see https://x.y", None),
            (23, "a cat", "a cat"),
            (24, "(a) [cat] {x} | y", "a cat x  y"),
            (25, "a cat: b", None),
            (25, "a cat\nb", None),
            (25, "a = b", None),
            (25, "a `cat`", None),
            (25, "a +*_#|cat, é 1", "a +*_#|cat, é 1"),
            (26, "1 9 9 5 s", "1995s"),
            (26, "4 k, 3 d,", "4k, 3d,"),
            (26, "4 k", "4k"),
            (26, "4 kittens", "4 kittens"),
            (26, "4 s x", "4s x"),
            (27, "a , b\t,c", "a, b,c"),
            (28, "a  b\t\nc ", "a b c "),
            (29, "café", None),
            (29, "a – b ٣", "a – b ٣"),  # en dash and Unicode digits are allowed
            (30, ": 'a cat', \"", "a cat"),
            (31, "I dreamt in colour", None),
            (31, "Dreamt in colour", "Dreamt in colour"),  # case-sensitive
            (32, "ab", None),
            (32, "abc", "abc"),
            (33, "dreaming for you", None),
            (33, "a dreaming for", "a dreaming for"),
        ],
    )
    def test_step_alone(self, rule, text, expected):
        assert run_step(rule, text) == expected


class TestFastPathsMatchTheNotebookOperations:
    """The steps skip regexes when they cannot match; the results must stay the notebook's."""

    @given(tricky_text)
    def test_glue_digits(self, text):
        assert cleaning.glue_digits(text) == re.sub(r"(?<=\d)\s(?=\d|[KkdDs][^\w]|[KkdDs]$)", "", text)

    @given(tricky_text)
    def test_glue_commas(self, text):
        assert cleaning.glue_commas(text) == re.sub(r"\s,", ",", text)

    @given(tricky_text)
    def test_collapse_whitespace(self, text):
        assert cleaning.collapse_whitespace(text) == re.sub(r"\s+", " ", text)

    @given(tricky_text)
    def test_delete_brackets(self, text):
        assert cleaning.delete_brackets(text) == re.sub(r"[()\[\]{}|]", "", text)

    @settings(max_examples=300)
    @given(tricky_text)
    def test_remove_emoji_is_demoji(self, text):
        assert cleaning.remove_emoji(text) == demoji.replace(text, "")

    def test_remove_emoji_on_every_demoji_sequence(self):
        codes = list(demoji.findall("".join(demoji._CODE_TO_DESC)))  # noqa: SLF001 - the table under test
        sample = " x ".join(codes)
        assert cleaning.remove_emoji(sample) == demoji.replace(sample, "")

    def test_no_demoji_sequence_is_ascii(self):
        """remove_emoji returns ASCII text unchanged; that is only right if no emoji is ASCII."""
        assert not [code for code in demoji._CODE_TO_DESC if code.isascii()]  # noqa: SLF001

    def test_regex_whitespace_is_str_isspace(self):
        """glue_commas and the whitespace shortcuts rely on \\s meaning str.isspace."""
        every_char = "".join(map(chr, range(sys.maxunicode + 1)))
        assert set(re.findall(r"\s", every_char)) == {c for c in every_char if c.isspace()}

    @given(tricky_text)
    def test_character_tests_match_their_definitions(self, text):
        symbols = " .,\"-'!–/;&?"
        allowed = " .,\"-'!–/;&?+*_#|"
        no_text = all(c in symbols or c.isdigit() or not c.isascii() for c in text)
        assert (cleaning.reject_without_text(text) is None) == no_text
        assert (cleaning.reject_without_letters(text) is None) == (not any(c.isalpha() for c in text))
        suspicious = not all(c in allowed or c.isdigit() or c.isalpha() for c in text)
        assert (cleaning.reject_suspicious_chars(text) is None) == suspicious
        non_ascii = any(not (c in symbols or c.isdigit() or c.isascii()) for c in text)
        assert (cleaning.reject_non_ascii(text) is None) == non_ascii


class TestClean:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("a lighthouse on a cliff , oil painting ", "a lighthouse on a cliff, oil painting"),
            ("prompt: a cat", None),  # ":" left by rule 14 -> rule 25
            ("prompt a cat 😀, 4 k --ar 16:9", "a cat, 4k"),
            ("'a (red) cat'", "a red cat"),
        ],
    )
    def test_examples(self, raw, expected):
        assert clean(raw).text == expected

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("a cat --" + "x" * 30, "flag_tail"),
            ("1995 – ...", "no_text"),
            ("1995 :", "no_letters"),
            ("a cat http://x.y", "url"),
            ("a cat: b", "suspicious_chars"),
            ("a café", "non_ascii"),
            ("cat dreamt in colour", "bot_echo"),
            ("dreaming for @x", "suspicious_chars"),  # "@" goes first
            ("dreaming for you", "bot_echo"),
            ("ab", "too_short"),
            ("", "empty"),
            ("--ar 16:9", "empty"),
        ],
    )
    def test_rejection_reasons(self, raw, reason):
        assert clean(raw).text is None
        assert clean(raw).reject == reason

    def test_a_kept_prompt_has_no_reason(self):
        assert clean("a cat").reject is None

    def test_steps_run_in_order(self):
        # Rule 19 cuts at "--" before rule 23 looks for "http": the URL behind the flag no longer rejects.
        assert clean("a red cat --ar http://x").text == "a red cat"
        # Rule 24 deletes brackets before rule 25 judges the characters.
        assert clean("a {cat}").text == "a cat"

    @given(st.text())
    def test_never_raises_and_result_is_consistent(self, text):
        for profile in PROFILES:
            result = clean(text, profile=profile)
            assert (result.text is None) != (result.reject is None)
            if result.text is not None:
                assert len(result.text) > 2
                assert result.text == result.text.strip(": ='.,\"")

    def test_clean_equals_running_the_steps(self):
        text = "prompt 'a (cat) , 4 k 😀' negative prompt dog"
        for step in CLEANING_STEPS:
            text = step.function(text)
        assert clean("prompt 'a (cat) , 4 k 😀' negative prompt dog").text == text == "a cat, 4k"

    def test_not_a_string_is_empty(self):
        assert clean(None).reject == "empty"  # type: ignore[arg-type]


class TestProfiles:
    def test_unknown_profile_is_an_error(self):
        with pytest.raises(ValueError, match="unknown cleaning profile 'fast'"):
            clean("a cat", profile="fast")

    @given(tricky_text)
    def test_quality_keeps_what_parity_keeps_unless_a_quality_rule_says_otherwise(self, text):
        """The quality profile only adds rules and relaxes three (25, 29, 23): a prompt parity keeps is kept
        unless one of quality's own reasons rejects it."""
        parity, quality = clean(text, profile="parity"), clean(text, profile="quality")
        if parity.reject is None and quality.reject is not None:
            # (too_short: invisible characters removed or typography normalised can shorten a text, e.g. "a-\u2013")
            assert quality.reject in {"single_word", "no_subject", "chat", "foreign_script", "suspicious_chars",
                                      "too_short"}, (parity, quality)


# --- the quality profile's rules (hand-made cases; parity's verdict beside each) ---------------------------------
QUALITY = "quality"

QUALITY_CASES = [
    # (raw prompt, quality: cleaned text or reason, parity's reason)
    ("\u201ctiger running, photorealism, 4k\u201d", "tiger running, photorealism, 4k", "suspicious_chars"),
    ("a man\u2019s face \u2013 a study\u2026 in oil", "a man's face - a study... in oil", "suspicious_chars"),
    ("a cat\u00a0on a\u202fmat,\nwatercolor", "a cat on a mat, watercolor", "suspicious_chars"),
    ("Johnny Depp, in JoJo\\'s Bizarre Adventure", "Johnny Depp, in JoJo's Bizarre Adventure", "suspicious_chars"),
    ("G\u00e9rard Depardieu as Wario, by Zdzis\u0142aw Beksi\u0144ski", "G\u00e9rard Depardieu as Wario, by Zdzis\u0142aw "
     "Beksi\u0144ski", "non_ascii"),
    ("japanese \u5bfa in a \u96ea landscape, watercolor", "japanese \u5bfa in a \u96ea landscape, watercolor", "non_ascii"),
    ("\u3053\u308c\u306f\u30da\u30f3\u3067\u3059 in the style of ghibli", "foreign_script", "non_ascii"),
    ("\u5922\u306b\u307f\u305f\u3053\u3068\u304c\u53f6\u3063\u305f", "foreign_script", "no_text"),
    ("\u043a\u043e\u0442 \u0432 \u0441\u0430\u043f\u043e\u0433\u0430\u0445, oil", "foreign_script", "non_ascii"),
    ("https://i.ibb.co/7GjX/bowser.jpg Bowser roaring into the sky", "Bowser roaring into the sky", "url"),
    ("a beautiful girl https://www.artstation.com/rutkowski", "a beautiful girl", "url"),
    ("https : / / cdn. discordapp. com / attachments / 1 0 0 / img _ 7 2. jpg a plane crashing in a jungle",
     "a plane crashing in a jungle", "url"),
    ("https : / / media. discordapp. net / attachments / 9 9 / a _ b. png? width = 4 7 8 & height = 4 7 8 ", "url", "url"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "url", "url"),
    ("HTTPS://example.com/cat.png a red fox in the snow", "a red fox in the snow", "suspicious_chars"),
    ("a cat \u2013\u2013 by greg rutkowski", "a cat - - by greg rutkowski", None),
    ("height : 18 meters, an aztec mecha :: 2", "height : 18 meters, an aztec mecha :: 2", "suspicious_chars"),
    ("chain : osc => distort => ocean (50%)", "chain : osc => distort => ocean 50%", "suspicious_chars"),
    ("JEJDIIEIF 378382;$$/&,82 iwudjsn HD", "suspicious_chars", "suspicious_chars"),
    ("soup", "single_word", None),
    ("dragon, 8k", "single_word", None),
    ("a bowl of soup", "a bowl of soup", None),
    ("digital art, trending on artstation, 8k", "no_subject", None),
    ("by greg rutkowski, highly detailed", "no_subject", None),
    ("artwork by Raffaello Sanzio", "artwork by Raffaello Sanzio", None),  # a name is a subject
    ("a red fox, digital art, trending on artstation", "a red fox, digital art, trending on artstation", None),
    ("what do you look like?", "chat", None),
    ("testing if this works", "chat", None),
    ("can i nest quotes", "chat", None),
    ("Hello Kitty riding a unicorn over a rainbow", "Hello Kitty riding a unicorn over a rainbow", None),
    ("what if the ocean was upside down, oil painting", "what if the ocean was upside down, oil painting", None),
    ("a red fat statue, no arms, missing a head?", "a red fat statue, no arms, missing a head?", None),
]


@pytest.mark.parametrize(("raw", "quality", "parity_reason"), QUALITY_CASES)
def test_quality_rules_on_hand_made_prompts(raw, quality, parity_reason):
    result = clean(raw, profile=QUALITY)
    if quality in cleaning.PROFILE_REASONS[QUALITY]:
        assert (result.text, result.reject) == (None, quality)
    else:
        assert (result.text, result.reject) == (quality, None)
    assert clean(raw, profile="parity").reject == parity_reason  # parity keeps its defects


def test_every_rejecting_step_has_its_own_reason_name():
    for profile, steps in cleaning.PROFILE_STEPS.items():
        reasons = [step.reject for step in steps if step.reject]
        assert set(reasons) == cleaning.PROFILE_REASONS[profile]
    new = {"foreign_script", "single_word", "no_subject", "chat"}
    assert new <= cleaning.PROFILE_REASONS[QUALITY] and not new & cleaning.PROFILE_REASONS["parity"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_quality_never_raises_and_keeps_only_clean_text(raw):
    result = clean(raw, profile=QUALITY)
    if result.reject is None:
        assert result.text and result.text == result.text.strip() and "\n" not in result.text
        assert len(re.findall(r"[^\W\d_]{2,}", result.text)) >= 2
