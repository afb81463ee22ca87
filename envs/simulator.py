"""A batched, pure-NumPy re-implementation of the Matterport3D Simulator's discretized mode.

`BatchSimulator` steps N episodes together and gives the states that the C++ simulator
gives with discretized viewing angles, restricted navigation and rendering off:

- `new_episodes` snaps heading to a multiple of 30 degrees (C's lround: halves away from
  zero) and elevation to -30, 0 or +30 degrees (boundaries at +-15 degrees);
- `make_actions(index, heading, elevation)` moves to `navigable_locations[index]`, keeping
  heading and elevation. Then it turns one 30 degree step by the sign of each angle, and
  elevation stops at +-30 degrees;
- view index = heading step + 12 * elevation row (row 0 looks down).

`Simulator` wraps one episode with the simulator's single-episode calls and returns
`SimState` records. The navigable locations of every view of a scan are computed once,
when the scan is first used, so a step is a handful of array lookups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connectivity import ClipnavError, Connectivity, ScanGraph, UnknownViewpointError
from envs.candidates import CandidateTable, candidate_table
from envs.navigable import (
    ELEVATION_INCREMENT,
    HEADING_COUNT,
    HEADING_INCREMENT,
    VIEW_COUNT,
    CameraSettings,
    NavigableTable,
    navigable_table,
)


class InvalidActionError(ClipnavError, ValueError):
    """An action names a navigable location or candidate that the state does not have."""


@dataclass(frozen=True)
class NavigableLocation:
    """A viewpoint the agent can move to, seen from the current camera."""

    viewpoint: str
    position: tuple[float, float, float]  # metres, float32 like the simulator
    rel_heading: float  # radians, positive to the right of the camera heading
    rel_elevation: float  # radians, positive above the camera elevation
    rel_distance: float  # metres, 3-D between camera positions


@dataclass(frozen=True)
class SimState:
    """The state of one episode, with the fields of the simulator's `SimState`."""

    scan: str
    viewpoint: str
    step: int
    view_index: int
    heading: float  # radians in [0, 2 pi), 0 along +y, growing to the right
    elevation: float  # radians, positive looking up
    position: tuple[float, float, float]
    navigable_locations: tuple[NavigableLocation, ...]


def _check_finite(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InvalidActionError(f"episode {i}: {name} must be a finite number of radians, got {values[i]}")


def snap_heading_step(heading: np.ndarray) -> np.ndarray:
    """Return the 30 degree heading step (0..11) that the simulator snaps `heading` to."""
    wrapped = np.fmod(heading, 2.0 * math.pi)
    wrapped = np.where(wrapped < 0.0, wrapped + 2.0 * math.pi, wrapped)
    # C's lround rounds halves away from zero; np.round would round them to even, and
    # floor(x + 0.5) rounds 0.49999999999999994 up. x - trunc(x) is exact for x >= 0.
    ratio = wrapped / HEADING_INCREMENT
    whole = np.trunc(ratio)
    step = (whole + (ratio - whole >= 0.5)).astype(np.int64)
    return np.where(step == HEADING_COUNT, 0, step)


def snap_elevation_row(elevation: np.ndarray) -> np.ndarray:
    """Return the elevation row (0 down, 1 level, 2 up) that the simulator snaps to."""
    half = ELEVATION_INCREMENT / 2.0
    return np.where(elevation < -half, 0, np.where(elevation > half, 2, 1)).astype(np.int64)


class SceneTables:
    """Navigable and candidate tables of all scans used so far, in one global numbering.

    A viewpoint's global index is its scan's offset plus its index in the scan's file.
    Tables are appended to as new scans are used, so episodes of different scans step in
    one batch.
    """

    def __init__(self, connectivity: Connectivity, camera: CameraSettings):
        self.connectivity = connectivity
        self.camera = camera
        self.offsets: dict[str, int] = {}
        self.graphs: list[ScanGraph] = []
        self.viewpoint_ids: list[str] = []
        self.scan_of: np.ndarray = np.zeros(0, dtype=np.int32)  # [viewpoints] index in graphs
        self.positions = np.zeros((0, 3), dtype=np.float32)
        self.included = np.zeros(0, dtype=bool)
        self._navigable_parts: list[NavigableTable] = []
        self._candidate_parts: list[CandidateTable] = []
        self._navigable: NavigableTable | None = None
        self._candidates: CandidateTable | None = None

    @property
    def navigable(self) -> NavigableTable:
        """Navigable locations of all (viewpoint, view) rows of the scans used so far."""
        if self._navigable is None:
            self._navigable = _concatenate_navigable(self._navigable_parts)
        return self._navigable

    @property
    def candidates(self) -> CandidateTable:
        """Panoramic candidates of all viewpoints of the scans used so far."""
        if self._candidates is None:
            self._candidates = CandidateTable.concatenate(self._candidate_parts)
        return self._candidates

    def add_scan(self, scan: str) -> int:
        """Compute the tables of `scan` if not done yet; return its offset."""
        offset = self.offsets.get(scan)
        if offset is not None:
            return offset
        graph = self.connectivity[scan]
        offset = len(self.viewpoint_ids)
        navigable = navigable_table(graph, self.camera)
        self.offsets[scan] = offset
        self.graphs.append(graph)
        self.viewpoint_ids.extend(graph.viewpoint_ids)
        self.scan_of = np.concatenate(
            [self.scan_of, np.full(len(graph), len(self.graphs) - 1, dtype=np.int32)]
        )
        self.positions = np.concatenate([self.positions, graph.positions.astype(np.float32)])
        self.included = np.concatenate([self.included, graph.included])
        self._navigable_parts.append(_shift_navigable(navigable, offset))
        self._candidate_parts.append(candidate_table(navigable).shifted(offset))
        self._navigable = self._candidates = None  # rebuilt on next use
        return offset

    def global_index(self, scan: str, viewpoint: str) -> int:
        """Return the global index of `viewpoint`, checking it is included in `scan`."""
        offset = self.add_scan(scan)
        graph = self.graphs[self.scan_of[offset]]
        local = graph.index(viewpoint)
        if not graph.included[local]:
            raise UnknownViewpointError(
                f"viewpoint {viewpoint!r} of scan {scan!r} is excluded from the navigation "
                "graph (included: false); start episodes at included viewpoints"
            )
        return offset + local

    def scan_name(self, global_index: int) -> str:
        return self.graphs[self.scan_of[global_index]].scan


def _shift_navigable(table: NavigableTable, offset: int) -> NavigableTable:
    target = np.where(table.target >= 0, table.target + offset, -1).astype(np.int32)
    return NavigableTable(target, table.rel_heading, table.rel_elevation, table.rel_distance, table.count)


def _pad_columns(array: np.ndarray, width: int, fill: float) -> np.ndarray:
    if array.shape[1] == width:
        return array
    padding = np.full((array.shape[0], width - array.shape[1]), fill, dtype=array.dtype)
    return np.concatenate([array, padding], axis=1)


def _concatenate_navigable(parts: Sequence[NavigableTable]) -> NavigableTable:
    width = max(part.width for part in parts)
    return NavigableTable(
        target=np.concatenate([_pad_columns(p.target, width, -1) for p in parts]),
        rel_heading=np.concatenate([_pad_columns(p.rel_heading, width, 0.0) for p in parts]),
        rel_elevation=np.concatenate([_pad_columns(p.rel_elevation, width, 0.0) for p in parts]),
        rel_distance=np.concatenate([_pad_columns(p.rel_distance, width, 0.0) for p in parts]),
        count=np.concatenate([p.count for p in parts]),
    )


class BatchSimulator:
    """N episodes of the simulator's discretized mode, stepped together.

    State lives in arrays of length N: `viewpoint` (global viewpoint index), `heading_step`
    (0..11), `elevation_row` (0..2) and `step`. Read it with the array properties, or as
    `SimState` records with `state(i)` and `states()`.
    """

    def __init__(
        self,
        connectivity: Connectivity,
        camera: CameraSettings | None = None,
        tables: SceneTables | None = None,
    ):
        self.camera = camera or CameraSettings()
        self.tables = tables or SceneTables(connectivity, self.camera)
        self.viewpoint = np.zeros(0, dtype=np.int64)
        self.heading_step = np.zeros(0, dtype=np.int64)
        self.elevation_row = np.zeros(0, dtype=np.int64)
        self.step = np.zeros(0, dtype=np.int64)

    @property
    def batch_size(self) -> int:
        return len(self.viewpoint)

    # --- episodes and actions -------------------------------------------------------

    def new_episodes(
        self,
        scans: Sequence[str],
        viewpoints: Sequence[str],
        headings: Sequence[float] | np.ndarray,
        elevations: Sequence[float] | np.ndarray,
        slots: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Start one episode per entry.

        Without `slots` the batch is replaced and its size becomes `len(scans)`; with
        `slots`, only those episodes of the current batch restart.
        """
        if not len(scans) == len(viewpoints) == len(headings) == len(elevations):
            raise ValueError(
                "new_episodes expected equally long scans, viewpoints, headings and elevations, "
                f"got {len(scans)}, {len(viewpoints)}, {len(headings)}, {len(elevations)}"
            )
        viewpoint = np.array(
            [self.tables.global_index(s, v) for s, v in zip(scans, viewpoints)], dtype=np.int64
        )
        headings = np.asarray(headings, dtype=np.float64)
        elevations = np.asarray(elevations, dtype=np.float64)
        _check_finite(headings, "heading")
        _check_finite(elevations, "elevation")
        heading_step = snap_heading_step(headings)
        elevation_row = snap_elevation_row(elevations)
        if slots is None:
            self.viewpoint, self.heading_step, self.elevation_row = viewpoint, heading_step, elevation_row
            self.step = np.zeros(len(scans), dtype=np.int64)
            return
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots) != len(scans):
            raise ValueError(f"expected one slot per episode ({len(scans)}), got {len(slots)}")
        if ((slots < 0) | (slots >= self.batch_size)).any() or len(set(slots.tolist())) != len(slots):
            raise ValueError(
                f"slots must be distinct episode positions in [0, {self.batch_size}), got {slots.tolist()}"
            )
        self.viewpoint[slots] = viewpoint
        self.heading_step[slots] = heading_step
        self.elevation_row[slots] = elevation_row
        self.step[slots] = 0

    def make_actions(
        self,
        index: np.ndarray | Sequence[int],
        heading: np.ndarray | Sequence[float],
        elevation: np.ndarray | Sequence[float],
    ) -> None:
        """Move every episode to `navigable_locations[index]`, then turn by the angles' signs."""
        index = np.asarray(index, dtype=np.int64)
        heading = np.asarray(heading, dtype=np.float64)
        elevation = np.asarray(elevation, dtype=np.float64)
        self._check_batch(len(index))
        if heading.shape != index.shape or elevation.shape != index.shape:
            raise InvalidActionError(
                f"expected index, heading and elevation of shape {index.shape}, got "
                f"{heading.shape} and {elevation.shape}"
            )
        _check_finite(heading, "heading")
        _check_finite(elevation, "elevation")
        key = self.state_key
        navigable = self.tables.navigable
        counts = navigable.count[key]
        invalid = (index < 0) | (index >= counts)
        if invalid.any():
            i = int(np.flatnonzero(invalid)[0])
            raise InvalidActionError(
                f"episode {i}: navigable location index must be in [0, {counts[i]}), got "
                f"{index[i]} (viewpoint {self.tables.viewpoint_ids[self.viewpoint[i]]}, "
                f"view index {key[i] % VIEW_COUNT})"
            )

        self.viewpoint = navigable.target[key, index].astype(np.int64)

        self.heading_step = (self.heading_step + np.sign(heading).astype(np.int64)) % HEADING_COUNT
        self.elevation_row = np.clip(self.elevation_row + np.sign(elevation).astype(np.int64), 0, 2)
        self.step = self.step + 1

    def make_candidate_actions(
        self, candidate: np.ndarray | Sequence[int], moving: np.ndarray | None = None
    ) -> None:
        """Move episodes to one of their panoramic candidates.

        Equivalent to the simulator actions that EnvDrop-style agents issue: turn to the
        candidate's view, then move to it in that view. An episode ends at the candidate
        with the heading and elevation of that view, and its `step` grows by one. Where
        the bool array `moving` is False, the episode stays as it is and its entry of
        `candidate` is ignored.
        """
        candidate = np.asarray(candidate, dtype=np.int64)
        self._check_batch(len(candidate))
        if moving is None:
            moving = np.ones(len(candidate), dtype=bool)
        moving = np.asarray(moving, dtype=bool)
        if moving.shape != candidate.shape:
            raise InvalidActionError(f"expected a moving mask of shape {candidate.shape}, got {moving.shape}")
        table = self.tables.candidates
        here = self.viewpoint[moving]
        chosen = candidate[moving]
        counts = table.count[here]
        invalid = (chosen < 0) | (chosen >= counts)
        if invalid.any():
            i = int(np.flatnonzero(moving)[np.flatnonzero(invalid)[0]])
            raise InvalidActionError(
                f"episode {i}: candidate index must be in [0, {table.count[self.viewpoint[i]]}), "
                f"got {candidate[i]} (viewpoint {self.tables.viewpoint_ids[self.viewpoint[i]]})"
            )
        view = table.view_index[here, chosen]
        self.viewpoint[moving] = table.target[here, chosen]
        self.heading_step[moving] = view % HEADING_COUNT
        self.elevation_row[moving] = view // HEADING_COUNT
        self.step[moving] += 1

    def _check_batch(self, size: int) -> None:
        if self.batch_size == 0:
            raise InvalidActionError("no episode is running: call new_episodes first")
        if size != self.batch_size:
            raise InvalidActionError(f"expected {self.batch_size} actions, one per episode, got {size}")

    # --- state arrays ---------------------------------------------------------------

    @property
    def view_index(self) -> np.ndarray:
        return self.elevation_row * HEADING_COUNT + self.heading_step

    @property
    def state_key(self) -> np.ndarray:
        """Row of each episode in the navigable table: viewpoint * 36 + view index."""
        return self.viewpoint * VIEW_COUNT + self.elevation_row * HEADING_COUNT + self.heading_step

    @property
    def heading(self) -> np.ndarray:
        return self.heading_step * HEADING_INCREMENT

    @property
    def elevation(self) -> np.ndarray:
        return (self.elevation_row - 1) * ELEVATION_INCREMENT

    def navigable_arrays(self) -> dict[str, np.ndarray]:
        """Navigable locations of every episode: arrays of shape [N, width], and `count` [N]."""
        key = self.state_key
        table = self.tables.navigable
        return {
            "target": table.target[key],
            "rel_heading": table.rel_heading[key],
            "rel_elevation": table.rel_elevation[key],
            "rel_distance": table.rel_distance[key],
            "count": table.count[key],
        }

    # --- records --------------------------------------------------------------------

    def state(self, i: int) -> SimState:
        """Return episode `i` as a `SimState` record."""
        tables = self.tables
        key = int(self.state_key[i])
        table = tables.navigable
        locations = tuple(
            NavigableLocation(
                viewpoint=tables.viewpoint_ids[target],
                position=tuple(float(x) for x in tables.positions[target]),
                rel_heading=float(table.rel_heading[key, slot]),
                rel_elevation=float(table.rel_elevation[key, slot]),
                rel_distance=float(table.rel_distance[key, slot]),
            )
            for slot, target in enumerate(table.target[key, : table.count[key]])
        )
        viewpoint = int(self.viewpoint[i])
        return SimState(
            scan=tables.scan_name(viewpoint),
            viewpoint=tables.viewpoint_ids[viewpoint],
            step=int(self.step[i]),
            view_index=int(self.view_index[i]),
            heading=float(self.heading[i]),
            elevation=float(self.elevation[i]),
            position=tuple(float(x) for x in tables.positions[viewpoint]),
            navigable_locations=locations,
        )

    def states(self) -> list[SimState]:
        return [self.state(i) for i in range(self.batch_size)]


class Simulator:
    """One episode with the simulator's calls: `new_episode`, `make_action`, `state`."""

    def __init__(self, connectivity: Connectivity, camera: CameraSettings | None = None):
        self._batch = BatchSimulator(connectivity, camera)

    def new_episode(self, scan: str, viewpoint: str, heading: float = 0.0, elevation: float = 0.0) -> None:
        """Start an episode at `viewpoint`, snapping heading and elevation to the 36 views."""
        self._batch.new_episodes([scan], [viewpoint], [heading], [elevation])

    def make_action(self, index: int, heading: float = 0.0, elevation: float = 0.0) -> None:
        """Move to `navigable_locations[index]`, then turn one step by the sign of each angle."""
        self._batch.make_actions([index], [heading], [elevation])

    @property
    def state(self) -> SimState:
        if self._batch.batch_size == 0:
            raise InvalidActionError("no state before new_episode")
        return self._batch.state(0)
