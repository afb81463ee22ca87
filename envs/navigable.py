"""Navigable locations and panoramic candidates of every view of a scan, computed at once.

With discretized viewing angles the Matterport3D Simulator can only be in one of 36
views at a viewpoint, so the navigable locations it would report depend only on the
viewpoint and the view index. `navigable_table` computes them for all viewpoints and
views of a scan with NumPy, reproducing the simulator's arithmetic: positions and
directions in float32 (glm::vec3), the field-of-view test in double, `rel_heading` from
float32 atan2 and `rel_elevation` from double atan2.

Angles follow the simulator. Heading 0 looks along world +y and grows when turning
right (towards +x), in [0, 2 pi). Elevation is positive looking up. View index
= heading step + 12 * elevation row, where row 0 looks 30 degrees down, row 1 level and
row 2 30 degrees up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from connectivity import ScanGraph

HEADING_COUNT = 12
ELEVATION_COUNT = 3
VIEW_COUNT = HEADING_COUNT * ELEVATION_COUNT
HEADING_INCREMENT = math.pi * 2.0 / HEADING_COUNT
ELEVATION_INCREMENT = math.pi / 6.0


@dataclass(frozen=True)
class CameraSettings:
    """Camera of the simulator. Only the horizontal field of view matters with rendering off.

    A neighbour is navigable when its horizontal bearing lies within
    `vfov_rad * width / height / 2` of the camera heading (40 degrees at the defaults),
    the simulator's linear stand-in for half the horizontal field of view.
    """

    width: int = 640
    height: int = 480
    vfov_rad: float = math.radians(60)
    restricted_navigation: bool = True
    """If False, every neighbour is navigable whatever the heading, as with the simulator's
    `setRestrictedNavigation(False)`."""

    @property
    def cos_half_hfov(self) -> float:
        return math.cos(self.vfov_rad * self.width / self.height / 2.0)


def view_heading(view_index: np.ndarray | int) -> np.ndarray:
    """Camera heading in radians of a view index, in [0, 2 pi)."""
    return (np.asarray(view_index) % HEADING_COUNT) * HEADING_INCREMENT


def view_elevation(view_index: np.ndarray | int) -> np.ndarray:
    """Camera elevation in radians of a view index: -30, 0 or +30 degrees."""
    return (np.asarray(view_index) // HEADING_COUNT - 1) * ELEVATION_INCREMENT


@dataclass(frozen=True)
class NavigableTable:
    """Navigable locations of every (viewpoint, view) of one scan, padded to `width`.

    Row `viewpoint * 36 + view_index` lists the simulator's `navigableLocations` in its
    order: slot 0 is the viewpoint itself (relative values 0), then the neighbours sorted
    by sqrt(rel_heading^2 + rel_elevation^2). Unused slots hold target -1.
    """

    target: np.ndarray  # [viewpoints * 36, width] int32, viewpoint index in the scan
    rel_heading: np.ndarray  # [viewpoints * 36, width] float64, radians, right positive
    rel_elevation: np.ndarray  # [viewpoints * 36, width] float64, radians, up positive
    rel_distance: np.ndarray  # [viewpoints * 36, width] float64, metres
    count: np.ndarray  # [viewpoints * 36] int32, filled slots

    @property
    def width(self) -> int:
        return self.target.shape[1]


def navigable_table(graph: ScanGraph, camera: CameraSettings = CameraSettings()) -> NavigableTable:
    """Compute the simulator's navigable locations for all viewpoints and views of a scan."""
    count = len(graph)
    f32 = np.float32
    positions = graph.positions.astype(f32)  # the simulator parses poses as float

    # Directed pairs (here, there) that the simulator considers: there is included and
    # unobstructed from here. Episodes cannot start at an excluded viewpoint, and no edge leads to one.
    pair_mask = graph.unobstructed & graph.included[None, :]
    np.fill_diagonal(pair_mask, False)
    here, there = np.nonzero(pair_mask)  # [pairs]

    offset = positions[there] - positions[here]  # [pairs, 3] float32
    dx, dy, dz = offset[:, 0], offset[:, 1], offset[:, 2]
    squared_xy = dx * dx + dy * dy
    distance = np.sqrt(squared_xy + dz * dz).astype(np.float64)  # glm::length in float
    length_xy = np.sqrt(squared_xy)
    elevation_to_target = np.arctan2(dz.astype(np.float64), length_xy.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_length = f32(1.0) / length_xy  # glm::normalize multiplies by 1/sqrt
    unit_x, unit_y = dx * inverse_length, dy * inverse_length

    # Camera direction of each of the 12 headings, as float32 like glm::vec3.
    headings = np.arange(HEADING_COUNT) * HEADING_INCREMENT
    adjusted = math.pi / 2.0 - headings
    camera_x = np.cos(adjusted).astype(f32)  # [12]
    camera_y = np.sin(adjusted).astype(f32)

    cos_angle = unit_x[:, None] * camera_x[None, :] + unit_y[:, None] * camera_y[None, :]
    visible = cos_angle.astype(np.float64) >= camera.cos_half_hfov  # [pairs, 12]
    if not camera.restricted_navigation:
        visible[:] = True
    cross = dx[:, None] * camera_y[None, :] - dy[:, None] * camera_x[None, :]
    dot = dx[:, None] * camera_x[None, :] + dy[:, None] * camera_y[None, :]
    rel_heading = np.arctan2(cross, dot).astype(np.float64)  # [pairs, 12]

    # Expand to the 36 views: the test ignores elevation, rel_elevation depends on it.
    elevations = (np.arange(ELEVATION_COUNT) - 1) * ELEVATION_INCREMENT
    pair_index, row, step = np.nonzero(np.broadcast_to(visible[:, None, :], (len(here), 3, 12)))
    view = row * HEADING_COUNT + step
    entry_here = here[pair_index]
    entry_heading = rel_heading[pair_index, step]
    entry_elevation = elevation_to_target[pair_index] - elevations[row]
    entry_key = np.sqrt(entry_heading * entry_heading + entry_elevation * entry_elevation)

    # Sort each (viewpoint, view) group by angular distance from the view centre. Ties keep
    # file order, because the simulator's insertion sort does so on these short lists.
    group = entry_here * VIEW_COUNT + view
    order = np.lexsort((there[pair_index], entry_key, group))
    group = group[order]
    group_sizes = np.bincount(group, minlength=count * VIEW_COUNT)
    group_starts = np.concatenate(([0], np.cumsum(group_sizes)[:-1]))
    slot = np.arange(len(group)) - group_starts[group] + 1  # slot 0 is the viewpoint itself

    width = int(group_sizes.max(initial=0)) + 1
    rows = count * VIEW_COUNT
    target = np.full((rows, width), -1, dtype=np.int32)
    table_heading = np.zeros((rows, width))
    table_elevation = np.zeros((rows, width))
    table_distance = np.zeros((rows, width))
    target[:, 0] = np.repeat(np.arange(count, dtype=np.int32), VIEW_COUNT)
    target[group, slot] = there[pair_index][order]
    table_heading[group, slot] = entry_heading[order]
    table_elevation[group, slot] = entry_elevation[order]
    table_distance[group, slot] = distance[pair_index][order]
    return NavigableTable(
        target=target,
        rel_heading=table_heading,
        rel_elevation=table_elevation,
        rel_distance=table_distance,
        count=(group_sizes + 1).astype(np.int32),
    )
