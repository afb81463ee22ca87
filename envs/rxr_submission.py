"""RxR competition submissions: JSON lines of predicted paths, reading, writing, validation and scoring.

A submission has one JSON object per line and one line per instruction of the split:
`{"instruction_id": 123, "path": [viewpoint, ...]}`, with `instruction_id` the integer
of the RxR guide file. The path starts at the episode's start viewpoint, and each later
viewpoint equals the one before or is joined to it by a navigable edge of the scan's
graph. Files whose name ends in .gz are gzipped. Validation runs the checks of R2R
trajectory files (`envs.trajectories`), so both formats report the same problem kinds.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from connectivity import ClipnavError, Connectivity, DataNotFoundError
from envs.episodes import Split
from envs.evaluation import EvaluationReport, evaluate_trajectories
from envs.io import atomic_write
from envs.metrics import DEFAULT_SPL_LENGTH, DEFAULT_SUCCESS_DISTANCE, collapse_repeats
from envs.trajectories import (
    MAX_PRINTED_PROBLEMS,
    ProblemKind,
    TrajectoryProblem,
    TrajectoryValidationError,
    validate_trajectories,
)

logger = logging.getLogger(__name__)

_ENTRY_FORMAT = '{"instruction_id": <integer>, "path": [viewpoint, ...]}'
_MAX_LISTED_LINES = 10


class RxrSubmissionFileError(ClipnavError, ValueError):
    """A submission file cannot be read as JSON lines."""


class RxrSubmissionError(TrajectoryValidationError):
    """Predicted paths that fail validation. `problems` lists every problem, each with its instruction_id."""

    def _format(self) -> str:
        counts = Counter(problem.kind for problem in self.problems)
        summary = ", ".join(f"{count} {_KIND_NAMES[kind]}" for kind, count in counts.items())
        against = f" for split {self.split!r}" if self.split else ""
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = [f"{self.source}: {len(self.problems)} {noun} with the RxR predictions{against} ({summary})."]
        lines += self.hints
        for problem in self.problems[:MAX_PRINTED_PROBLEMS]:
            where = (
                f"instruction_id {problem.instr_id}"
                if problem.instr_id is not None
                else f"line {problem.entry + 1}"
            )
            lines.append(f"  {where}: {problem.message}")
        hidden = len(self.problems) - MAX_PRINTED_PROBLEMS
        if hidden > 0:
            lines.append(f"  ... and {hidden} more of the kinds counted above")
        lines.append("To fix:")
        lines += [f"  {_KIND_NAMES[kind]}: {_FIXES[kind]}" for kind in counts]
        return "\n".join(lines)


_KIND_NAMES = {kind: kind.value.replace("instr_id", "instruction_id") for kind in ProblemKind}

_FIXES = {
    ProblemKind.MALFORMED: f"write each line as {_ENTRY_FORMAT}.",
    ProblemKind.DUPLICATE: "keep one line per instruction_id.",
    ProblemKind.UNKNOWN_ID: "remove these lines, or validate against the split and languages the file was made for.",
    ProblemKind.MISSING_ID: (
        "add their paths (a submission needs every instruction_id of the split and languages), "
        "or check a partial file with allow_missing=True, or score one with clipnav-evaluate --allow-missing."
    ),
    ProblemKind.WRONG_START: "begin each path at its episode's start viewpoint.",
    ProblemKind.UNKNOWN_VIEWPOINT: "use viewpoint ids of the episode's scan.",
    ProblemKind.NOT_ADJACENT: "list every viewpoint passed, so that each one equals the one before or is its neighbour.",
}


# --- reading and writing --------------------------------------------------------------


def read_rxr_submission(path: str | os.PathLike[str]) -> list[object]:
    """Read a submission's JSON lines (gunzipped if the name ends in .gz) without checking the entries.

    Entry k of the returned list is line k + 1 of the file. Blank lines may end the file,
    nowhere else. Raises DataNotFoundError for a missing file and RxrSubmissionFileError,
    listing the bad line numbers, for lines that are not JSON.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw_lines = stream.read().split(b"\n")
    except FileNotFoundError:
        raise DataNotFoundError(f"RxR submission file {path} not found; check the path") from None
    except (OSError, EOFError, zlib.error) as error:
        raise RxrSubmissionFileError(
            f"{path}: cannot read the submission ({type(error).__name__}: {error})"
        ) from None

    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()
    entries: list[object] = []
    bad: list[str] = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            entries.append(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            reason = "empty" if not raw.strip() else f"{type(error).__name__}: {error}"
            bad.append(f"line {number} ({reason})")
    if bad:
        listed = "; ".join(bad[:_MAX_LISTED_LINES])
        more = f"; and {len(bad) - _MAX_LISTED_LINES} more" if len(bad) > _MAX_LISTED_LINES else ""
        raise RxrSubmissionFileError(
            f"{path}: {len(bad)} lines are not JSON: {listed}{more}. Expected one {_ENTRY_FORMAT} object per line"
        )
    return entries


def write_rxr_submission(
    path: str | os.PathLike[str],
    predictions: Mapping[str | int, Sequence[str]],
    compress: bool | None = None,
) -> None:
    """Write predicted paths by instruction_id as a submission, atomically.

    `compress` gzips the file; None gzips when the name ends in .gz. Raises
    RxrSubmissionError, and writes nothing, when an id is not an integer (or its decimal
    string) or a path is not a non-empty list of viewpoint ids. The split and the
    graphs are not checked here.
    """
    path = Path(path)
    entries = [{"instruction_id": _integer_id(key), "path": path_} for key, path_ in predictions.items()]
    _, problems = _parse_entries(entries)
    if problems:
        raise RxrSubmissionError(problems, source=str(path))

    text = "".join(
        json.dumps({"instruction_id": e["instruction_id"], "path": list(e["path"])}) + "\n" for e in entries
    )
    data = text.encode("utf-8")
    if compress is None:
        compress = path.suffix == ".gz"
    with atomic_write(path, "wb") as out:
        if compress:
            # mtime=0 keeps the bytes the same for the same predictions.
            with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as zipped:
                zipped.write(data)
        else:
            out.write(data)
    logger.info("wrote %d RxR predictions to %s", len(entries), path)


def _integer_id(key: object) -> object:
    """Return a decimal-string id as an integer and any other value unchanged, for validation."""
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    return key


def predictions_from_trajectories(
    trajectories: Mapping[str, Sequence[Sequence[object]]],
) -> dict[str, list[str]]:
    """Turn trajectories by instr_id (steps [viewpoint, heading, elevation]) into predicted paths.

    Consecutive repeats (turns in place) are dropped, because the RxR format keeps
    viewpoints only.
    """
    return {
        instr_id: collapse_repeats([str(step[0]) for step in steps])
        for instr_id, steps in trajectories.items()
    }


# --- validation and scoring -----------------------------------------------------------


def validate_rxr_submission(
    entries: Sequence[object] | Mapping[str | int, Sequence[str]],
    split: Split,
    connectivity: Connectivity,
    *,
    allow_missing: bool = False,
    source: str = "predictions",
) -> dict[str, tuple[str, ...]]:
    """Check predictions against a split and its graphs; return the paths by instr_id, in input order.

    `entries` is a parsed submission (a list of objects) or a mapping from instruction_id
    to path. Every problem is collected before one RxrSubmissionError is raised. The
    problems are malformed lines, duplicate, unknown and (unless `allow_missing`)
    missing instruction_ids, and paths that start away from the episode's start, name
    viewpoints not in the scan or move between viewpoints that no navigable edge joins.
    Splits without reference paths (test_standard) validate the same way, because the
    start viewpoint is known.
    """
    if isinstance(entries, Mapping):
        entries = [{"instruction_id": _integer_id(key), "path": path} for key, path in entries.items()]
    leaderboard, problems = _parse_entries(entries)

    # The R2R checks see well-formed entries as trajectories; `positions` maps them back.
    positions = [position for position, _ in leaderboard]
    try:
        validate_trajectories(
            [entry for _, entry in leaderboard],
            split,
            connectivity,
            allow_missing=allow_missing,
            source=source,
        )
    except TrajectoryValidationError as error:
        problems += [
            _reworded(problem, positions, leaderboard)
            for problem in error.problems
            if problem.kind != ProblemKind.MALFORMED
        ]
    if problems:
        raise RxrSubmissionError(
            problems, source=source, split=split.name, hints=_split_hints(entries, split)
        )

    paths: dict[str, tuple[str, ...]] = {}
    for _, entry in leaderboard:
        if entry["trajectory"] is not None:
            paths.setdefault(entry["instr_id"], tuple(step[0] for step in entry["trajectory"]))
    logger.debug("validated %d RxR predictions from %s against split %s", len(paths), source, split.name)
    return paths


def evaluate_rxr_submission(
    entries: Sequence[object] | Mapping[str | int, Sequence[str]],
    split: Split,
    connectivity: Connectivity,
    *,
    success_distance: float = DEFAULT_SUCCESS_DISTANCE,
    allow_missing: bool = False,
    source: str = "predictions",
    spl_length: str = DEFAULT_SPL_LENGTH,
) -> EvaluationReport:
    """Validate predictions (see `validate_rxr_submission`) and score them like trajectories.

    A path's viewpoints become trajectory steps at heading and elevation 0, which no
    metric reads.
    """
    paths = validate_rxr_submission(entries, split, connectivity, allow_missing=allow_missing, source=source)
    trajectories = {
        instr_id: [[viewpoint, 0.0, 0.0] for viewpoint in path] for instr_id, path in paths.items()
    }
    return evaluate_trajectories(
        trajectories,
        split,
        connectivity,
        success_distance=success_distance,
        allow_missing=allow_missing,
        source=source,
        spl_length=spl_length,
    )


def _parse_entries(entries: Iterable[object]) -> tuple[list[tuple[int, dict]], list[TrajectoryProblem]]:
    """Turn entries into (position, leaderboard entry) pairs and problems.

    An entry with an integer instruction_id but a malformed path yields a problem and a
    leaderboard entry whose trajectory is None, so that its id still counts as present.
    """
    leaderboard: list[tuple[int, dict]] = []
    problems: list[TrajectoryProblem] = []
    for position, item in enumerate(entries):
        if not isinstance(item, Mapping):
            message = f"expected an object {_ENTRY_FORMAT}, got {_describe(item)}"
            problems.append(TrajectoryProblem(ProblemKind.MALFORMED, message, entry=position))
            continue

        instruction_id = item.get("instruction_id")
        if type(instruction_id) is not int:
            found = (
                "no instruction_id"
                if instruction_id is None
                else f"instruction_id {_describe(instruction_id)}"
            )
            message = f"expected an integer instruction_id, got {found}"
            problems.append(TrajectoryProblem(ProblemKind.MALFORMED, message, entry=position))
            continue

        instr_id = str(instruction_id)
        path = item.get("path")
        if not (isinstance(path, (list, tuple)) and path and all(isinstance(v, str) for v in path)):
            found = "no path" if path is None else f"path {_describe(path)}"
            message = f"expected a path that is a non-empty list of viewpoint id strings, got {found}"
            problems.append(
                TrajectoryProblem(ProblemKind.MALFORMED, message, instr_id=instr_id, entry=position)
            )
            leaderboard.append((position, {"instr_id": instr_id, "trajectory": None}))
            continue
        steps = [[viewpoint, 0.0, 0.0] for viewpoint in path]
        leaderboard.append((position, {"instr_id": instr_id, "trajectory": steps}))
    return leaderboard, problems


def _reworded(
    problem: TrajectoryProblem, positions: list[int], leaderboard: list[tuple[int, dict]]
) -> TrajectoryProblem:
    """Return a problem of the R2R checks with the entry's position in the submission and RxR words."""
    entry = positions[problem.entry] if problem.entry is not None else None
    message = problem.message
    if problem.kind == ProblemKind.MISSING_ID:
        message = message.replace("the file has no trajectory for it", "the predictions have no path for it")
    elif problem.kind == ProblemKind.DUPLICATE:
        lines = [str(position + 1) for position, item in leaderboard if item["instr_id"] == problem.instr_id]
        message = f"appears {len(lines)} times, on lines {', '.join(lines)}"
    return dataclasses.replace(problem, entry=entry, message=message)


def _split_hints(entries: Sequence[object], split: Split) -> list[str]:
    """Return a hint when no instruction_id of the predictions is in the split."""
    ids = {
        str(item.get("instruction_id"))
        for item in entries
        if isinstance(item, Mapping) and type(item.get("instruction_id")) is int
    }
    if ids and not any(instr_id in split for instr_id in ids):
        return [
            f"None of the {len(ids)} instruction_ids are in split {split.name!r}: check that the predictions "
            "were made for this split and these languages."
        ]
    return []


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
