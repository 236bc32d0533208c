"""FTVTokenizer: text -> IPA phonemes (espeak-ng via phonemizer) -> symbol ids, with a blank between symbols.

A transformers tokenizer (vocab.json + tokenizer_config.json, save/load/push like any other), built on
`VitsTokenizer`, with three changes the project needs: the espeak-ng language is configurable, text and phonemes
are validated by `text_frontend` (empty, unspeakable or unknown input is an error that says what to do, never
silently dropped), and precomputed phonemes can be passed with `phonemize=False`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from transformers import PreTrainedTokenizer, VitsTokenizer

from .text_frontend import PAD, TextFrontendError, default_symbols
from .text_frontend import phonemize as phonemize_text

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json"}


class FTVTokenizer(VitsTokenizer):
    """Character-level tokenizer over IPA symbols.

    Args:
        vocab_file: JSON symbol -> id map; None uses `text_frontend.default_symbols()` (pad `_` is id 0).
        language: espeak-ng voice used to phonemize (`en-us`).
        add_blank: intersperse the pad id between symbols (VITS's blank tokens).
        phonemize: phonemize text; False when inputs are already IPA (e.g. phonemes stored by data preparation).
        bos_symbol, eos_symbol: optional symbols put around every sequence, outside the blanks (Piper voices use
            `^` and `$`: `^ _ p1 _ ... pn _ $`).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        language: str = "en-us",
        add_blank: bool = True,
        phonemize: bool = True,
        bos_symbol: str | None = None,
        eos_symbol: str | None = None,
        pad_token: str = PAD,
        unk_token: str = PAD,
        **kwargs: Any,
    ) -> None:
        if vocab_file is not None:
            with open(vocab_file, encoding="utf-8") as handle:
                self.encoder = json.load(handle)
        else:
            self.encoder = {symbol: index for index, symbol in enumerate(default_symbols())}
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.language = language
        self.add_blank = add_blank
        self.normalize = False
        self.phonemize = phonemize
        self.is_uroman = False
        self.bos_symbol = bos_symbol
        self.eos_symbol = eos_symbol
        for symbol in (bos_symbol, eos_symbol, pad_token):
            if symbol is not None and str(symbol) not in self.encoder:
                raise ValueError(f"Symbol {symbol!r} is not in the vocabulary.")
        PreTrainedTokenizer.__init__(
            self,
            pad_token=pad_token,
            unk_token=unk_token,
            language=language,
            add_blank=add_blank,
            phonemize=phonemize,
            bos_symbol=bos_symbol,
            eos_symbol=eos_symbol,
            special_tokens_pattern="none",
            **kwargs,
        )

    def prepare_for_tokenization(
        self, text: str, is_split_into_words: bool = False, phonemize: bool | None = None, **kwargs: Any
    ) -> tuple[str, dict[str, Any]]:
        kwargs.pop("normalize", None)
        phonemize = self.phonemize if phonemize is None else phonemize
        if phonemize:
            phonemes = phonemize_text(text, language=self.language)[0]
        else:
            if not isinstance(text, str) or not text.strip():
                raise TextFrontendError("The phoneme string is empty: give the phonemes of a sentence.")
            phonemes = re.sub(r"\s+", " ", text).strip()
        unknown = sorted({symbol for symbol in phonemes if symbol not in self.encoder})
        if unknown:
            shown = ", ".join(repr(s) for s in unknown)
            raise TextFrontendError(
                f"The phonemes of this text contain symbols this voice does not know: {shown}. Rephrase the text "
                "(spell out symbols, use the voice's language), or extend the vocabulary and retrain."
            )
        return phonemes, kwargs

    def _tokenize(self, text: str) -> list[str]:
        # With blanks the sequence already starts and ends with one, so bos/eos go outside it:
        # `^ _ p1 _ p2 _ ... pn _ $`, the order Piper voices were trained on.
        tokens = super()._tokenize(text)
        if self.bos_symbol is not None:
            tokens = [self.bos_symbol] + tokens
        if self.eos_symbol is not None:
            tokens = tokens + [self.eos_symbol]
        return tokens

    def _convert_token_to_id(self, token: str) -> int:
        if token not in self.encoder:
            raise TextFrontendError(f"Unknown symbol {token!r}: it is not in this voice's vocabulary.")
        return self.encoder[token]

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "vocab.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.encoder, handle, ensure_ascii=False, indent=1)
        return (path,)
