"""The navigation graph of one Matterport3D scan, with all-pairs shortest paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from connectivity.errors import ClipnavError, UnknownViewpointError, close_matches


class NoPathError(ClipnavError):
    """Two viewpoints of a scan lie in parts of its graph that no edge joins."""


@dataclass(frozen=True, eq=False)
class ScanGraph:
    """The navigation graph of one scan, as the Matterport3D Simulator reads it.

    Viewpoints keep the order of the scan's connectivity file, which is also the order
    in which the simulator visits neighbours. An edge joins two included viewpoints that
    the file marks unobstructed; its weight is the 3-D Euclidean distance in metres
    between their positions (the translation of each row-major 4x4 pose).
    """

    scan: str
    viewpoint_ids: tuple[str, ...]
    positions: np.ndarray  # [viewpoints, 3] float64, metres; z is up
    included: np.ndarray  # [viewpoints] bool
    unobstructed: np.ndarray  # [viewpoints, viewpoints] bool, as in the file
    heights: np.ndarray  # [viewpoints] float64, camera height above the floor in metres
    source: Path | None = None
    index_of: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_of", {v: i for i, v in enumerate(self.viewpoint_ids)})

    def __len__(self) -> int:
        return len(self.viewpoint_ids)

    def __contains__(self, viewpoint: object) -> bool:
        return viewpoint in self.index_of

    def index(self, viewpoint: str) -> int:
        """Return the position of `viewpoint` in the scan's connectivity file."""
        try:
            return self.index_of[viewpoint]
        except KeyError:
            raise UnknownViewpointError(
                f"viewpoint {viewpoint!r} is not in scan {self.scan!r}"
                f"{f' ({self.source})' if self.source else ''}."
                f"{close_matches(viewpoint, self.viewpoint_ids)}"
            ) from None

    @cached_property
    def adjacency(self) -> np.ndarray:
        """Navigable edges: [viewpoints, viewpoints] bool, unobstructed and both included."""
        return self.unobstructed & self.included[:, None] & self.included[None, :]

    @cached_property
    def edge_lengths(self) -> np.ndarray:
        """Euclidean distance in metres between every pair of viewpoints: [viewpoints, viewpoints]."""
        offsets = self.positions[:, None, :] - self.positions[None, :, :]
        return np.sqrt((offsets**2).sum(-1))

    def neighbors(self, viewpoint: str) -> list[str]:
        """Return the viewpoints one edge away from `viewpoint`, in file order."""
        row = self.adjacency[self.index(viewpoint)]
        return [self.viewpoint_ids[j] for j in np.flatnonzero(row)]

    @cached_property
    def _shortest_paths(self) -> tuple[np.ndarray, np.ndarray]:
        # Dijkstra from every viewpoint. Like the R2R scorer's undirected networkx graph, an
        # edge counts if either direction is unobstructed.
        # NOTE: the simulator moves only along a row's own unobstructed flags, so in a file
        # with one-way flags a shortest path could take a step the agent cannot. The 90
        # Matterport3D graphs are symmetric. A predecessor is replaced only by
        # a strictly shorter route, so ties resolve the same way on every run and machine.
        rows, cols = np.nonzero(self.adjacency)
        weights = self.edge_lengths[rows, cols]
        size = len(self)
        graph = csr_matrix((weights, (rows, cols)), shape=(size, size))
        distances, predecessors = dijkstra(graph, directed=False, return_predecessors=True)
        return distances, predecessors

    @property
    def distances(self) -> np.ndarray:
        """Shortest-path distance in metres between all pairs: [viewpoints, viewpoints], inf if unreachable."""
        return self._shortest_paths[0]

    @property
    def next_hops(self) -> np.ndarray:
        """`next_hops[goal, here]`: the viewpoint index after `here` on the shortest path to `goal`.

        -9999 where `here == goal` or the goal is unreachable.
        """
        # The predecessor of `here` on the path from `goal` is its next hop towards `goal`,
        # because every edge can be walked both ways.
        return self._shortest_paths[1]

    def distance(self, start: str, goal: str) -> float:
        """Return the shortest-path distance in metres from `start` to `goal`."""
        return float(self.distances[self.index(start), self.index(goal)])

    def shortest_path(self, start: str, goal: str) -> list[str]:
        """Return the viewpoints of the shortest path from `start` to `goal`, both included."""
        here, target = self.index(start), self.index(goal)
        if not np.isfinite(self.distances[here, target]):
            raise NoPathError(f"scan {self.scan!r}: no path from {start!r} to {goal!r}")
        path = [here]
        while here != target:
            here = int(self.next_hops[target, here])
            path.append(here)
        return [self.viewpoint_ids[i] for i in path]

    def path_length(self, viewpoints: Sequence[str]) -> float:
        """Return the summed shortest-path distance between consecutive viewpoints, in metres."""
        indices = [self.index(v) for v in viewpoints]
        if len(indices) < 2:
            return 0.0
        return float(self.distances[indices[:-1], indices[1:]].sum())
