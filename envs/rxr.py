"""The Room-across-Room (RxR) task: reading the official guide files, language filters and vocabularies.

RxR (Ku et al. 2020, "Room-Across-Room: Multilingual Vision-and-Language Navigation
with Dense Spatiotemporal Grounding", EMNLP) publishes its guide annotations as gzipped
JSON lines, one file per split: `rxr_<split>_guide.jsonl.gz` for train, val_seen,
val_unseen and test_standard. Each line is one instruction with the fields
`instruction_id` (an integer, unique across languages), `path_id`, `scan`, `path`
(viewpoint ids), `heading` (radians), `instruction`, `language` (en-IN, en-US, hi-IN or
te-IN), `annotator_id`, `edit_distance` and `timed_instruction`. Each line becomes one
episode whose instr_id is `str(instruction_id)`. In test_standard the path holds only
the start viewpoint, so its episodes have no reference path.

Unlike R2R paths, RxR paths are not shortest paths: they wander through the house, and
some pass a viewpoint twice. Environments therefore teach RxR agents with the
reference-path teacher (`EnvSettings.teacher`). The pose traces, follower annotations
and text features of the release are not read here.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from connectivity import DataNotFoundError, resolve_data_dir
from connectivity.errors import ClipnavError, close_matches
from envs.episodes import DatasetFormatError, Episode, Split
from envs.tokenizer import Vocabulary, build_vocabulary

RXR_SPLITS = ("train", "val_seen", "val_unseen", "test_standard")
SPLITS_WITHOUT_REFERENCE = frozenset({"test_standard"})
RXR_FOLDER = "RxR"
RXR_MAX_INSTRUCTION_LENGTH = 160
"""Instruction tokens kept for RxR, <bos> and <eos> included; its instructions are about three times longer than R2R's."""

RXR_LANGUAGES = ("en-IN", "en-US", "hi-IN", "te-IN")
LANGUAGE_GROUPS = {"en": ("en-IN", "en-US"), "hi": ("hi-IN",), "te": ("te-IN",)}
"""Short names of the language filter, each standing for the full tags it selects."""

VOCABULARY_SCOPES = ("shared", "per_language")
SHARED_VOCABULARY = "shared"
"""Key of the one vocabulary that scope "shared" builds."""
LANGUAGE_PLACEHOLDER = "{language}"
"""Placeholder in a per-language vocabulary file name, replaced by the language ("en", "hi" or "te")."""

_NUMBER_TYPES = (int, float)


class RxrFormatError(DatasetFormatError):
    """A line of an RxR guide file does not follow the published format."""


class UnknownLanguageError(ClipnavError, ValueError):
    """A language filter names a language that RxR does not have."""


class VocabularyFileError(ClipnavError, ValueError):
    """A vocabulary file name does not fit the vocabularies or the languages selected."""


# --- languages ------------------------------------------------------------------------


def parse_languages(languages: str | Iterable[str] | None) -> frozenset[str] | None:
    """Return the full language tags that a language filter selects, or None for all languages.

    A filter is a comma-separated string or a sequence of names. Each name is a
    language, "en" (en-IN and en-US), "hi" or "te", or a full tag such as "en-IN";
    names are case-insensitive. None, "" and "all" select every language. Raises
    UnknownLanguageError for any other name.
    """
    if languages is None:
        return None
    names = languages.split(",") if isinstance(languages, str) else list(languages)
    names = [name.strip() for name in names if name.strip()]
    if not names or [name.lower() for name in names] == ["all"]:
        return None

    known = dict(LANGUAGE_GROUPS)
    known.update({tag.lower(): (tag,) for tag in RXR_LANGUAGES})
    tags: set[str] = set()
    for name in names:
        selected = known.get(name.lower())
        if selected is None:
            choices = ", ".join([*LANGUAGE_GROUPS, *RXR_LANGUAGES])
            raise UnknownLanguageError(
                f"unknown RxR language {name!r}; expected a comma-separated list of {choices}, or all."
                f"{close_matches(name, [*LANGUAGE_GROUPS, *RXR_LANGUAGES])}"
            )
        tags.update(selected)
    return frozenset(tags)


def base_language(tag: str) -> str:
    """Return the language of a tag without its region: "en" for "en-IN" and "en-US"."""
    return tag.split("-", 1)[0].lower()


# --- guide files ----------------------------------------------------------------------


def rxr_folder(
    data_dir: str | os.PathLike[str] | None = None, rxr_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Return the folder of the guide files: `rxr_dir` if given, else `RxR/` in the data folder."""
    if rxr_dir is not None:
        return Path(rxr_dir).expanduser()
    return resolve_data_dir(data_dir) / RXR_FOLDER


def rxr_guide_path(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    rxr_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Return the path of `rxr_<split>_guide.jsonl.gz`, checking that the file exists."""
    folder = rxr_folder(data_dir, rxr_dir)
    path = folder / f"rxr_{split}_guide.jsonl.gz"
    if not path.is_file():
        raise DataNotFoundError(
            f"RxR guide file {path} not found; known splits: {', '.join(RXR_SPLITS)}."
            f"{close_matches(split, RXR_SPLITS) if split not in RXR_SPLITS else ''} Put the guide files of the RxR release "
            f"(rxr_<split>_guide.jsonl.gz) in {folder}, or point rxr_dir (--rxr-dir) at the folder "
            "that holds them"
        )
    return path


def read_rxr_guide_file(
    path: str | os.PathLike[str],
    name: str | None = None,
    languages: str | Iterable[str] | None = None,
    has_reference: bool | None = None,
) -> Split:
    """Read an RxR guide file (gzipped JSON lines, or plain ones) into a `Split`, one episode per line.

    Every line is checked, also those of languages the filter drops. `name` defaults to
    the split named in the file name. `has_reference` defaults to False for test_standard,
    True otherwise. Raises DataNotFoundError for a missing file, RxrFormatError naming
    the file, line and field of a malformed line or of a repeated instruction_id, and
    UnknownLanguageError for an unknown language in `languages`.
    """
    path = Path(path)
    name = name or _split_name(path)
    if has_reference is None:
        has_reference = name not in SPLITS_WITHOUT_REFERENCE
    selected = parse_languages(languages)

    episodes = []
    line_of: dict[str, int] = {}
    for number, line in _numbered_lines(path):
        episode = _parse_line(path, number, line, has_reference)
        first = line_of.setdefault(episode.instr_id, number)
        if first != number:
            raise RxrFormatError(
                f"{path}, line {number}: instruction_id {episode.instr_id} already appears on line "
                f"{first}; every instruction_id must be unique"
            )
        if selected is None or episode.language in selected:
            episodes.append(episode)
    return Split(name, episodes, source=path)


def load_rxr_split(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    languages: str | Iterable[str] | None = None,
    rxr_dir: str | os.PathLike[str] | None = None,
) -> Split:
    """Read the RxR split `split` (train, val_seen, val_unseen, test_standard), keeping the selected languages."""
    parse_languages(languages)  # an unknown language fails before the file is read
    return read_rxr_guide_file(rxr_guide_path(split, data_dir, rxr_dir), name=split, languages=languages)


def _split_name(path: Path) -> str:
    stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
    return stem.removeprefix("rxr_").removesuffix("_guide")


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, text) of each non-blank line; gunzip files whose name ends in .gz."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as lines:
            for number, raw in enumerate(lines, start=1):
                text = raw.decode("utf-8")
                if text.strip():
                    yield number, text
    except FileNotFoundError:
        raise DataNotFoundError(f"RxR guide file {path} not found") from None
    except UnicodeDecodeError as error:
        raise RxrFormatError(f"{path}, line {number}: not UTF-8 text ({error})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise RxrFormatError(
            f"{path}: not a complete gzip file after line {number} ({type(error).__name__}: {error}); "
            "download it again, or give a plain JSON-lines file a name without .gz"
        ) from None


def _parse_line(path: Path, number: int, line: str, has_reference: bool) -> Episode:
    """Turn one JSON line into an episode, or raise RxrFormatError naming the line and field."""
    where = f"{path}, line {number}"
    try:
        item = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as error:
        raise RxrFormatError(f"{where}: invalid JSON ({error}); each line must be one JSON object") from None
    if not isinstance(item, dict):
        raise RxrFormatError(f"{where}: expected a JSON object, got a JSON {type(item).__name__}")

    instruction_id = item.get("instruction_id")
    if type(instruction_id) is not int:
        raise RxrFormatError(_field_message(where, item, "instruction_id", "an integer"))
    where = f"{where} (instruction_id {instruction_id})"

    path_id = item.get("path_id", None if has_reference else -1)
    checks = {
        "path_id": (type(path_id) is int, "an integer"),
        "scan": (isinstance(item.get("scan"), str) and bool(item.get("scan")), "a non-empty string"),
        "path": (_is_viewpoint_list(item.get("path")), "a non-empty list of viewpoint id strings"),
        "heading": (_is_finite_number(item.get("heading")), "a finite number of radians"),
        "instruction": (
            isinstance(item.get("instruction"), str) and bool(item.get("instruction", "").strip()),
            "a non-empty string",
        ),
        "language": (
            item.get("language") in RXR_LANGUAGES,
            f"one of the RxR tags {', '.join(RXR_LANGUAGES)}",
        ),
        "annotator_id": (type(item.get("annotator_id", 0)) is int, "an integer"),
        "edit_distance": (
            item.get("edit_distance") is None or _is_finite_number(item["edit_distance"]),
            "a finite number",
        ),
        "timed_instruction": (isinstance(item.get("timed_instruction", []), list), "a list of timed words"),
    }
    for field, (valid, expected) in checks.items():
        if not valid:
            value = path_id if field == "path_id" else item.get(field)
            raise RxrFormatError(_field_message(where, item, field, expected, value))

    return Episode(
        instr_id=str(instruction_id),
        scan=item["scan"],
        path_id=path_id,
        path=tuple(item["path"]),
        heading=float(item["heading"]),
        instruction=item["instruction"],
        has_reference=has_reference,
        language=item["language"],
    )


def _field_message(where: str, item: dict, field: str, expected: str, value: object = None) -> str:
    if field not in item and value is None:
        return f"{where}: missing field {field!r}, expected {expected}"
    found = item.get(field) if value is None else value
    text = repr(found)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{where}: field {field!r} is {type(found).__name__} {text}, expected {expected}"


def _is_viewpoint_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool) and math.isfinite(value)


# --- vocabularies ---------------------------------------------------------------------


def build_rxr_vocabularies(
    episodes: Iterable[Episode],
    scope: str = "shared",
    min_count: int = 5,
    max_size: int | None = None,
) -> dict[str, Vocabulary]:
    """Build the vocabularies of RxR instructions, usually those of the training split.

    Scope "shared" builds one vocabulary of every instruction, under the key "shared".
    Scope "per_language" builds one per language ("en", "hi", "te": en-IN and en-US
    share one), each from that language's instructions only, so `min_count` and
    `max_size` apply within the language.
    """
    if scope not in VOCABULARY_SCOPES:
        raise ValueError(f"vocabulary scope must be one of {', '.join(VOCABULARY_SCOPES)}, got {scope!r}")
    texts: dict[str, list[str]] = {}
    for episode in episodes:
        key = SHARED_VOCABULARY if scope == "shared" else base_language(episode.language)
        texts.setdefault(key, []).append(episode.instruction)
    if scope == "shared" and not texts:
        texts[SHARED_VOCABULARY] = []
    return {key: build_vocabulary(texts[key], min_count, max_size) for key in sorted(texts)}


def vocabulary_file(template: str | os.PathLike[str], language: str) -> Path:
    """Return the vocabulary file of `language`: `template` with "{language}" replaced by it."""
    return Path(str(template).replace(LANGUAGE_PLACEHOLDER, language))


def save_rxr_vocabularies(
    vocabularies: Mapping[str, Vocabulary], template: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write each vocabulary to `template` with "{language}" replaced by its key; return the files by key.

    A shared vocabulary may use a plain file name. Several vocabularies need the
    placeholder, so that each gets its own file.
    """
    if len(vocabularies) > 1 and LANGUAGE_PLACEHOLDER not in str(template):
        raise VocabularyFileError(
            f"cannot write {len(vocabularies)} vocabularies to the single file {template}; put "
            f"{LANGUAGE_PLACEHOLDER} in the file name, e.g. vocab.{LANGUAGE_PLACEHOLDER}.txt"
        )
    files = {}
    for key, vocabulary in vocabularies.items():
        files[key] = vocabulary_file(template, key)
        vocabulary.save(files[key])
    return files


def load_rxr_vocabularies(template: str | os.PathLike[str], keys: Iterable[str]) -> dict[str, Vocabulary]:
    """Read the vocabularies that `save_rxr_vocabularies` wrote for `keys`."""
    return {key: Vocabulary.load(vocabulary_file(template, key)) for key in keys}


def vocabulary_language(template: str | os.PathLike[str], languages: frozenset[str] | None) -> str | None:
    """Return the language whose file a per-language vocabulary template names for a world's languages.

    Returns None for a template without "{language}" (a shared vocabulary file). Raises
    VocabularyFileError unless the selected tags share one language, because a model reads one
    vocabulary and per-language vocabularies give overlapping token ids.
    """
    if LANGUAGE_PLACEHOLDER not in str(template):
        return None
    bases = sorted({base_language(tag) for tag in (languages or RXR_LANGUAGES)})
    if len(bases) != 1:
        raise VocabularyFileError(
            f"the vocabulary file {template} is per language, but the languages {', '.join(bases)} are "
            "selected; select one language (languages='hi', say) or use a shared vocabulary file"
        )
    return bases[0]
