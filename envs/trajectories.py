"""Agent trajectories in the R2R leaderboard format: reading, writing and validation.

A trajectory file is a JSON list with one object per instruction:
`{"instr_id": "4332_1", "trajectory": [[viewpoint, heading, elevation], ...]}`, with
heading and elevation in radians. The first step is the episode's start viewpoint, and
each later step either stays at the viewpoint of the step before (a turn in place) or
moves along one navigable edge of the scan's graph.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from connectivity import ClipnavError, Connectivity, DataNotFoundError, ScanGraph
from connectivity.errors import close_matches
from envs.episodes import Split
from envs.io import write_json_atomic

logger = logging.getLogger(__name__)

Step = tuple[str, float, float]  # viewpoint id, heading in radians, elevation in radians

# Problems printed in a TrajectoryValidationError's message. Its `problems` attribute keeps them all.
MAX_PRINTED_PROBLEMS = 20
# Unknown instr_ids that get "did you mean" suggestions, which cost a scan of the split's ids each.
_MAX_SUGGESTED_IDS = 10
_STEP_FORMAT = "[viewpoint id (string), heading (radians), elevation (radians)]"
_SEQUENCE_TYPES = (list, tuple)
_NUMBER_TYPES = (int, float)


class TrajectoryFileError(ClipnavError, ValueError):
    """A trajectory file cannot be read as a JSON list in the leaderboard format."""


class ProblemKind(str, enum.Enum):
    """The kinds of problem that trajectory validation reports."""

    MALFORMED = "malformed entry"
    DUPLICATE = "duplicate instr_id"
    UNKNOWN_ID = "unknown instr_id"
    MISSING_ID = "missing instr_id"
    WRONG_START = "wrong start"
    UNKNOWN_VIEWPOINT = "unknown viewpoint"
    NOT_ADJACENT = "move between non-adjacent viewpoints"


@dataclass(frozen=True)
class TrajectoryProblem:
    """One problem found in a trajectory file, with the instr_id or list entry it concerns."""

    kind: ProblemKind
    message: str
    instr_id: str | None = None
    entry: int | None = None  # position in the file's list, None for a missing instr_id

    def __str__(self) -> str:
        if self.instr_id is not None:
            return f"{self.instr_id}: {self.message}"
        return f"entry {self.entry}: {self.message}"


class TrajectoryValidationError(ClipnavError, ValueError):
    """Trajectories that fail validation against their split or graphs. `problems` lists every problem."""

    def __init__(
        self,
        problems: Sequence[TrajectoryProblem],
        source: str,
        split: str | None = None,
        hints: Sequence[str] = (),
    ):
        self.problems = list(problems)
        self.source = source
        self.split = split
        self.hints = list(hints)
        super().__init__(self._format())

    def _format(self) -> str:
        counts = Counter(problem.kind for problem in self.problems)
        summary = ", ".join(f"{count} {kind.value}" for kind, count in counts.items())
        against = f" for split {self.split!r}" if self.split else ""
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = [f"{self.source}: {len(self.problems)} {noun} with the trajectories{against} ({summary})."]
        lines += self.hints
        lines += [f"  {problem}" for problem in self.problems[:MAX_PRINTED_PROBLEMS]]
        hidden = len(self.problems) - MAX_PRINTED_PROBLEMS
        if hidden > 0:
            lines.append(f"  ... and {hidden} more of the kinds counted above")
        lines.append("To fix:")
        lines += [f"  {kind.value}: {_FIXES[kind]}" for kind in counts]
        return "\n".join(lines)


_FIXES = {
    ProblemKind.MALFORMED: (
        'write each entry as {"instr_id": "<path_id>_<k>", "trajectory": [[viewpoint, heading, elevation], ...]}.'
    ),
    ProblemKind.DUPLICATE: "keep one trajectory per instr_id.",
    ProblemKind.UNKNOWN_ID: "remove these entries, or evaluate on the split the file was made for.",
    ProblemKind.MISSING_ID: (
        "add their trajectories, or allow missing instr_ids to score a partial file "
        "(allow_missing=True, or clipnav-evaluate --allow-missing); a leaderboard file needs them all."
    ),
    ProblemKind.WRONG_START: "begin each trajectory at its episode's start viewpoint, the first viewpoint of its path.",
    ProblemKind.UNKNOWN_VIEWPOINT: "use viewpoint ids of the episode's scan.",
    ProblemKind.NOT_ADJACENT: (
        "record every step, so that each one stays at a viewpoint or moves along one navigable edge."
    ),
}


@dataclass(frozen=True)
class Trajectory:
    """The steps an agent took for one instruction, first step at the episode's start."""

    instr_id: str
    viewpoints: tuple[str, ...]  # one per step, turns in place included
    headings: tuple[float, ...]  # radians
    elevations: tuple[float, ...]  # radians

    @property
    def steps(self) -> list[Step]:
        return list(zip(self.viewpoints, self.headings, self.elevations))


def read_trajectories(path: str | os.PathLike[str]) -> list[object]:
    """Read a trajectory file's JSON list without checking its entries.

    Raises DataNotFoundError if the file does not exist and TrajectoryFileError if it is
    unreadable, not JSON or not a list. `validate_trajectories` checks the entries.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataNotFoundError(f"trajectory file {path} not found; check the path") from None
    except OSError as error:
        raise TrajectoryFileError(f"{path}: cannot read the trajectory file ({error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise TrajectoryFileError(
            f"{path}: invalid JSON ({error}); expected the R2R leaderboard format, a list of "
            '{"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]} objects'
        ) from None
    if not isinstance(data, list):
        raise TrajectoryFileError(
            f"{path}: expected a JSON list of trajectory objects, got a JSON {type(data).__name__}; "
            'wrap the entries in a list: [{"instr_id": ..., "trajectory": [...]}, ...]'
        )
    return data


def write_trajectories(
    path: str | os.PathLike[str],
    trajectories: Iterable[Trajectory | Mapping[str, object]] | Mapping[str, Sequence[Sequence[object]]],
) -> None:
    """Write trajectories atomically in the leaderboard format.

    `trajectories` is `Trajectory` records, leaderboard entries
    {"instr_id": ..., "trajectory": [...]}, or a mapping from instr_id to steps
    [viewpoint, heading, elevation]. Raises TrajectoryValidationError, and writes
    nothing, if an entry is malformed. The split and graphs are not checked here.
    """
    if isinstance(trajectories, Mapping):
        entries = _mapping_entries(trajectories)
    else:
        entries = [
            {"instr_id": item.instr_id, "trajectory": item.steps} if isinstance(item, Trajectory) else item
            for item in trajectories
        ]
    records, problems = _parse_entries(entries)
    if problems:
        raise TrajectoryValidationError(problems, source=str(path))

    output = [
        {"instr_id": trajectory.instr_id, "trajectory": [list(step) for step in trajectory.steps]}
        for _, _, trajectory in records
        if trajectory is not None
    ]
    write_json_atomic(path, output)
    logger.info("wrote %d trajectories to %s", len(output), path)


def load_trajectories(
    path: str | os.PathLike[str], split: Split, connectivity: Connectivity, *, allow_missing: bool = False
) -> dict[str, Trajectory]:
    """Read a trajectory file and validate it against `split` (see `validate_trajectories`)."""
    entries = read_trajectories(path)
    return validate_trajectories(entries, split, connectivity, allow_missing=allow_missing, source=str(path))


def validate_trajectories(
    entries: Sequence[object] | Mapping[str, Sequence[Sequence[object]]],
    split: Split,
    connectivity: Connectivity,
    *,
    allow_missing: bool = False,
    source: str = "trajectories",
) -> dict[str, Trajectory]:
    """Check trajectories against a split and its graphs and return them by instr_id, in input order.

    `entries` is a parsed leaderboard list or a mapping from instr_id to steps. Every
    problem is collected before raising one TrajectoryValidationError: malformed
    entries, duplicate, unknown and (unless `allow_missing`) missing instr_ids, a first
    step away from the episode's start, viewpoints not in the scan, and moves between
    viewpoints that no navigable edge joins. Test splits, which have no reference path,
    validate the same way because the start viewpoint is known.
    """
    if isinstance(entries, Mapping):
        entries = _mapping_entries(entries)
    records, problems = _parse_entries(entries)

    problems += _check_ids(records, split, allow_missing)
    neighbours_by_scan: dict[str, list[frozenset[int]]] = {}
    first_records: dict[str, Trajectory] = {}
    for entry, instr_id, trajectory in records:
        if trajectory is None or instr_id not in split or instr_id in first_records:
            continue
        first_records[instr_id] = trajectory
        episode = split[instr_id]
        graph = connectivity[episode.scan]
        if episode.scan not in neighbours_by_scan:
            neighbours_by_scan[episode.scan] = _neighbour_sets(graph)
        problems += _check_path(trajectory, entry, episode.start, graph, neighbours_by_scan[episode.scan])

    if problems:
        raise TrajectoryValidationError(
            problems, source=source, split=split.name, hints=_split_hints(records, split)
        )
    logger.debug("validated %d trajectories from %s against split %s", len(first_records), source, split.name)
    return first_records


# One parsed entry: its position in the list, its instr_id and its trajectory (None if malformed).
_Record = tuple[int, str, Trajectory | None]


def _mapping_entries(trajectories: Mapping[str, Sequence[Sequence[object]]]) -> list[object]:
    return [{"instr_id": instr_id, "trajectory": steps} for instr_id, steps in trajectories.items()]


def _parse_entries(
    entries: Sequence[object],
) -> tuple[list[_Record], list[TrajectoryProblem]]:
    """Split entries into (entry, instr_id, trajectory) records and problems.

    An entry with a valid instr_id but malformed steps yields a problem and a record
    whose trajectory is None, so that its instr_id still counts as present.
    """
    records: list[_Record] = []
    problems: list[TrajectoryProblem] = []
    for entry, item in enumerate(entries):
        if not isinstance(item, Mapping):
            problems.append(
                TrajectoryProblem(
                    ProblemKind.MALFORMED,
                    f'expected an object {{"instr_id": ..., "trajectory": [...]}}, got {_describe(item)}',
                    entry=entry,
                )
            )
            continue

        instr_id = item.get("instr_id")
        if not isinstance(instr_id, str):
            found = "no instr_id" if instr_id is None else f"instr_id {_describe(instr_id)}"
            problems.append(
                TrajectoryProblem(
                    ProblemKind.MALFORMED,
                    f"expected a string instr_id such as '4332_1', got {found}",
                    entry=entry,
                )
            )
            continue

        trajectory, message = _parse_steps(instr_id, item.get("trajectory"))
        if message is not None:
            problems.append(TrajectoryProblem(ProblemKind.MALFORMED, message, instr_id=instr_id, entry=entry))
        records.append((entry, instr_id, trajectory))
    return records, problems


def _parse_steps(instr_id: str, raw: object) -> tuple[Trajectory | None, str | None]:
    """Parse a raw step list into (trajectory, None), or return (None, message) naming what is wrong."""
    if raw is None:
        return None, "missing key 'trajectory'; expected a list of " + _STEP_FORMAT + " steps"
    if not isinstance(raw, (list, tuple)) or not raw:
        return None, f"expected a non-empty list of {_STEP_FORMAT} steps, got {_describe(raw)}"

    # Exact type checks accept what json.load returns; NumPy numbers take the slower check.
    if not all(
        type(step) in _SEQUENCE_TYPES
        and len(step) == 3
        and type(step[0]) is str
        and type(step[1]) in _NUMBER_TYPES
        and type(step[2]) in _NUMBER_TYPES
        and math.isfinite(step[1])
        and math.isfinite(step[2])
        for step in raw
    ):
        malformed = [k for k, step in enumerate(raw) if not _is_step(step)]
        if malformed:
            first = malformed[0]
            message = f"step {first} is {_describe(raw[first])}, expected {_STEP_FORMAT}"
            if len(malformed) > 1:
                message += f" ({len(malformed)} malformed steps in all)"
            return None, message

    viewpoints = tuple(step[0] for step in raw)
    headings = tuple(float(step[1]) for step in raw)
    elevations = tuple(float(step[2]) for step in raw)
    return Trajectory(instr_id, viewpoints, headings, elevations), None


def _is_step(step: object) -> bool:
    return (
        isinstance(step, (list, tuple))
        and len(step) == 3
        and isinstance(step[0], str)
        and _is_angle(step[1])
        and _is_angle(step[2])
    )


def _is_angle(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _describe(value: object) -> str:
    """Return a short description of a JSON value for a message: its type and a clipped repr."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _check_ids(
    records: list[_Record],
    split: Split,
    allow_missing: bool,
) -> list[TrajectoryProblem]:
    """Report duplicate, unknown and (unless allowed) missing instr_ids."""
    found: list[TrajectoryProblem] = []
    entries_of: dict[str, list[int]] = {}
    for entry, instr_id, _ in records:
        entries_of.setdefault(instr_id, []).append(entry)

    for instr_id, entries in entries_of.items():
        if len(entries) > 1:
            listed = ", ".join(str(entry) for entry in entries)
            found.append(
                TrajectoryProblem(
                    ProblemKind.DUPLICATE,
                    f"appears {len(entries)} times, in entries {listed}",
                    instr_id=instr_id,
                    entry=entries[1],
                )
            )

    unknown = [instr_id for instr_id in entries_of if instr_id not in split]
    # Suggestions help with a typo, not with a file made for another split.
    suggest = len(unknown) < len(entries_of)
    for rank, instr_id in enumerate(unknown):
        hint = close_matches(instr_id, split.by_instr_id) if suggest and rank < _MAX_SUGGESTED_IDS else ""
        found.append(
            TrajectoryProblem(
                ProblemKind.UNKNOWN_ID,
                f"not in split {split.name!r}.{hint}",
                instr_id=instr_id,
                entry=entries_of[instr_id][0],
            )
        )
    if not allow_missing:
        for episode in split:
            if episode.instr_id not in entries_of:
                found.append(
                    TrajectoryProblem(
                        ProblemKind.MISSING_ID,
                        f"in split {split.name!r} but the file has no trajectory for it",
                        instr_id=episode.instr_id,
                    )
                )
    return found


def _split_hints(records: list[_Record], split: Split) -> list[str]:
    """Return a hint when no instr_id of the file is in the split, which suggests the wrong split."""
    ids = {instr_id for _, instr_id, _ in records}
    if ids and not any(instr_id in split for instr_id in ids):
        return [
            f"None of the file's {len(ids)} instr_ids are in split {split.name!r}: "
            "check that the file was made for this split."
        ]
    return []


def _neighbour_sets(graph: ScanGraph) -> list[frozenset[int]]:
    """Return, for each viewpoint index, the indices one navigable edge away."""
    adjacency = graph.adjacency
    return [frozenset(np.flatnonzero(row).tolist()) for row in adjacency]


def _check_path(
    trajectory: Trajectory,
    entry: int,
    start: str,
    graph: ScanGraph,
    neighbours: list[frozenset[int]],
) -> list[TrajectoryProblem]:
    """Report a wrong first step, viewpoints not in the scan and moves off the graph's edges."""
    found: list[TrajectoryProblem] = []
    instr_id = trajectory.instr_id
    viewpoints = trajectory.viewpoints
    first = viewpoints[0]
    if first != start:
        found.append(
            TrajectoryProblem(
                ProblemKind.WRONG_START,
                f"starts at viewpoint {first!r}, expected the episode's start viewpoint {start!r}",
                instr_id=instr_id,
                entry=entry,
            )
        )

    index_of = graph.index_of
    indices = [index_of.get(viewpoint, -1) for viewpoint in viewpoints]
    reported: set[str] = set()
    for k, index in enumerate(indices):
        viewpoint = viewpoints[k]
        if index < 0 and viewpoint not in reported:
            reported.add(viewpoint)
            found.append(
                TrajectoryProblem(
                    ProblemKind.UNKNOWN_VIEWPOINT,
                    f"step {k}: viewpoint {viewpoint!r} is not in scan {graph.scan!r}."
                    f"{close_matches(viewpoint, graph.viewpoint_ids)}",
                    instr_id=instr_id,
                    entry=entry,
                )
            )

    for k in range(1, len(indices)):
        before, after = indices[k - 1], indices[k]
        if before == after or before < 0 or after < 0 or after in neighbours[before]:
            continue
        found.append(
            TrajectoryProblem(
                ProblemKind.NOT_ADJACENT,
                f"steps {k - 1} to {k} move from {viewpoints[k - 1]!r} to {viewpoints[k]!r}, which no "
                f"navigable edge joins in scan {graph.scan!r}",
                instr_id=instr_id,
                entry=entry,
            )
        )
    return found
