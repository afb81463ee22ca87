"""Instruction tokenizer and vocabulary.

Words are runs of Unicode letters, combining marks and digits. So Latin, Devanagari and
Telugu text split at spaces and punctuation without breaking a word at a vowel sign or
a virama. A zero-width joiner or non-joiner (U+200D, U+200C) after a word character
stays in the word, as in Unicode word segmentation (UAX #29), because Hindi and Telugu
text uses them after a virama to choose a conjunct's written form. Every other non-space
character is a token of its own. Text is case-folded.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import regex

from connectivity.errors import ClipnavError, DataNotFoundError
from envs.io import atomic_write

TOKEN_PATTERN = regex.compile(r"[\p{L}\p{M}\p{N}][\p{L}\p{M}\p{N}\u200c\u200d]*|[^\p{L}\p{M}\p{N}\s]")

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


class VocabularyFormatError(ClipnavError, ValueError):
    """A vocabulary file is malformed."""


def tokenize(text: str) -> list[str]:
    """Split an instruction into case-folded word and punctuation tokens."""
    return TOKEN_PATTERN.findall(text.casefold())


class Vocabulary:
    """Token ids: the special tokens <pad>=0, <unk>=1, <bos>=2, <eos>=3, then the words."""

    def __init__(self, words: Sequence[str]):
        self.tokens: list[str] = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
        self.ids: dict[str, int] = {token: i for i, token in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            raise VocabularyFormatError("vocabulary words must be unique")

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def id_of(self, token: str) -> int:
        return self.ids.get(token, self.unk_id)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one token per line, in id order (UTF-8), atomically."""
        with atomic_write(path, "w") as out:
            out.write("".join(f"{token}\n" for token in self.tokens))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a file written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"vocabulary file {path} not found; build one with build_vocabulary")
        # Split at newlines only: str.splitlines would also split at separators such as
        # U+001C, which can be punctuation tokens of their own.
        # Tokens never hold whitespace, so a trailing carriage return is a line ending.
        tokens = [line.removesuffix("\r") for line in path.read_text(encoding="utf-8").split("\n")]
        if tokens and tokens[-1] == "":
            tokens.pop()
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise VocabularyFormatError(
                f"{path}: expected the first lines to be {', '.join(SPECIAL_TOKENS)}, "
                f"got {', '.join(tokens[: len(SPECIAL_TOKENS)])}"
            )
        return cls(tokens[len(SPECIAL_TOKENS) :])


def build_vocabulary(texts: Iterable[str], min_count: int = 5, max_size: int | None = None) -> Vocabulary:
    """Collect the words seen at least `min_count` times, most frequent first (ties alphabetical)."""
    if max_size is not None and max_size < len(SPECIAL_TOKENS):
        raise ValueError(
            f"max_size must leave room for the {len(SPECIAL_TOKENS)} special tokens, got {max_size}"
        )
    counts = Counter(token for text in texts for token in tokenize(text))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max(0, max_size - len(SPECIAL_TOKENS))]
    return Vocabulary(words)


@dataclass(frozen=True)
class InstructionEncoder:
    """Turns instructions into fixed-length id arrays: <bos> words <eos>, then <pad>.

    Instructions longer than `max_length` - 2 words are cut, keeping <bos> and <eos>.
    """

    vocabulary: Vocabulary
    max_length: int = 80

    def __post_init__(self) -> None:
        if self.max_length < 3:
            raise ValueError(f"max_length must leave room for <bos>, a word and <eos>; got {self.max_length}")

    def encode(self, text: str) -> np.ndarray:
        """Return int64 ids of shape [max_length]."""
        words = tokenize(text)[: self.max_length - 2]
        ids = np.full(self.max_length, Vocabulary.pad_id, dtype=np.int64)
        ids[0] = Vocabulary.bos_id
        ids[1 : len(words) + 1] = [self.vocabulary.id_of(w) for w in words]
        ids[len(words) + 1] = Vocabulary.eos_id
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Return the words of an id sequence, without special tokens, joined by spaces."""
        words = []
        for i in ids:
            if not 0 <= i < len(self.vocabulary):
                raise ValueError(f"token id {i} is outside the vocabulary [0, {len(self.vocabulary)})")
            if i == Vocabulary.eos_id:
                break
            if i not in (Vocabulary.pad_id, Vocabulary.bos_id):
                words.append(self.vocabulary.tokens[i])
        return " ".join(words)
