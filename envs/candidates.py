"""Panoramic candidates: the action space of Speaker-Follower, EnvDrop and CLIP-ViL.

At a viewpoint the agent may move to any neighbour that is navigable in at least one of
the 36 views. Each neighbour is a candidate once, in the view where it lies closest to
the view centre, by sqrt(rel_heading^2 + rel_elevation^2). The lowest view index wins
ties. Candidates are ordered by first appearance when the views are scanned in
index order 0..35 and each view's navigable locations in the simulator's order, the
order EnvDrop's candidate lists have.

Each candidate carries:
- `view_index`: the view (0..35) in which it is closest to the centre;
- `heading`: absolute bearing in radians, that view's heading plus the rel_heading seen
  from it; relative to an agent it is wrapped into [-pi, pi), positive to the right;
- `elevation`: absolute elevation in radians of the line from the camera to the
  candidate's camera, positive up. It does not depend on where the agent looks, which
  matches EnvDrop, whose candidates are always computed from a level camera;
- `distance`: 3-D distance in metres between the two camera positions;
- `slot`: its index in the navigable locations of that view, the simulator action that
  reaches it after turning to the view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.navigable import VIEW_COUNT, NavigableTable, view_elevation, view_heading


@dataclass(frozen=True)
class CandidateTable:
    """Candidates of every viewpoint of one or more scans, padded to `width`; row = viewpoint."""

    target: np.ndarray  # [viewpoints, width] int32, viewpoint index, -1 when unused
    view_index: np.ndarray  # [viewpoints, width] int16
    slot: np.ndarray  # [viewpoints, width] int16
    heading: np.ndarray  # [viewpoints, width] float64, absolute, radians
    elevation: np.ndarray  # [viewpoints, width] float64, absolute, radians
    distance: np.ndarray  # [viewpoints, width] float64, metres
    count: np.ndarray  # [viewpoints] int32

    @property
    def width(self) -> int:
        return self.target.shape[1]

    def shifted(self, offset: int) -> CandidateTable:
        """Return the table with viewpoint indices moved by `offset`."""
        target = np.where(self.target >= 0, self.target + offset, -1).astype(np.int32)
        return CandidateTable(
            target, self.view_index, self.slot, self.heading, self.elevation, self.distance, self.count
        )

    @staticmethod
    def concatenate(parts: Sequence[CandidateTable]) -> CandidateTable:
        """Stack tables of several scans, padding them to the widest."""
        width = max(part.width for part in parts)

        def stack(name: str, fill: float) -> np.ndarray:
            arrays = []
            for part in parts:
                array = getattr(part, name)
                if array.shape[1] < width:
                    pad = np.full((array.shape[0], width - array.shape[1]), fill, dtype=array.dtype)
                    array = np.concatenate([array, pad], axis=1)
                arrays.append(array)
            return np.concatenate(arrays)

        return CandidateTable(
            target=stack("target", -1),
            view_index=stack("view_index", 0),
            slot=stack("slot", 0),
            heading=stack("heading", 0.0),
            elevation=stack("elevation", 0.0),
            distance=stack("distance", 0.0),
            count=np.concatenate([part.count for part in parts]),
        )


def candidate_table(navigable: NavigableTable) -> CandidateTable:
    """Derive the panoramic candidates of every viewpoint from its 36 navigable lists."""
    rows, width = navigable.target.shape
    viewpoint_count = rows // VIEW_COUNT

    # Every navigable neighbour in every view: slot 0 (the viewpoint itself) is skipped.
    slots = np.arange(width)[None, :]
    used = (slots >= 1) & (slots < navigable.count[:, None])
    row, slot = np.nonzero(used)
    here = row // VIEW_COUNT
    view = row % VIEW_COUNT
    there = navigable.target[row, slot]
    rel_heading = navigable.rel_heading[row, slot]
    rel_elevation = navigable.rel_elevation[row, slot]
    key = np.sqrt(rel_heading * rel_heading + rel_elevation * rel_elevation)
    appearance = view * width + slot

    # The best entry of each (here, there) pair: smallest key, then lowest view index.
    pair = here.astype(np.int64) * viewpoint_count + there
    best_order = np.lexsort((view, key, pair))
    first_of_pair = np.ones(len(best_order), dtype=bool)
    first_of_pair[1:] = pair[best_order][1:] != pair[best_order][:-1]
    best = best_order[first_of_pair]  # one entry per pair, in pair order

    # Each pair's first appearance decides its place among the viewpoint's candidates.
    group_start = np.flatnonzero(first_of_pair)
    first_seen = np.minimum.reduceat(appearance[best_order], group_start)
    order = np.lexsort((first_seen, here[best]))
    best = best[order]

    best_here = here[best]
    counts = np.bincount(best_here, minlength=viewpoint_count)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    column = np.arange(len(best)) - starts[best_here]

    table_width = max(int(counts.max(initial=0)), 1)
    shape = (viewpoint_count, table_width)
    target = np.full(shape, -1, dtype=np.int32)
    view_index = np.zeros(shape, dtype=np.int16)
    slot_table = np.zeros(shape, dtype=np.int16)
    heading = np.zeros(shape)
    elevation = np.zeros(shape)
    distance = np.zeros(shape)
    target[best_here, column] = there[best]
    view_index[best_here, column] = view[best]
    slot_table[best_here, column] = slot[best]
    heading[best_here, column] = view_heading(view[best]) + rel_heading[best]
    elevation[best_here, column] = view_elevation(view[best]) + rel_elevation[best]
    distance[best_here, column] = navigable.rel_distance[row[best], slot[best]]
    return CandidateTable(
        target, view_index, slot_table, heading, elevation, distance, counts.astype(np.int32)
    )


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap angles in radians into [-pi, pi)."""
    wrapped = np.mod(np.asarray(angle) + math.pi, 2.0 * math.pi) - math.pi
    # np.mod rounds a tiny negative argument up to exactly 2 pi, which lands on +pi.
    return np.where(wrapped >= math.pi, wrapped - 2.0 * math.pi, wrapped)
