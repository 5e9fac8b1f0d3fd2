"""What people and bots write: the word lists prompts, chatter and names are drawn from, and ``PromptWriter``,
which builds fresh prompts, a user's retries of a prompt and the junk users typed into the prompt field."""

from __future__ import annotations

import random

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
EMOJI_CHARS = tuple(char for char, _, _ in EMOJI)


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


class PromptWriter:
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
            emoji = pick(EMOJI_CHARS)
            text = pick((f"{text} {emoji}", f"{emoji} {text} {emoji}", f"{text}{emoji}{pick(EMOJI_CHARS)}"))
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
