"""Tests of the instruction tokenizer, the vocabulary and the instruction encoder."""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectivity import DataNotFoundError
from envs.tokenizer import (
    InstructionEncoder,
    Vocabulary,
    VocabularyFormatError,
    build_vocabulary,
    tokenize,
)

# --- tokenize -------------------------------------------------------------------------


def test_tokenize_english() -> None:
    assert tokenize("Walk past the table, then turn LEFT.") == [
        "walk",
        "past",
        "the",
        "table",
        ",",
        "then",
        "turn",
        "left",
        ".",
    ]


def test_tokenize_casefold() -> None:
    # Case folding, unlike lower(), maps the German sharp s to "ss".
    assert tokenize("Straße STRASSE") == ["strasse", "strasse"]


def test_tokenize_digits_in_word() -> None:
    assert tokenize("the 2nd door") == ["the", "2nd", "door"]


def test_tokenize_punctuation_run() -> None:
    assert tokenize("stop...") == ["stop", ".", ".", "."]


def test_tokenize_apostrophe() -> None:
    assert tokenize("don't") == ["don", "'", "t"]


def test_tokenize_whitespace_kinds() -> None:
    assert tokenize(" go\tleft\nnow ") == ["go", "left", "now"]


def test_tokenize_empty() -> None:
    assert tokenize("") == []


def test_tokenize_devanagari() -> None:
    # "Turn right and climb the stairs": vowel signs (category Mc/Mn) stay in the word.
    text = "दाएँ मुड़ें और सीढ़ियाँ चढ़ें"
    assert tokenize(text) == text.split()


def test_tokenize_devanagari_danda() -> None:
    assert tokenize("रुकें।") == ["रुकें", "।"]


def test_tokenize_telugu() -> None:
    text = "కుడివైపు తిరగండి"
    assert tokenize(text) == text.split()


def test_tokenize_decomposed_accent() -> None:
    # "e" followed by a combining acute accent is one word.
    assert tokenize("cafe\u0301 door") == ["cafe\u0301", "door"]


TEXT_CHARACTERS = st.characters(categories=("L", "M", "N", "P", "S"))
TEXT = st.text(st.one_of(TEXT_CHARACTERS, st.sampled_from(" \t\n")), max_size=40)


def is_word_character(character: str) -> bool:
    return unicodedata.category(character)[0] in "LMN"


@given(TEXT)
def test_tokenize_keeps_non_space(text: str) -> None:
    folded = text.casefold()
    assert "".join(tokenize(text)) == "".join(c for c in folded if not c.isspace())


@given(TEXT)
def test_tokenize_token_kinds(text: str) -> None:
    for token in tokenize(text):
        if len(token) > 1:
            assert all(is_word_character(c) for c in token), token
        else:
            assert not token.isspace(), token


@given(TEXT)
def test_tokenize_idempotent_on_words(text: str) -> None:
    # Joining the tokens by spaces and splitting again gives the same tokens.
    tokens = tokenize(text)
    assert tokenize(" ".join(tokens)) == tokens


# --- Vocabulary -----------------------------------------------------------------------


def test_vocabulary_special_ids() -> None:
    vocabulary = Vocabulary(["left"])
    assert [vocabulary.id_of(t) for t in ("<pad>", "<unk>", "<bos>", "<eos>")] == [0, 1, 2, 3]


def test_vocabulary_class_ids() -> None:
    ids = (Vocabulary.pad_id, Vocabulary.unk_id, Vocabulary.bos_id, Vocabulary.eos_id)
    assert ids == (0, 1, 2, 3)


def test_vocabulary_word_ids_follow() -> None:
    vocabulary = Vocabulary(["left", "right"])
    assert (vocabulary.id_of("left"), vocabulary.id_of("right")) == (4, 5)


def test_vocabulary_len() -> None:
    assert len(Vocabulary(["left", "right"])) == 6


def test_vocabulary_unknown_word() -> None:
    assert Vocabulary(["left"]).id_of("sofa") == 1


def test_vocabulary_contains() -> None:
    vocabulary = Vocabulary(["left"])
    assert "left" in vocabulary
    assert "sofa" not in vocabulary


def test_vocabulary_skips_special_words() -> None:
    assert Vocabulary(["<pad>", "left"]).tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "left"]


def test_vocabulary_duplicate_words() -> None:
    with pytest.raises(VocabularyFormatError, match="unique"):
        Vocabulary(["left", "left"])


def test_vocabulary_equality() -> None:
    assert Vocabulary(["a", "b"]) == Vocabulary(["a", "b"])
    assert Vocabulary(["a", "b"]) != Vocabulary(["b", "a"])


def test_vocabulary_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    Vocabulary(["left", "दाएँ"]).save(path)
    assert path.read_text(encoding="utf-8") == "<pad>\n<unk>\n<bos>\n<eos>\nleft\nदाएँ\n"


def test_vocabulary_round_trip(tmp_path: Path) -> None:
    vocabulary = Vocabulary(["left", "right", "కుడివైపు", ","])
    vocabulary.save(tmp_path / "vocab.txt")
    assert Vocabulary.load(tmp_path / "vocab.txt") == vocabulary


def test_vocabulary_load_missing(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent.txt"):
        Vocabulary.load(tmp_path / "absent.txt")


def test_vocabulary_load_malformed(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("left\nright\n")
    with pytest.raises(VocabularyFormatError) as raised:
        Vocabulary.load(path)
    assert str(path) in str(raised.value)


def test_vocabulary_load_wrong_special_order(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("<unk>\n<pad>\n<bos>\n<eos>\nleft\n")
    with pytest.raises(VocabularyFormatError):
        Vocabulary.load(path)


def test_vocabulary_load_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("<pad>\n<unk>\n<bos>\n<eos>\nleft\nleft\n")
    with pytest.raises(VocabularyFormatError):
        Vocabulary.load(path)


WORDS = st.lists(st.text(TEXT_CHARACTERS, min_size=1, max_size=8), unique=True, max_size=20)


@given(WORDS)
def test_vocabulary_round_trip_any_words(words: list[str]) -> None:
    vocabulary = Vocabulary(words)
    with tempfile.TemporaryDirectory() as folder:
        vocabulary.save(Path(folder) / "vocab.txt")
        assert Vocabulary.load(Path(folder) / "vocab.txt") == vocabulary


def test_vocabulary_round_trip_separator(tmp_path: Path) -> None:
    # U+001C is a punctuation token, and str.splitlines would also split at it.
    vocabulary = build_vocabulary(["left \x1c right"], min_count=1)
    vocabulary.save(tmp_path / "vocab.txt")
    assert Vocabulary.load(tmp_path / "vocab.txt") == vocabulary


@given(st.lists(st.text(max_size=30), max_size=5))
def test_build_save_load_any_text(texts: list[str]) -> None:
    vocabulary = build_vocabulary(texts, min_count=1)
    with tempfile.TemporaryDirectory() as folder:
        vocabulary.save(Path(folder) / "vocab.txt")
        assert Vocabulary.load(Path(folder) / "vocab.txt") == vocabulary


# --- build_vocabulary -----------------------------------------------------------------


def test_build_min_count() -> None:
    # the: 3, go: 2, left: 1.
    vocabulary = build_vocabulary(["the the go", "go the left"], min_count=2)
    assert vocabulary.tokens[4:] == ["the", "go"]


def test_build_ties_alphabetical() -> None:
    vocabulary = build_vocabulary(["stairs door hall", "hall door stairs"], min_count=1)
    assert vocabulary.tokens[4:] == ["door", "hall", "stairs"]


def test_build_counts_case_folded() -> None:
    # "Left" and "left" are one word seen twice.
    vocabulary = build_vocabulary(["Left", "left"], min_count=2)
    assert vocabulary.tokens[4:] == ["left"]


def test_build_counts_punctuation() -> None:
    vocabulary = build_vocabulary(["go.", "stop."], min_count=2)
    assert vocabulary.tokens[4:] == ["."]


def test_build_max_size_counts_specials() -> None:
    vocabulary = build_vocabulary(["a a a b b c"], min_count=1, max_size=6)
    assert vocabulary.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b"]


def test_build_default_min_count() -> None:
    # The default keeps words seen at least five times.
    vocabulary = build_vocabulary(["hall " * 5 + "door " * 4])
    assert vocabulary.tokens[4:] == ["hall"]


# --- InstructionEncoder ---------------------------------------------------------------


@pytest.fixture
def encoder() -> InstructionEncoder:
    # Ids: turn 4, left 5, at 6, the 7, stairs 8.
    return InstructionEncoder(Vocabulary(["turn", "left", "at", "the", "stairs"]), max_length=8)


def test_encode_layout(encoder: InstructionEncoder) -> None:
    assert encoder.encode("Turn left.").tolist() == [2, 4, 5, 1, 3, 0, 0, 0]


def test_encode_dtype(encoder: InstructionEncoder) -> None:
    assert encoder.encode("turn").dtype == np.int64


def test_encode_shape(encoder: InstructionEncoder) -> None:
    assert encoder.encode("turn").shape == (8,)


def test_encode_unknown_word(encoder: InstructionEncoder) -> None:
    assert encoder.encode("sofa").tolist()[:3] == [2, 1, 3]


def test_encode_empty(encoder: InstructionEncoder) -> None:
    assert encoder.encode("").tolist() == [2, 3, 0, 0, 0, 0, 0, 0]


def test_encode_exact_fit(encoder: InstructionEncoder) -> None:
    # Six words fill max_length 8 with <bos> and <eos>.
    assert encoder.encode("turn left at the stairs turn").tolist() == [2, 4, 5, 6, 7, 8, 4, 3]


def test_encode_truncates(encoder: InstructionEncoder) -> None:
    # Eight words: the first six are kept, <eos> still closes the sequence.
    ids = encoder.encode("turn left at the stairs turn left left").tolist()
    assert ids == [2, 4, 5, 6, 7, 8, 4, 3]


def test_encoder_min_length() -> None:
    with pytest.raises(ValueError, match="max_length"):
        InstructionEncoder(Vocabulary([]), max_length=2)


def test_encoder_shortest_length() -> None:
    encoder = InstructionEncoder(Vocabulary(["go"]), max_length=3)
    assert encoder.encode("go go").tolist() == [2, 4, 3]


def test_encoder_default_length() -> None:
    assert InstructionEncoder(Vocabulary([])).encode("").shape == (80,)


def test_decode_words(encoder: InstructionEncoder) -> None:
    assert encoder.decode([2, 4, 5, 3, 0, 0]) == "turn left"


def test_decode_stops_at_eos(encoder: InstructionEncoder) -> None:
    assert encoder.decode([2, 4, 3, 5, 6]) == "turn"


def test_decode_keeps_unknown(encoder: InstructionEncoder) -> None:
    assert encoder.decode([2, 1, 4, 3]) == "<unk> turn"


def test_decode_without_eos(encoder: InstructionEncoder) -> None:
    assert encoder.decode([4, 0, 5]) == "turn left"


@given(st.lists(st.sampled_from(["turn", "left", "at", "the", "stairs"]), max_size=6))
def test_encode_decode_round_trip(words: list[str]) -> None:
    encoder = InstructionEncoder(Vocabulary(["turn", "left", "at", "the", "stairs"]), max_length=8)
    assert encoder.decode(encoder.encode(" ".join(words))) == " ".join(words)


def test_decode_negative_id(encoder: InstructionEncoder) -> None:
    with pytest.raises(ValueError, match="-1"):
        encoder.decode([2, -1, 3])


def test_decode_id_too_large(encoder: InstructionEncoder) -> None:
    with pytest.raises(ValueError, match="9"):
        encoder.decode([2, 9, 3])
