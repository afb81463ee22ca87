"""Reading the Matterport3D Simulator's connectivity folder.

The folder holds `scans.txt` (one scan id per line) and, for each scan,
`<scan>_connectivity.json`: a list with one object per viewpoint carrying `image_id`,
`pose` (a row-major 4x4 camera-to-world matrix, translation in elements 3, 7 and 11),
`included`, `unobstructed` (one flag per viewpoint of the file) and `height`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from connectivity.errors import (
    ConnectivityFormatError,
    DataNotFoundError,
    UnknownScanError,
    close_matches,
)
from connectivity.graph import ScanGraph

logger = logging.getLogger(__name__)


def read_scan_list(connectivity_dir: str | os.PathLike[str]) -> list[str]:
    """Return the scan ids listed in `<connectivity_dir>/scans.txt`, in file order."""
    path = Path(connectivity_dir) / "scans.txt"
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found; point to a folder in the Matterport3D Simulator's "
            "connectivity format (scans.txt and <scan>_connectivity.json)"
        )
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def parse_scan_graph(scan: str, entries: object, source: Path | None = None) -> ScanGraph:
    """Build a `ScanGraph` from the parsed JSON list of a connectivity file."""
    where = str(source) if source else f"scan {scan}"
    if not isinstance(entries, list) or not entries:
        raise ConnectivityFormatError(f"{where}: expected a non-empty list of viewpoints")

    count = len(entries)
    viewpoint_ids: list[str] = []
    poses = np.empty((count, 16), dtype=np.float64)
    included = np.empty(count, dtype=bool)
    unobstructed = np.empty((count, count), dtype=bool)
    heights = np.full(count, np.nan)
    for i, entry in enumerate(entries):
        problem = _entry_problem(entry, count)
        if problem:
            viewpoint = entry.get("image_id", "?") if isinstance(entry, dict) else "?"
            raise ConnectivityFormatError(
                f"{where}: entry {i} (viewpoint {viewpoint}) is malformed: {problem}; each entry needs "
                f"image_id, a 16-number pose, a true/false included and {count} true/false "
                "unobstructed flags, one per viewpoint of the file"
            )
        viewpoint_ids.append(entry["image_id"])
        poses[i] = entry["pose"]
        included[i] = entry["included"]
        unobstructed[i] = entry["unobstructed"]
        if "height" in entry:
            heights[i] = entry["height"]

    if len(set(viewpoint_ids)) != count:
        raise ConnectivityFormatError(f"{where}: viewpoint ids are not unique")
    return ScanGraph(
        scan=scan,
        viewpoint_ids=tuple(viewpoint_ids),
        positions=poses[:, [3, 7, 11]].copy(),
        included=included,
        unobstructed=unobstructed,
        heights=heights,
        source=source,
    )


def _entry_problem(entry: object, count: int) -> str | None:
    """Describe what is wrong with one viewpoint entry of a connectivity file, or return None."""
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    for key in ("image_id", "pose", "included", "unobstructed"):
        if key not in entry:
            return f"missing {key!r}"
    if not isinstance(entry["image_id"], str) or not entry["image_id"]:
        return f"image_id must be a non-empty string, got {entry['image_id']!r}"
    pose = entry["pose"]
    if not isinstance(pose, list) or len(pose) != 16:
        return f"pose must be a list of 16 numbers, got {pose!r:.80}"
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in pose):
        return "pose must hold finite numbers only"
    if not isinstance(entry["included"], bool):
        return f"included must be true or false, got {entry['included']!r}"
    flags = entry["unobstructed"]
    if not isinstance(flags, list) or len(flags) != count:
        length = len(flags) if isinstance(flags, list) else type(flags).__name__
        return f"unobstructed must hold {count} flags, got {length}"
    if not all(isinstance(flag, bool) for flag in flags):
        return "unobstructed must hold true/false flags only"
    height = entry.get("height", 0.0)
    if not isinstance(height, (int, float)) or isinstance(height, bool) or not math.isfinite(height):
        return f"height must be a number of metres, got {height!r}"
    return None


def load_scan_graph(connectivity_dir: str | os.PathLike[str], scan: str) -> ScanGraph:
    """Read `<connectivity_dir>/<scan>_connectivity.json` into a `ScanGraph`."""
    path = Path(connectivity_dir) / f"{scan}_connectivity.json"
    if not path.is_file():
        raise DataNotFoundError(f"connectivity file {path} for scan {scan!r} not found")
    try:
        entries = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ConnectivityFormatError(f"{path}: invalid JSON ({type(error).__name__}: {error})") from None
    return parse_scan_graph(scan, entries, source=path)


class Connectivity:
    """The navigation graphs of a connectivity folder, each read on first use and kept.

    `graphs[scan]` returns that scan's `ScanGraph`; its all-pairs shortest paths are
    computed on first use and kept with it.
    """

    def __init__(self, connectivity_dir: str | os.PathLike[str], scans: Iterable[str] | None = None):
        self.root = Path(connectivity_dir)
        self.scans: list[str] = list(scans) if scans is not None else read_scan_list(self.root)
        self._known = set(self.scans)
        self._graphs: dict[str, ScanGraph] = {}

    def __getitem__(self, scan: str) -> ScanGraph:
        graph = self._graphs.get(scan)
        if graph is None:
            if scan not in self._known:
                raise UnknownScanError(
                    f"scan {scan!r} is not listed in {self.root / 'scans.txt'}."
                    f"{close_matches(scan, self.scans)}"
                )
            graph = self._graphs[scan] = load_scan_graph(self.root, scan)
        return graph

    def __contains__(self, scan: object) -> bool:
        return scan in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self.scans)

    def __len__(self) -> int:
        return len(self.scans)

    def load_all(self, with_distances: bool = True) -> None:
        """Read every listed scan now, with its all-pairs shortest paths if asked."""
        for scan in self.scans:
            graph = self[scan]
            if with_distances:
                graph.distances  # noqa: B018 - computes and keeps the all-pairs table
        logger.info("loaded %d navigation graphs from %s", len(self.scans), self.root)
