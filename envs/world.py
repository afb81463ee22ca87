"""Everything the navigation environments share: graphs, simulator tables, features, episodes.

One `NavigationWorld` serves any number of environments, so a vectorized environment or
many single environments read the graphs, the feature file and the splits once.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connectivity import Connectivity, connectivity_dir, resolve_data_dir
from envs.episodes import Episode, Split
from envs.features import NO_FEATURES, FeatureStore, MissingViewpointError, open_feature_store
from envs.navigable import CameraSettings
from envs.r2r import load_r2r_split
from envs.rxr import (
    RXR_MAX_INSTRUCTION_LENGTH,
    load_rxr_split,
    parse_languages,
    vocabulary_file,
    vocabulary_language,
)
from envs.simulator import SceneTables
from envs.tokenizer import InstructionEncoder, Vocabulary, build_vocabulary

logger = logging.getLogger(__name__)

MAX_CACHED_INSTRUCTIONS = 200_000  # encoded instructions kept, about 128 MB at 80 tokens

DATASETS = ("r2r", "rxr")
TEACHERS = ("shortest", "reference")
REWARDS = ("distance", "ndtw")
R2R_MAX_INSTRUCTION_LENGTH = 80


@dataclass(frozen=True)
class EnvSettings:
    """Settings of the R2R and RxR navigation environments; defaults follow EnvDrop and CLIP-ViL.

    Fields left None take the dataset's default when the settings are made, so
    `max_instruction_length` and `teacher` always hold a value afterwards.
    """

    data_dir: str | None = None
    """Folder holding connectivity/ and R2R/ (default: $CLIPNAV_DATA_DIR, else ../shared/data)."""
    split: str = "train"
    """Split whose episodes reset() draws when no instr_id is given."""
    features: str = "none"
    """View-feature file, or "none" for zeros (angle features only)."""
    feature_dim: int = 512
    """Feature dimension of the "none" store; files carry their own."""
    missing_features: str = "raise"
    """Behaviour for a viewpoint without features: "raise" an error, or read "zeros"."""
    vocabulary: str | None = None
    """Vocabulary file; None builds one from the training split. For RxR, "{language}" in the name is replaced by the selected language (en, hi or te)."""
    min_word_count: int = 5
    """Words seen fewer times in the training split map to <unk> when the vocabulary is built."""
    max_instruction_length: int | None = None
    """Instruction tokens kept, <bos> and <eos> included; None means 80 for R2R, 160 for RxR."""
    max_candidates: int = 16
    """Candidate slots in observations; the real graphs have at most 13 candidates."""
    angle_feature_size: int = 128
    """Length of an angle feature: (sin, cos) of heading and elevation repeated size / 4 times."""
    success_distance: float = 3.0
    """Metres from the goal within which stopping counts as success."""
    success_reward: float = 2.0
    """Reward for stopping within success_distance; its negative for stopping elsewhere."""
    reward: str = "distance"
    """Reward of a move: "distance" (metres gained towards the goal) or "ndtw" (nDTW gained between the path so far and the reference path)."""
    dataset: str = "r2r"
    """Task whose splits the world reads: "r2r" (R2R/R2R_<split>.json) or "rxr" (RxR guide files)."""
    languages: str | None = None
    """RxR only: comma-separated languages to keep, "en", "hi", "te" or full tags such as "en-IN"; None keeps all."""
    rxr_dir: str | None = None
    """RxR only: folder of the rxr_<split>_guide.jsonl.gz files (default: RxR/ in the data folder)."""
    teacher: str | None = None
    """Teacher of teacher_actions: "shortest" (shortest path to the goal) or "reference" (retrace the reference path); None means shortest for R2R, reference for RxR."""

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(
                f"invalid environment setting dataset={self.dataset!r}; expected one of {DATASETS}"
            )
        if self.dataset != "rxr" and (self.languages is not None or self.rxr_dir is not None):
            raise ValueError(
                f"the settings languages and rxr_dir are for RxR, but dataset={self.dataset!r}; "
                "set dataset='rxr' or leave them None"
            )
        parse_languages(self.languages)  # raises UnknownLanguageError for an unknown language
        if self.reward not in REWARDS:
            raise ValueError(f"invalid environment setting reward={self.reward!r}; expected one of {REWARDS}")
        if self.teacher is not None and self.teacher not in TEACHERS:
            raise ValueError(
                f"invalid environment setting teacher={self.teacher!r}; expected one of {TEACHERS}"
            )

        # A frozen dataclass fills its dataset defaults through object.__setattr__.
        rxr = self.dataset == "rxr"
        if self.max_instruction_length is None:
            length = RXR_MAX_INSTRUCTION_LENGTH if rxr else R2R_MAX_INSTRUCTION_LENGTH
            object.__setattr__(self, "max_instruction_length", length)
        if self.teacher is None:
            object.__setattr__(self, "teacher", "reference" if rxr else "shortest")

        checks = {
            "feature_dim": self.feature_dim >= 1,
            "max_instruction_length": self.max_instruction_length >= 3,
            "max_candidates": self.max_candidates >= 1,
            "angle_feature_size": self.angle_feature_size >= 4 and self.angle_feature_size % 4 == 0,
            "success_distance": math.isfinite(self.success_distance) and self.success_distance > 0,
            "success_reward": math.isfinite(self.success_reward),
        }
        for name, valid in checks.items():
            if not valid:
                raise ValueError(f"invalid environment setting {name}={getattr(self, name)!r}")


def load_split(settings: EnvSettings, data_dir: Path, name: str) -> Split:
    """Read the split `name` of the settings' dataset; RxR splits keep the selected languages."""
    if settings.dataset == "rxr":
        return load_rxr_split(name, data_dir, settings.languages, settings.rxr_dir)
    return load_r2r_split(name, data_dir)


def _vocabulary_path(settings: EnvSettings) -> str | Path:
    template = settings.vocabulary or ""
    if settings.dataset != "rxr":
        return template
    language = vocabulary_language(template, parse_languages(settings.languages))
    return template if language is None else vocabulary_file(template, language)


def angle_features(heading: np.ndarray, elevation: np.ndarray, size: int) -> np.ndarray:
    """[sin h, cos h, sin e, cos e] repeated size / 4 times: float32 [..., size]."""
    if size % 4:
        raise ValueError(f"angle_feature_size must be a multiple of 4, got {size}")
    base = np.stack([np.sin(heading), np.cos(heading), np.sin(elevation), np.cos(elevation)], axis=-1).astype(
        np.float32
    )
    return np.tile(base, size // 4)


@dataclass
class NavigationWorld:
    """Shared resources of the navigation environments."""

    settings: EnvSettings
    data_dir: Path
    connectivity: Connectivity = field(repr=False)
    tables: SceneTables = field(repr=False)
    features: FeatureStore = field(repr=False)
    encoder: InstructionEncoder = field(repr=False)
    _splits: dict[str, Split] = field(default_factory=dict, repr=False)
    _encoded: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    _feature_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)

    @classmethod
    def from_settings(
        cls, settings: EnvSettings, camera: CameraSettings | None = None, vocabulary: Vocabulary | None = None
    ) -> NavigationWorld:
        """Open the data folder, the feature store and the vocabulary named by `settings`.

        A `vocabulary` given here takes the place of the one `settings` names or builds.
        """
        data_dir = resolve_data_dir(settings.data_dir)
        connectivity = Connectivity(connectivity_dir(data_dir))
        tables = SceneTables(connectivity, camera or CameraSettings())
        dim = settings.feature_dim if settings.features == NO_FEATURES else None
        features = open_feature_store(settings.features, dim, missing=settings.missing_features)
        splits: dict[str, Split] = {}
        if vocabulary is None and settings.vocabulary:
            vocabulary = Vocabulary.load(_vocabulary_path(settings))
        elif vocabulary is None:
            splits["train"] = load_split(settings, data_dir, "train")
            vocabulary = build_vocabulary(
                (e.instruction for e in splits["train"]), min_count=settings.min_word_count
            )
            logger.info("built a vocabulary of %d tokens from the training split", len(vocabulary))
        encoder = InstructionEncoder(vocabulary, settings.max_instruction_length)
        return cls(settings, data_dir, connectivity, tables, features, encoder, splits)

    def split(self, name: str) -> Split:
        """Return the named split of the settings' dataset, reading it on first use."""
        if name not in self._splits:
            self._splits[name] = load_split(self.settings, self.data_dir, name)
        return self._splits[name]

    def add_split(self, split: Split) -> None:
        """Make an in-memory split (augmented or generated episodes) available by name."""
        self._splits[split.name] = split

    def prepare_scan(self, scan: str) -> int:
        """Compute the simulator tables of a scan; return its global viewpoint offset."""
        return self.tables.add_scan(scan)

    def feature_rows(self, viewpoints: np.ndarray) -> np.ndarray:
        """Feature-store rows of global viewpoint indices; raise for viewpoints without features."""
        if len(self._feature_rows) < len(self.tables.viewpoint_ids):
            self._extend_feature_rows()
        rows = self._feature_rows[viewpoints]
        if (rows < 0).any():
            missing = int(viewpoints[np.flatnonzero(rows < 0)[0]])
            # The store's own error names the file, the scan, the viewpoint and the fix.
            self.features.lookup(self.tables.scan_name(missing), self.tables.viewpoint_ids[missing])
        return rows

    def _extend_feature_rows(self) -> None:
        known = len(self._feature_rows)
        rows = np.full(len(self.tables.viewpoint_ids) - known, -1, dtype=np.int64)
        for position, global_index in enumerate(range(known, len(self.tables.viewpoint_ids))):
            if not self.tables.included[global_index]:
                continue
            scan = self.tables.scan_name(global_index)
            # A viewpoint without features raises MissingViewpointError when an episode reaches it.
            with contextlib.suppress(MissingViewpointError):
                rows[position] = self.features.lookup(scan, self.tables.viewpoint_ids[global_index])
        self._feature_rows = np.concatenate([self._feature_rows, rows])

    def encode_instruction(self, episode: Episode) -> np.ndarray:
        """Return the episode's instruction as token ids [max_instruction_length], encoded once."""
        key = (episode.instr_id, episode.instruction)
        ids = self._encoded.get(key)
        if ids is None:
            if len(self._encoded) >= MAX_CACHED_INSTRUCTIONS:
                # Back-translation writes new instructions every batch; keep memory bounded.
                self._encoded.clear()
            ids = self._encoded[key] = self.encoder.encode(episode.instruction)
        return ids

    def episode(self, split: str, instr_id: str) -> Episode:
        return self.split(split)[instr_id]
