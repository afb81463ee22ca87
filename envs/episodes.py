"""Navigation episodes: one instruction with its scan, start, heading and reference path."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from connectivity.errors import ClipnavError, close_matches


class DatasetFormatError(ClipnavError, ValueError):
    """A task file does not follow its published format."""


class UnknownEpisodeError(ClipnavError, LookupError):
    """An instr_id is not in the split."""


@dataclass(frozen=True)
class Episode:
    """One instruction to follow, as R2R and RxR define it.

    `path` is the reference path from the file. On test splits the file holds only the
    start viewpoint, so `has_reference` is False and no metric can be computed.
    """

    instr_id: str
    scan: str
    path_id: int
    path: tuple[str, ...]
    heading: float  # radians, the agent's heading at the start
    instruction: str
    has_reference: bool = True
    language: str = "en"

    @property
    def start(self) -> str:
        return self.path[0]

    @property
    def goal(self) -> str:
        """The last viewpoint of the reference path."""
        if not self.has_reference:
            raise DatasetFormatError(
                f"episode {self.instr_id} has no reference path (test split): it has no goal"
            )
        return self.path[-1]


@dataclass
class Split:
    """The episodes of one split, with a lookup table from instr_id to episode."""

    name: str
    episodes: list[Episode] = field(repr=False)
    source: Path | None = None
    by_instr_id: dict[str, Episode] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_instr_id = {}
        for episode in self.episodes:
            if episode.instr_id in self.by_instr_id:
                raise DatasetFormatError(
                    f"{self.source or self.name}: instr_id {episode.instr_id} appears twice"
                )
            self.by_instr_id[episode.instr_id] = episode

    def __len__(self) -> int:
        return len(self.episodes)

    def __repr__(self) -> str:
        return f"Split({self.name!r}, {len(self.episodes)} episodes, source={self.source})"

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    def __contains__(self, instr_id: object) -> bool:
        return instr_id in self.by_instr_id

    def __getitem__(self, instr_id: str) -> Episode:
        try:
            return self.by_instr_id[instr_id]
        except KeyError:
            raise UnknownEpisodeError(
                f"instr_id {instr_id!r} is not in split {self.name!r}."
                f"{close_matches(str(instr_id), self.by_instr_id)}"
            ) from None

    @property
    def has_reference(self) -> bool:
        """True when every episode has a reference path, so metrics can be computed."""
        return all(episode.has_reference for episode in self.episodes)

    @property
    def scans(self) -> list[str]:
        return sorted({episode.scan for episode in self.episodes})

    def subset(self, instr_ids: Sequence[str]) -> Split:
        """Return a split holding only the named episodes, in the given order."""
        return Split(self.name, [self[i] for i in instr_ids], self.source)
