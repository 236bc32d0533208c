"""Text front end: raw text -> IPA phoneme string -> symbol ids.

One front end is shared by data preparation (which stores phoneme strings so training never phonemizes),
the processor (inference) and evaluation, so that ids always mean the same thing. Phonemes come from
phonemizer's espeak-ng backend (en-us, with stress, punctuation kept), as in the original VITS recipes.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

PAD = "_"
PUNCTUATION = ';:,.!?¡¿—…"«»“” '
# Latin letters are kept for voices whose vocabularies contain them; espeak-ng output is IPA.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
IPA = "ɑɐɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃˈˌːˑʼʴʰʱʲʷˠˤ˞↓↑→↗↘'̩ᵻ"


def default_symbols() -> list[str]:
    """The default symbol table: pad first (id 0, also the blank between phonemes), then punctuation and IPA."""
    symbols: list[str] = [PAD]
    for char in PUNCTUATION + LETTERS + IPA:
        if char not in symbols:
            symbols.append(char)
    return symbols


class TextFrontendError(ValueError):
    """Raised for text that cannot be spoken; the message says what to change."""


_SPEAKABLE_CATEGORIES = ("L", "N")  # letters and digits are spoken; punctuation and spaces shape prosody


def clean_text(text: str) -> str:
    """Normalise unicode and whitespace, and reject characters that have no spoken form."""
    if not isinstance(text, str):
        raise TextFrontendError(f"Text must be a string, got {type(text).__name__}.")
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise TextFrontendError("The text is empty: type a sentence to speak.")
    unknown = sorted(
        {
            c
            for c in text
            if unicodedata.category(c)[0] not in ("L", "N", "P", "Z", "S") or unicodedata.category(c) == "So"
        }
    )
    if unknown:
        shown = ", ".join(repr(c) for c in unknown)
        raise TextFrontendError(
            f"The text contains characters that cannot be spoken: {shown}. Remove them and try again."
        )
    if not any(unicodedata.category(c)[0] in _SPEAKABLE_CATEGORIES for c in text):
        raise TextFrontendError("The text has nothing to speak (no letters or digits): type words to speak.")
    return text


# espeak-ng voices whose language is written in Latin letters: given letters of another script, espeak-ng does not
# fail, it names each one ("Chinese letter", or Cyrillic spelt letter by letter), so they are refused instead.
LATIN_SCRIPT_LANGUAGES = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "pl": "Polish", "cs": "Czech", "sv": "Swedish", "da": "Danish", "nb": "Norwegian", "fi": "Finnish",
    "tr": "Turkish", "ro": "Romanian", "hu": "Hungarian", "ca": "Catalan", "id": "Indonesian", "vi": "Vietnamese",
    "sw": "Swahili", "cy": "Welsh", "is": "Icelandic", "lb": "Luxembourgish", "sk": "Slovak", "sl": "Slovenian",
}  # fmt: skip


def foreign_letters(text: str, language: str = "en-us") -> list[str]:
    """Letters of `text` that a Latin-script `language` cannot read (e.g. Chinese or Cyrillic in English), each once,
    in order of appearance; [] for languages of other scripts, whose voices read their own."""
    if language.split("-")[0].lower() not in LATIN_SCRIPT_LANGUAGES:
        return []
    letters = (c for c in text if unicodedata.category(c)[0] == "L")
    return list(dict.fromkeys(c for c in letters if not unicodedata.name(c, "").startswith("LATIN")))


def check_script(text: str, language: str = "en-us") -> None:
    """Refuse letters of another script than the language's, naming them and the language the voice speaks."""
    foreign = foreign_letters(text, language)
    if not foreign:
        return
    scripts = sorted(
        {unicodedata.name(c, "UNKNOWN").split()[0].title().replace("Cjk", "Chinese/Japanese") for c in foreign}
    )
    shown = ", ".join(repr(c) for c in foreign[:10]) + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else "")
    name = LATIN_SCRIPT_LANGUAGES[language.split("-")[0].lower()]
    raise TextFrontendError(
        f"The text contains {'/'.join(scripts)} letters this voice cannot read: {shown}. It speaks {name} "
        f"({language}) written in Latin letters: type the text in {name}, or transliterate it."
    )


@functools.lru_cache(maxsize=8)
def _espeak_backend(language: str):
    from phonemizer.backend import EspeakBackend

    try:
        return EspeakBackend(language, preserve_punctuation=True, with_stress=True, language_switch="remove-flags")
    except RuntimeError as error:  # espeak-ng missing or the voice unknown
        raise TextFrontendError(
            f"espeak-ng could not be started for language {language!r} ({error}). "
            "Install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)."
        ) from error


def phonemize(texts: str | Sequence[str], language: str = "en-us") -> list[str]:
    """Turn texts into IPA phoneme strings (stress marks and punctuation kept, whitespace collapsed).

    Raises `TextFrontendError` for empty text, text with nothing speakable, or letters of another script than the
    language's (`check_script`).
    """
    if isinstance(texts, str):
        texts = [texts]
    cleaned = [clean_text(text) for text in texts]
    for text in cleaned:
        check_script(text, language)
    phonemes = _espeak_backend(language).phonemize(cleaned, strip=True, njobs=1)
    result = [re.sub(r"\s+", " ", p).strip() for p in phonemes]
    for text, p in zip(cleaned, result):
        if not any(ch not in PUNCTUATION for ch in p):
            raise TextFrontendError(f"espeak-ng found nothing to speak in {text!r}: type words to speak.")
    return result
