"""The Room-to-Room (R2R) task: reading the official JSON splits.

Each file is a list of paths: `path_id`, `scan`, `path` (viewpoint ids), `heading`
(radians), `distance` (metres) and `instructions` (three per path, four for a few).
Every instruction is one episode with instr_id "<path_id>_<k>", k its position in the
list. In `R2R_test.json` the path holds only the start viewpoint.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from connectivity import DataNotFoundError, resolve_data_dir
from envs.episodes import DatasetFormatError, Episode, Split

R2R_SPLITS = ("train", "val_seen", "val_unseen", "test")
SPLITS_WITHOUT_REFERENCE = frozenset({"test"})


def r2r_split_path(split: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of `R2R_<split>.json` in the data folder's `R2R/`."""
    path = resolve_data_dir(data_dir) / "R2R" / f"R2R_{split}.json"
    if not path.is_file():
        known = ", ".join(R2R_SPLITS)
        raise DataNotFoundError(
            f"R2R split file {path} not found; known splits: {known}, and any R2R_<name>.json "
            "placed in the R2R/ folder"
        )
    return path


def read_r2r_file(
    path: str | os.PathLike[str], name: str | None = None, has_reference: bool | None = None
) -> Split:
    """Read an R2R-format JSON file into a `Split`, one episode per instruction.

    `has_reference` defaults to False for a split named "test", True otherwise.
    """
    path = Path(path)
    name = name or path.stem.removeprefix("R2R_")
    if has_reference is None:
        has_reference = name not in SPLITS_WITHOUT_REFERENCE
    try:
        items = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataNotFoundError(f"R2R file {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise DatasetFormatError(f"{path}: invalid JSON ({type(error).__name__}: {error})") from None
    if not isinstance(items, list):
        raise DatasetFormatError(f"{path}: expected a JSON list of paths, got {type(items).__name__}")

    episodes = []
    for position, item in enumerate(items):
        try:
            path_id = int(item["path_id"])
            scan = str(item["scan"])
            viewpoints = _strings(item["path"], "path")
            heading = float(item["heading"])
            if not math.isfinite(heading):
                raise ValueError(f"heading must be a finite number of radians, got {heading}")
            instructions = _strings(item["instructions"], "instructions")
        except (KeyError, TypeError, ValueError) as error:
            path_id = item.get("path_id", "?") if isinstance(item, dict) else "?"
            raise DatasetFormatError(
                f"{path}: entry {position} (path_id {path_id}) is malformed: {error}; each entry "
                "needs path_id, scan, path (a list of viewpoint ids), heading and instructions (a list)"
            ) from None
        if not viewpoints:
            raise DatasetFormatError(f"{path}: path_id {path_id} has an empty path")
        for k, instruction in enumerate(instructions):
            episodes.append(
                Episode(
                    instr_id=f"{path_id}_{k}",
                    scan=scan,
                    path_id=path_id,
                    path=viewpoints,
                    heading=heading,
                    instruction=instruction,
                    has_reference=has_reference,
                )
            )
    return Split(name, episodes, source=path)


def _strings(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{field} must be a list of strings, got {value!r:.60}")
    return tuple(value)


def load_r2r_split(split: str, data_dir: str | os.PathLike[str] | None = None) -> Split:
    """Read the R2R split `split` (train, val_seen, val_unseen, test) from the data folder."""
    return read_r2r_file(r2r_split_path(split, data_dir), name=split)
