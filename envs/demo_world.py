"""A small generated world in the real data formats, so that clipnav runs without the real data.

`build_demo_world(out_dir)` writes a data folder that every program accepts as `--data-dir`:

    connectivity/scans.txt, connectivity/<scan>_connectivity.json
    R2R/R2R_train.json, R2R_val_seen.json, R2R_val_unseen.json, R2R_test.json
    features/demo_views.tsv
    README.md, demo_world.json (the generator settings)

The scans are made-up houses, not Matterport3D scans. Each house is a floor plan of
rectangular rooms with doors in the shared walls (one house has an upper floor reached
by stairs). Viewpoints sit on a jittered grid in every room and on both sides of every
door. Two viewpoints are unobstructed when they are at most `MAX_EDGE_M` apart and no
wall lies between them, so edges stay inside a room or pass through a door.

Landmarks (a red sofa, a piano, a fridge, ...) stand in the rooms. R2R paths are
shortest paths that end beside a landmark. Their three instructions are templated
English that names the rooms entered, the landmarks passed and the landmark at the
goal, with turn words computed from the path's geometry. View features come from the
same layout. A view's feature is the sum of the embeddings of the landmarks in its field
of view and in line of sight, each weakened with distance, plus the embedding of the room
it looks into and a little Gaussian noise. An agent can therefore learn to ground the
instructions in the features.

Everything is drawn from one seed, so the same seed writes byte-identical files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectivity import ScanGraph, parse_scan_graph
from connectivity.paths import IN_CHECKOUT, PROJECT_ROOT
from envs.features import write_tsv_features
from envs.io import atomic_write, write_json_atomic
from envs.r2r import R2R_SPLITS

logger = logging.getLogger(__name__)

DEMO_DIR_ENV = "CLIPNAV_DEMO_DIR"
DEFAULT_SEED = 0
DEFAULT_FEATURE_DIM = 64
FORMAT_VERSION = 1
"""Raised whenever the generator's output changes, so that `ensure_demo_world` rebuilds old worlds."""

FEATURES_FILE = Path("features") / "demo_views.tsv"
MANIFEST_FILE = "demo_world.json"
README_FILE = "README.md"

# Camera of the Matterport3D Simulator's discretized views.
IMAGE_WIDTH = 640
IMAGE_HEIGHT = 480
VFOV_DEG = 60.0
HALF_VFOV_RAD = math.radians(VFOV_DEG) / 2.0
HALF_HFOV_RAD = math.atan(math.tan(HALF_VFOV_RAD) * IMAGE_WIDTH / IMAGE_HEIGHT)  # 37.6 degrees
HEADING_STEP_RAD = math.radians(30.0)
ELEVATION_STEP_RAD = math.radians(30.0)

# Geometry of the houses, in metres.
MAX_EDGE_M = 3.5
"""Two viewpoints in line of sight are unobstructed (joined by an edge) up to this distance."""
MAX_VISIBLE_M = 12.0
FLOOR_HEIGHT_M = 3.0
CAMERA_HEIGHT_M = 1.5
DOOR_WIDTH_M = 1.0
DOOR_VIEWPOINT_OFFSET_M = 0.7
WALL_MARGIN_M = 0.3

# Paths and instructions.
MIN_PATH_VIEWPOINTS = 3
MAX_PATH_VIEWPOINTS = 6
MIN_PATH_M = 3.0
GOAL_LANDMARK_MAX_M = 1.3
"""A viewpoint is beside a landmark when that landmark is the nearest one within this distance."""
GOAL_LANDMARK_MARGIN_M = 0.4
"""The second-nearest landmark must be this much farther, so that the instruction is unambiguous."""
STRAIGHT_MAX_DEG = 35.0
AROUND_MIN_DEG = 145.0
VAL_SEEN_PATHS_PER_SCAN = 8
UNSEEN_PATHS_PER_SCAN = 16

# Features.
LANDMARK_HALF_DISTANCE_M = 3.0
"""A landmark's weight in a view is 1 / (1 + (distance / this)^2): 0.5 at this distance."""
ROOM_WEIGHT = 0.5
ROOM_PROBE_M = 3.0
NOISE_STD = 0.02

# Independent random streams, so that a change to one part leaves the others' draws alone.
_LAYOUT_STREAM, _EMBEDDING_STREAM, _FEATURE_STREAM, _PATH_STREAM = range(4)


# --- Floor plans ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    """A rectangular room: its name (unique in its house), extent in metres and contents."""

    name: str
    x0: float
    y0: float
    x1: float
    y1: float
    grid: tuple[int, int]  # viewpoints across x and y before those near doors are dropped
    landmarks: tuple[str, ...]
    floor: int = 0

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        return self.x0 + margin <= x <= self.x1 - margin and self.y0 + margin <= y <= self.y1 - margin


@dataclass(frozen=True)
class Door:
    """A gap of `DOOR_WIDTH_M` in the wall between two rooms, centred on (x, y)."""

    room_a: str
    room_b: str
    x: float
    y: float


@dataclass(frozen=True)
class Stairs:
    """Stairs from `foot` in a lower room to `top` in the room above, walked as one edge."""

    lower_room: str
    upper_room: str
    foot: tuple[float, float]
    top: tuple[float, float]


@dataclass(frozen=True)
class FloorPlan:
    """A house: rooms, doors, stairs and, optionally, one viewpoint excluded from the graph."""

    scan: str
    rooms: tuple[Room, ...]
    doors: tuple[Door, ...]
    stairs: tuple[Stairs, ...] = ()
    excluded_at: tuple[str, float, float] | None = None  # room name, x, y

    def room(self, name: str) -> Room:
        for room in self.rooms:
            if room.name == name:
                return room
        raise KeyError(f"floor plan {self.scan} has no room {name!r}")


# Height of each landmark's centre above its floor, in metres; also the landmark vocabulary.
LANDMARK_HEIGHTS: dict[str, float] = {
    "armchair": 0.45,
    "bathtub": 0.5,
    "bed": 0.5,
    "blue door": 1.0,
    "bookshelf": 1.0,
    "chandelier": 2.3,
    "coat rack": 1.3,
    "desk": 0.75,
    "dining table": 0.75,
    "fireplace": 0.7,
    "fridge": 0.9,
    "fruit bowl": 0.95,
    "grandfather clock": 1.2,
    "green plant": 0.6,
    "grey sofa": 0.45,
    "mirror": 1.5,
    "painting": 1.6,
    "piano": 0.9,
    "red sofa": 0.45,
    "round window": 1.6,
    "shower": 1.2,
    "sink": 0.9,
    "staircase": 1.0,
    "stove": 0.9,
    "television": 1.1,
    "wardrobe": 1.0,
    "white dresser": 0.8,
    "yellow vase": 1.0,
}

FLOOR_PLANS: tuple[FloorPlan, ...] = (
    FloorPlan(
        scan="demoCottage",
        rooms=(
            Room("living room", 0, 0, 6, 3, (2, 1), ("red sofa", "piano", "green plant")),
            Room("kitchen", 6, 0, 10, 3, (2, 1), ("fridge", "stove")),
            Room("hallway", 0, 3, 10, 5, (5, 1), ("coat rack", "grandfather clock", "painting")),
            Room("bedroom", 0, 5, 5, 8, (2, 1), ("bed", "wardrobe")),
            Room("bathroom", 5, 5, 7.5, 8, (1, 1), ("bathtub",)),
            Room("study", 7.5, 5, 10, 8, (1, 1), ("desk",)),
        ),
        doors=(
            Door("hallway", "living room", 3.0, 3.0),
            Door("hallway", "kitchen", 8.0, 3.0),
            Door("living room", "kitchen", 6.0, 1.5),
            Door("hallway", "bedroom", 2.5, 5.0),
            Door("hallway", "bathroom", 6.25, 5.0),
            Door("hallway", "study", 8.75, 5.0),
        ),
        excluded_at=("living room", 4.2, 0.7),
    ),
    FloorPlan(
        scan="demoTerrace",
        rooms=(
            Room("hallway", 0, 0, 2, 7, (1, 3), ("blue door", "staircase")),
            Room("living room", 2, 0, 9, 3.5, (3, 1), ("grey sofa", "television", "fireplace")),
            Room("dining room", 2, 3.5, 5.5, 7, (2, 1), ("dining table", "chandelier")),
            Room("kitchen", 5.5, 3.5, 9, 7, (2, 1), ("fridge", "sink", "fruit bowl")),
            Room("landing", 0, 0, 2, 7, (1, 3), ("yellow vase", "round window"), floor=1),
            Room("bedroom", 2, 0, 7, 3.5, (3, 1), ("bed", "white dresser", "mirror"), floor=1),
            Room("bathroom", 2, 3.5, 5, 7, (1, 1), ("shower",), floor=1),
        ),
        doors=(
            Door("hallway", "living room", 2.0, 1.5),
            Door("hallway", "dining room", 2.0, 5.2),
            Door("living room", "kitchen", 7.2, 3.5),
            Door("dining room", "kitchen", 5.5, 5.2),
            Door("landing", "bedroom", 2.0, 1.5),
            Door("landing", "bathroom", 2.0, 5.2),
        ),
        stairs=(Stairs("hallway", "landing", foot=(0.9, 3.6), top=(0.9, 6.3)),),
    ),
    FloorPlan(
        scan="demoLoftApt",
        rooms=(
            Room("living room", 0, 0, 7, 4, (3, 2), ("red sofa", "television", "green plant")),
            Room("kitchen", 7, 0, 10, 4, (1, 2), ("fridge", "stove")),
            Room("bedroom", 0, 4, 5, 7, (2, 1), ("bed", "wardrobe")),
            Room("bathroom", 5, 4, 7, 7, (1, 1), ("bathtub",)),
        ),
        doors=(
            Door("living room", "kitchen", 7.0, 2.0),
            Door("living room", "bedroom", 2.5, 4.0),
            Door("living room", "bathroom", 6.0, 4.0),
        ),
    ),
    FloorPlan(
        scan="demoBeachHs",
        rooms=(
            Room("hallway", 3, 0, 5, 8, (1, 3), ("grandfather clock", "painting")),
            Room("living room", 0, 0, 3, 5, (1, 2), ("grey sofa", "fireplace", "piano")),
            Room("kitchen", 5, 0, 8, 4, (1, 2), ("fridge", "fruit bowl")),
            Room("bedroom", 5, 4, 8, 8, (1, 2), ("bed", "mirror")),
            Room("study", 0, 5, 3, 8, (2, 1), ("desk", "green plant")),
        ),
        doors=(
            Door("hallway", "living room", 3.0, 2.5),
            Door("hallway", "kitchen", 5.0, 2.0),
            Door("hallway", "bedroom", 5.0, 6.0),
            Door("hallway", "study", 3.0, 6.5),
        ),
    ),
)

SPLIT_SCANS: dict[str, tuple[str, ...]] = {
    "train": ("demoCottage", "demoTerrace"),
    "val_seen": ("demoCottage", "demoTerrace"),
    "val_unseen": ("demoLoftApt",),
    "test": ("demoBeachHs",),
}
"""Scans of each R2R split. As in R2R, val_unseen and test scans never appear in train."""
DEMO_SCANS: tuple[str, ...] = tuple(plan.scan for plan in FLOOR_PLANS)


# --- The generated layout ------------------------------------------------------------------


@dataclass(frozen=True)
class Viewpoint:
    """A panorama location: camera position in metres (z up) and the room it is in."""

    viewpoint_id: str
    room: str
    floor: int
    position: tuple[float, float, float]
    height: float  # camera height above the floor, metres
    yaw: float  # radians, the heading the camera's pose faces
    included: bool = True


@dataclass(frozen=True)
class Landmark:
    """An object in a room, placed beside the viewpoint `anchor`; `position` is its centre in metres."""

    name: str
    room: str
    floor: int
    position: tuple[float, float, float]
    anchor: str


@dataclass
class DemoScan:
    """One generated house: its plan, viewpoints in connectivity-file order, landmarks and graph."""

    plan: FloorPlan
    viewpoints: list[Viewpoint]
    landmarks: list[Landmark]
    stair_pairs: list[tuple[int, int]]  # viewpoint indices joined by stairs
    entries: list[dict[str, Any]] = field(default_factory=list)  # the connectivity JSON
    graph: ScanGraph | None = None
    features: np.ndarray | None = None  # [viewpoints, 36, D] float32

    @property
    def scan(self) -> str:
        return self.plan.scan


@dataclass
class DemoWorld:
    """A whole generated world in memory: scans, embeddings and the R2R splits."""

    seed: int
    feature_dim: int
    scans: dict[str, DemoScan]
    embeddings: dict[str, np.ndarray]  # landmark names and "room:<name>" -> unit vector [D]
    splits: dict[str, list[dict[str, Any]]]  # split name -> R2R JSON items

    def landmark_embedding(self, name: str) -> np.ndarray:
        return self.embeddings[name]

    def room_embedding(self, name: str) -> np.ndarray:
        return self.embeddings[f"room:{name}"]


# --- Geometry ------------------------------------------------------------------------------


def bearing(dx: float, dy: float) -> float:
    """Return the simulator heading of direction (dx, dy): 0 along +y, growing towards +x, in [0, 2 pi)."""
    return math.atan2(dx, dy) % (2.0 * math.pi)


def wrap_angle(angle: float) -> float:
    """Return `angle` wrapped into [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _wall_segments(plan: FloorPlan, floor: int) -> np.ndarray:
    """Return the walls of a floor as segments [walls, 4] (x0, y0, x1, y1), door gaps left out."""
    segments: list[tuple[float, float, float, float]] = []
    for room in plan.rooms:
        if room.floor != floor:
            continue
        doors = [door for door in plan.doors if room.name in (door.room_a, door.room_b)]
        for fixed_axis, fixed, start, end in (
            ("y", room.y0, room.x0, room.x1),
            ("y", room.y1, room.x0, room.x1),
            ("x", room.x0, room.y0, room.y1),
            ("x", room.x1, room.y0, room.y1),
        ):
            # Door centres on this edge, measured along it.
            gaps = sorted(
                (door.x if fixed_axis == "y" else door.y)
                for door in doors
                if abs((door.y if fixed_axis == "y" else door.x) - fixed) < 1e-9
            )
            cursor = start
            for centre in gaps:
                if centre - DOOR_WIDTH_M / 2.0 > cursor:
                    segments.append(_edge_piece(fixed_axis, fixed, cursor, centre - DOOR_WIDTH_M / 2.0))
                cursor = centre + DOOR_WIDTH_M / 2.0
            if end > cursor:
                segments.append(_edge_piece(fixed_axis, fixed, cursor, end))
    return np.array(segments, dtype=np.float64).reshape(-1, 4)


def _edge_piece(fixed_axis: str, fixed: float, a: float, b: float) -> tuple[float, float, float, float]:
    return (a, fixed, b, fixed) if fixed_axis == "y" else (fixed, a, fixed, b)


def _line_of_sight(walls: np.ndarray, p: Sequence[float], q: Sequence[float]) -> bool:
    """Return whether the floor-plan segment p -> q crosses no wall."""
    if len(walls) == 0:
        return True
    a, b = walls[:, :2], walls[:, 2:]
    p2, q2 = np.asarray(p[:2], dtype=np.float64), np.asarray(q[:2], dtype=np.float64)
    side_p = _cross(b - a, p2 - a)
    side_q = _cross(b - a, q2 - a)
    side_a = _cross(q2 - p2, a - p2)
    side_b = _cross(q2 - p2, b - p2)
    crossing = (side_p * side_q < 0) & (side_a * side_b < 0)
    return not bool(crossing.any())


def _ray_to_wall(walls: np.ndarray, p: Sequence[float], direction: np.ndarray) -> float:
    """Return the distance from p along `direction` (a unit vector) to the first wall, inf if none."""
    if len(walls) == 0:
        return math.inf
    a, edge = walls[:, :2], walls[:, 2:] - walls[:, :2]
    offset = a - np.asarray(p[:2], dtype=np.float64)
    denominator = _cross(np.broadcast_to(direction, edge.shape), edge)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = _cross(offset, edge) / denominator
        s = _cross(offset, np.broadcast_to(direction, edge.shape)) / denominator
    hits = (np.abs(denominator) > 1e-12) & (t > 1e-9) & (s >= 0.0) & (s <= 1.0)
    return float(t[hits].min()) if hits.any() else math.inf


def _room_at(plan: FloorPlan, floor: int, x: float, y: float) -> str | None:
    for room in plan.rooms:
        if room.floor == floor and room.contains(x, y):
            return room.name
    return None


# --- Layout: viewpoints and landmarks ------------------------------------------------------


def _viewpoint_id(seed: int, scan: str, index: int) -> str:
    return hashlib.sha256(f"clipnav-demo/{seed}/{scan}/{index}".encode()).hexdigest()[:32]


def _door_sides(plan: FloorPlan, door: Door) -> tuple[np.ndarray, np.ndarray]:
    """Return unit vectors from the door centre into room_a and into room_b."""
    room = plan.room(door.room_a)
    if abs(door.x - room.x1) < 1e-9:
        into_a = np.array([-1.0, 0.0])
    elif abs(door.x - room.x0) < 1e-9:
        into_a = np.array([1.0, 0.0])
    elif abs(door.y - room.y1) < 1e-9:
        into_a = np.array([0.0, -1.0])
    elif abs(door.y - room.y0) < 1e-9:
        into_a = np.array([0.0, 1.0])
    else:
        raise ValueError(
            f"floor plan {plan.scan}: door at ({door.x}, {door.y}) is not on a wall of {room.name}"
        )
    return into_a, -into_a


_Spot = tuple[str, int, float, float, bool]  # room name, floor, x, y, included


def _place_viewpoints(plan: FloorPlan, rng: np.random.Generator) -> tuple[list[_Spot], list[tuple[int, int]]]:
    """Return the spot of every viewpoint and the stair pairs, in generation order."""
    spots: list[_Spot] = []

    # Both sides of every door: the jitter along the wall stays well inside the gap, so the
    # two viewpoints always see each other through it.
    for door in plan.doors:
        sides = _door_sides(plan, door)
        along = np.abs(sides[0][::-1])  # unit vector along the wall
        for room_name, into in zip((door.room_a, door.room_b), sides):
            depth = DOOR_VIEWPOINT_OFFSET_M + rng.uniform(-0.1, 0.1)
            x, y = np.array([door.x, door.y]) + depth * into + rng.uniform(-0.2, 0.2) * along
            spots.append((room_name, plan.room(room_name).floor, float(x), float(y), True))

    stair_pairs = []
    for stairs in plan.stairs:
        for room_name, (x, y) in ((stairs.lower_room, stairs.foot), (stairs.upper_room, stairs.top)):
            jitter = rng.uniform(-0.1, 0.1, size=2)
            spots.append((room_name, plan.room(room_name).floor, x + jitter[0], y + jitter[1], True))
        stair_pairs.append((len(spots) - 2, len(spots) - 1))

    # A jittered grid fills each room, skipping points near the viewpoints already there.
    for room in plan.rooms:
        columns, rows = room.grid
        for row in range(rows):
            for column in range(columns):
                x = room.x0 + (column + 0.5) * (room.x1 - room.x0) / columns + rng.uniform(-0.25, 0.25)
                y = room.y0 + (row + 0.5) * (room.y1 - room.y0) / rows + rng.uniform(-0.25, 0.25)
                x = min(max(x, room.x0 + WALL_MARGIN_M), room.x1 - WALL_MARGIN_M)
                y = min(max(y, room.y0 + WALL_MARGIN_M), room.y1 - WALL_MARGIN_M)
                crowded = any(
                    spot[0] == room.name and math.hypot(spot[2] - x, spot[3] - y) < 1.0 for spot in spots
                )
                if not crowded:
                    spots.append((room.name, room.floor, x, y, True))

    if plan.excluded_at is not None:
        room_name, x, y = plan.excluded_at
        spots.append((room_name, plan.room(room_name).floor, x, y, False))
    return spots, stair_pairs


def _build_viewpoints(
    plan: FloorPlan, seed: int, rng: np.random.Generator
) -> tuple[list[Viewpoint], list[tuple[int, int]]]:
    """Place the viewpoints of a house and shuffle them into connectivity-file order."""
    spots, stair_pairs = _place_viewpoints(plan, rng)

    # Real connectivity files list viewpoints in no spatial order, and the simulator visits
    # neighbours in file order, so the file order is shuffled too.
    order = rng.permutation(len(spots))
    position_in_file = np.empty(len(spots), dtype=np.int64)
    position_in_file[order] = np.arange(len(spots))

    viewpoints = []
    for index, spot in enumerate(spots[i] for i in order):
        room_name, floor, x, y, included = spot
        height = round(CAMERA_HEIGHT_M + float(rng.uniform(-0.06, 0.06)), 4)
        z = round(floor * FLOOR_HEIGHT_M + height, 4)
        viewpoints.append(
            Viewpoint(
                viewpoint_id=_viewpoint_id(seed, plan.scan, index),
                room=room_name,
                floor=floor,
                position=(round(x, 4), round(y, 4), z),
                height=height,
                yaw=float(rng.uniform(0.0, 2.0 * math.pi)),
                included=included,
            )
        )
    pairs = [(int(position_in_file[a]), int(position_in_file[b])) for a, b in stair_pairs]
    return viewpoints, pairs


def _place_landmarks(
    plan: FloorPlan, viewpoints: list[Viewpoint], rng: np.random.Generator
) -> list[Landmark]:
    """Put each room's landmarks 0.6-1.0 m from a viewpoint of the room, one landmark per viewpoint."""
    landmarks: list[Landmark] = []
    for room in plan.rooms:
        in_room = [vp for vp in viewpoints if vp.room == room.name and vp.included]
        others = [vp for vp in viewpoints if vp.floor == room.floor]
        free = list(in_room)
        for name in room.landmarks:
            anchor = (
                free.pop(int(rng.integers(len(free)))) if free else in_room[int(rng.integers(len(in_room)))]
            )
            x, y = anchor.position[0], anchor.position[1]
            for _ in range(40):
                angle = rng.uniform(0.0, 2.0 * math.pi)
                radius = rng.uniform(0.6, 1.0)
                x = anchor.position[0] + radius * math.sin(angle)
                y = anchor.position[1] + radius * math.cos(angle)
                if not room.contains(x, y, WALL_MARGIN_M):
                    continue
                if any(
                    lm.floor == room.floor and math.hypot(x - lm.position[0], y - lm.position[1]) < 0.9
                    for lm in landmarks
                ):
                    continue
                # Keep the anchor clearly the nearest viewpoint, so the landmark marks it.
                nearest_other = min(
                    (math.hypot(x - vp.position[0], y - vp.position[1]) for vp in others if vp is not anchor),
                    default=math.inf,
                )
                if nearest_other >= radius + 0.3:
                    break
            else:
                # NOTE: no spot met every condition, so the last candidate is kept inside the
                # room. This landmark may not mark its anchor clearly and may then end no path.
                x = min(max(x, room.x0 + WALL_MARGIN_M), room.x1 - WALL_MARGIN_M)
                y = min(max(y, room.y0 + WALL_MARGIN_M), room.y1 - WALL_MARGIN_M)
            z = room.floor * FLOOR_HEIGHT_M + LANDMARK_HEIGHTS[name]
            landmarks.append(
                Landmark(
                    name, room.name, room.floor, (round(x, 3), round(y, 3), round(z, 3)), anchor.viewpoint_id
                )
            )
    return landmarks


def nearby_landmark(scan: DemoScan, viewpoint: Viewpoint) -> Landmark | None:
    """Return the landmark that is clearly beside `viewpoint`, or None.

    It is the nearest landmark of the floor (horizontal distance), in the viewpoint's room,
    within `GOAL_LANDMARK_MAX_M`, and at least `GOAL_LANDMARK_MARGIN_M` nearer than the next.
    """
    x, y = viewpoint.position[0], viewpoint.position[1]
    ranked = sorted(
        (math.hypot(lm.position[0] - x, lm.position[1] - y), position, lm)
        for position, lm in enumerate(scan.landmarks)
        if lm.floor == viewpoint.floor
    )
    if not ranked:
        return None
    distance, _, landmark = ranked[0]
    if distance > GOAL_LANDMARK_MAX_M or landmark.room != viewpoint.room:
        return None
    if len(ranked) > 1 and ranked[1][0] < distance + GOAL_LANDMARK_MARGIN_M:
        return None
    return landmark


# --- Connectivity --------------------------------------------------------------------------


def _pose(viewpoint: Viewpoint) -> list[float]:
    """Return a row-major camera-to-world 4x4 pose: camera x right, y down, z forward along `yaw`."""
    s, c = math.sin(viewpoint.yaw), math.cos(viewpoint.yaw)
    x, y, z = viewpoint.position
    rows = [
        [c, 0.0, s, x],
        [-s, 0.0, c, y],
        [0.0, -1.0, 0.0, z],
        [0.0, 0.0, 0.0, 1.0],
    ]
    return [round(value, 6) + 0.0 for row in rows for value in row]  # + 0.0 turns -0.0 into 0.0


def _connectivity_entries(scan: DemoScan) -> list[dict[str, Any]]:
    """Return the scan's connectivity JSON: one entry per viewpoint, in file order."""
    viewpoints = scan.viewpoints
    count = len(viewpoints)
    walls = {floor: _wall_segments(scan.plan, floor) for floor in {vp.floor for vp in viewpoints}}
    positions = np.array([vp.position for vp in viewpoints])
    distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)

    visible = np.zeros((count, count), dtype=bool)
    for i in range(count):
        for j in range(i + 1, count):
            a, b = viewpoints[i], viewpoints[j]
            if a.floor == b.floor and distances[i, j] <= MAX_VISIBLE_M:
                visible[i, j] = visible[j, i] = _line_of_sight(walls[a.floor], a.position, b.position)
    unobstructed = visible & (distances <= MAX_EDGE_M)
    for i, j in scan.stair_pairs:
        visible[i, j] = visible[j, i] = unobstructed[i, j] = unobstructed[j, i] = True

    # Like the real files, an excluded viewpoint keeps its unobstructed flags: readers must
    # drop its edges because `included` is false.
    return [
        {
            "image_id": vp.viewpoint_id,
            "pose": _pose(vp),
            "included": vp.included,
            "visible": visible[i].tolist(),
            "unobstructed": unobstructed[i].tolist(),
            "height": vp.height,
        }
        for i, vp in enumerate(viewpoints)
    ]


def _check_connected(scan: DemoScan, seed: int) -> None:
    graph = scan.graph
    assert graph is not None
    included = np.flatnonzero(graph.included)
    if not np.isfinite(graph.distances[np.ix_(included, included)]).all():
        raise RuntimeError(
            f"demo scan {scan.scan} has viewpoints that no path joins (seed {seed}): with this seed's "
            f"jitter some rooms have viewpoints more than {MAX_EDGE_M} m apart, so give them more grid points"
        )


# --- Embeddings and view features ----------------------------------------------------------


def _embeddings(seed: int, dim: int) -> dict[str, np.ndarray]:
    """Draw a random unit vector for every landmark name and room name.

    When there are at most `dim` names the vectors are orthonormal, so a view's feature has
    no similarity to landmarks outside it beyond the noise.
    """
    names = sorted(LANDMARK_HEIGHTS) + sorted(
        {f"room:{room.name}" for plan in FLOOR_PLANS for room in plan.rooms}
    )
    rng = np.random.default_rng([seed, _EMBEDDING_STREAM])
    gaussian = rng.standard_normal((dim, len(names)))
    if len(names) <= dim:
        vectors, _ = np.linalg.qr(gaussian)
    else:
        vectors = gaussian / np.linalg.norm(gaussian, axis=0, keepdims=True)
    return {name: vectors[:, k].copy() for k, name in enumerate(names)}


def _view_angles() -> tuple[np.ndarray, np.ndarray]:
    views = np.arange(36)
    return (views % 12) * HEADING_STEP_RAD, (views // 12 - 1) * ELEVATION_STEP_RAD


def _view_features(
    scan: DemoScan, embeddings: dict[str, np.ndarray], dim: int, rng: np.random.Generator
) -> np.ndarray:
    """Compute the [viewpoints, 36, dim] float32 features of a scan from its layout."""
    view_headings, view_elevations = _view_angles()
    walls = {floor: _wall_segments(scan.plan, floor) for floor in {vp.floor for vp in scan.viewpoints}}
    features = np.zeros((len(scan.viewpoints), 36, dim))

    for row, vp in enumerate(scan.viewpoints):
        # Landmarks in line of sight, in every view whose field of view contains their centre.
        for landmark in scan.landmarks:
            if landmark.floor != vp.floor or not _line_of_sight(
                walls[vp.floor], vp.position, landmark.position
            ):
                continue
            dx, dy, dz = (landmark.position[k] - vp.position[k] for k in range(3))
            horizontal = math.hypot(dx, dy)
            landmark_bearing = bearing(dx, dy)
            landmark_elevation = math.atan2(dz, horizontal)
            weight = 1.0 / (1.0 + (math.hypot(horizontal, dz) / LANDMARK_HALF_DISTANCE_M) ** 2)
            off_heading = np.abs((landmark_bearing - view_headings + math.pi) % (2.0 * math.pi) - math.pi)
            inside = (off_heading <= HALF_HFOV_RAD) & (
                np.abs(landmark_elevation - view_elevations) <= HALF_VFOV_RAD
            )
            features[row, inside] += weight * embeddings[landmark.name]

        # The room each heading looks into: the room a little before the first wall, or
        # ROOM_PROBE_M ahead, which lies in the next room when the view looks through a door.
        for step in range(12):
            heading = step * HEADING_STEP_RAD
            direction = np.array([math.sin(heading), math.cos(heading)])
            reach = min(_ray_to_wall(walls[vp.floor], vp.position, direction) - 0.1, ROOM_PROBE_M)
            probe = np.asarray(vp.position[:2]) + reach * direction
            room = _room_at(scan.plan, vp.floor, float(probe[0]), float(probe[1])) or vp.room
            features[row, step::12] += ROOM_WEIGHT * embeddings[f"room:{room}"]

    features += rng.normal(0.0, NOISE_STD, size=features.shape)
    return features.astype(np.float32)


# --- Paths and instructions ----------------------------------------------------------------


def turn_class(turn: float) -> str:
    """Return "straight", "left", "right" or "around" for a heading change in radians (right positive)."""
    degrees = abs(math.degrees(turn))
    if degrees > AROUND_MIN_DEG:
        return "around"
    if degrees <= STRAIGHT_MAX_DEG:
        return "straight"
    return "right" if turn > 0 else "left"


@dataclass(frozen=True)
class _Route:
    """The facts about a path that its instructions may state."""

    viewpoints: list[Viewpoint]
    turns: list[float]  # turns[k]: heading change before walking segment k; turns[0] from the start heading
    passed: dict[
        int, tuple[Landmark, str | None]
    ]  # path position -> landmark beside it, side seen from the path
    goal: Landmark


def _route(scan: DemoScan, path: list[Viewpoint], heading: float, goal: Landmark) -> _Route:
    bearings = [
        bearing(b.position[0] - a.position[0], b.position[1] - a.position[1]) for a, b in zip(path, path[1:])
    ]
    turns = [wrap_angle(bearings[0] - heading)]
    turns += [wrap_angle(after - before) for before, after in zip(bearings, bearings[1:])]

    passed = {}
    for k in range(1, len(path) - 1):
        landmark = nearby_landmark(scan, path[k])
        if landmark is None or landmark.name == goal.name:
            continue
        # Side of the landmark as seen walking into path[k]; cross > 0 means on the left.
        current, previous = path[k].position, path[k - 1].position
        walk = np.array([current[0] - previous[0], current[1] - previous[1]])
        offset = np.array([landmark.position[0] - current[0], landmark.position[1] - current[1]])
        sine = float(_cross(walk, offset)) / (np.linalg.norm(walk) * np.linalg.norm(offset))
        # Only a landmark clearly to one side (more than 30 degrees off the walk) gets a side.
        side = None
        if sine > 0.5:
            side = "left"
        elif sine < -0.5:
            side = "right"
        passed[k] = (landmark, side)
    return _Route(path, turns, passed, goal)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _movement(route: _Route, k: int, rng: np.random.Generator) -> str | None:
    """Describe walking segment k (path[k] -> path[k + 1]), or None when nothing marks it."""
    origin, destination = route.viewpoints[k], route.viewpoints[k + 1]
    if destination.floor != origin.floor:
        direction = "up" if destination.floor > origin.floor else "down"
        return f"{_pick(rng, ('go', 'walk', 'climb'))} {direction} the stairs to the {destination.room}"
    if destination.room != origin.room:
        return _pick(
            rng,
            (
                f"walk into the {destination.room}",
                f"go through the door into the {destination.room}",
                f"enter the {destination.room}",
            ),
        )
    arriving = route.passed.get(k + 1)
    if arriving is not None:
        landmark, side = arriving
        if k + 1 < len(route.turns) and turn_class(route.turns[k + 1]) != "straight":
            return f"{_pick(rng, ('walk', 'go', 'head'))} towards the {landmark.name}"
        side_text = f" on your {side}" if side else ""
        return f"{_pick(rng, ('walk', 'go'))} past the {landmark.name}{side_text}"
    return None


def _stepwise_instruction(route: _Route, rng: np.random.Generator) -> str:
    """Describe the path segment by segment, with a turn word for every change of direction."""
    sentences = []
    for k in range(len(route.viewpoints) - 1):
        turn = turn_class(route.turns[k])
        movement = _movement(route, k, rng)
        if k == 0 and turn == "straight":
            text = f"{_pick(rng, ('walk straight ahead', 'go straight'))}"
            sentences.append(_sentence(f"{text} and {movement}" if movement else text))
        elif turn != "straight":
            turn_words = "turn around" if turn == "around" else f"turn {turn}"
            turn_landmark = route.passed.get(k)
            if turn_landmark is not None and k > 0:
                turn_words = _pick(
                    rng,
                    (
                        f"{turn_words} at the {turn_landmark[0].name}",
                        f"at the {turn_landmark[0].name}, {turn_words}",
                    ),
                )
            sentences.append(
                _sentence(f"{turn_words} and {movement or _pick(rng, ('keep walking', 'continue'))}")
            )
        elif movement:
            sentences.append(_sentence(f"{_pick(rng, ('then', 'next,'))} {movement}"))

    goal = route.goal.name
    stop = _pick(
        rng,
        (
            f"stop next to the {goal}",
            f"stop when you reach the {goal}",
            f"wait beside the {goal}",
            f"stop in front of the {goal} in the {route.viewpoints[-1].room}",
        ),
    )
    sentences.append(_sentence(stop))
    return " ".join(sentences)


def _rooms_instruction(route: _Route, rng: np.random.Generator) -> str:
    """Describe the path as the sequence of rooms it goes through."""
    rooms: list[Viewpoint] = []
    for vp in route.viewpoints:
        if not rooms or vp.room != rooms[-1].room:
            rooms.append(vp)
    goal = route.goal.name
    stop = _pick(rng, (f"stop next to the {goal}", f"stop by the {goal}", f"wait near the {goal}"))

    if len(rooms) == 1:
        passed = [landmark.name for landmark, _ in route.passed.values()]
        via = f", past the {passed[0]}," if passed else ""
        start = _pick(rng, (f"walk across the {rooms[0].room}", f"stay in the {rooms[0].room}"))
        return _sentence(f"{start}{via} and {stop}")

    parts = [f"{_pick(rng, ('leave', 'exit'))} the {rooms[0].room}"]
    for before, after in zip(rooms, rooms[1:]):
        if after.floor != before.floor:
            parts.append(
                f"go {'up' if after.floor > before.floor else 'down'} the stairs to the {after.room}"
            )
        else:
            parts.append(f"{_pick(rng, ('go', 'head', 'continue'))} into the {after.room}")
    text = f"{parts[0]} and {parts[1]}" + "".join(f", then {part}" for part in parts[2:])
    return f"{_sentence(text)} {_sentence(stop)}"


def _landmarks_instruction(route: _Route, rng: np.random.Generator) -> str:
    """Describe the path by the landmarks it passes and the room and landmark where it ends."""
    goal, goal_room = route.goal.name, route.viewpoints[-1].room
    passed = [landmark.name for landmark, _ in route.passed.values()]
    if passed:
        names = passed[0] if len(passed) == 1 else f"{', the '.join(passed[:-1])} and the {passed[-1]}"
        return _sentence(
            _pick(
                rng,
                (
                    f"walk past the {names} and stop at the {goal}",
                    f"head for the {goal} in the {goal_room}, passing the {names} on the way",
                ),
            )
        )
    return _sentence(
        _pick(
            rng,
            (
                f"go to the {goal_room} and wait next to the {goal}",
                f"find the {goal} in the {goal_room} and stop there",
                f"make your way to the {goal} and stop",
            ),
        )
    )


def _instructions(route: _Route, rng: np.random.Generator) -> list[str]:
    instructions = [
        _stepwise_instruction(route, rng),
        _rooms_instruction(route, rng),
        _landmarks_instruction(route, rng),
    ]
    if len(set(instructions)) != len(instructions):
        raise RuntimeError(f"demo instructions repeat for one path: {instructions}")
    return instructions


def _scan_paths(scan: DemoScan, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Return every usable R2R path of a scan (without path_id), in random order.

    A path is the shortest path from any included viewpoint to a viewpoint beside a
    landmark, with 3 to 6 viewpoints and at least `MIN_PATH_M` metres long.
    """
    graph = scan.graph
    assert graph is not None
    goals = [(vp, nearby_landmark(scan, vp)) for vp in scan.viewpoints if vp.included]
    items = []
    for start in scan.viewpoints:
        if not start.included:
            continue
        for goal, landmark in goals:
            if landmark is None or goal is start:
                continue
            ids = graph.shortest_path(start.viewpoint_id, goal.viewpoint_id)
            length = graph.path_length(ids)
            if not MIN_PATH_VIEWPOINTS <= len(ids) <= MAX_PATH_VIEWPOINTS or length < MIN_PATH_M:
                continue
            items.append((ids, length, landmark))

    by_id = {vp.viewpoint_id: vp for vp in scan.viewpoints}
    paths = []
    for position in rng.permutation(len(items)):
        ids, length, landmark = items[position]
        heading = round(float(rng.uniform(0.0, 2.0 * math.pi)), 3)
        route = _route(scan, [by_id[v] for v in ids], heading, landmark)
        paths.append(
            {
                "distance": round(length, 2),
                "scan": scan.scan,
                "path_id": None,
                "path": list(ids),
                "heading": heading,
                "instructions": _instructions(route, rng),
            }
        )
    return paths


def _splits(scans: dict[str, DemoScan], seed: int) -> dict[str, list[dict[str, Any]]]:
    """Divide the scans' paths into the four R2R splits and number them with unique path_ids."""
    splits: dict[str, list[dict[str, Any]]] = {split: [] for split in R2R_SPLITS}
    for index, plan in enumerate(FLOOR_PLANS):
        paths = _scan_paths(scans[plan.scan], np.random.default_rng([seed, _PATH_STREAM, index]))
        if plan.scan in SPLIT_SCANS["train"]:
            splits["val_seen"] += paths[:VAL_SEEN_PATHS_PER_SCAN]
            splits["train"] += paths[VAL_SEEN_PATHS_PER_SCAN:]
        elif plan.scan in SPLIT_SCANS["val_unseen"]:
            splits["val_unseen"] += paths[:UNSEEN_PATHS_PER_SCAN]
        else:
            splits["test"] += paths[:UNSEEN_PATHS_PER_SCAN]

    path_id = 1
    for split in R2R_SPLITS:
        for item in splits[split]:
            item["path_id"] = path_id
            path_id += 1

    # As in R2R_test.json, test paths give only the start viewpoint and no distance.
    splits["test"] = [
        {
            "scan": item["scan"],
            "path_id": item["path_id"],
            "path": item["path"][:1],
            "heading": item["heading"],
            "instructions": item["instructions"],
        }
        for item in splits["test"]
    ]
    return splits


# --- The whole world -----------------------------------------------------------------------


def generate_world(seed: int = DEFAULT_SEED, feature_dim: int = DEFAULT_FEATURE_DIM) -> DemoWorld:
    """Generate the demo world in memory: layouts, connectivity, view features and R2R splits."""
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be a positive integer, got {feature_dim}")
    embeddings = _embeddings(seed, feature_dim)

    scans: dict[str, DemoScan] = {}
    for index, plan in enumerate(FLOOR_PLANS):
        layout_rng = np.random.default_rng([seed, _LAYOUT_STREAM, index])
        viewpoints, stair_pairs = _build_viewpoints(plan, seed, layout_rng)
        landmarks = _place_landmarks(plan, viewpoints, layout_rng)
        scan = DemoScan(plan, viewpoints, landmarks, stair_pairs)
        scan.entries = _connectivity_entries(scan)
        scan.graph = parse_scan_graph(plan.scan, scan.entries)
        _check_connected(scan, seed)
        feature_rng = np.random.default_rng([seed, _FEATURE_STREAM, index])
        scan.features = _view_features(scan, embeddings, feature_dim, feature_rng)
        scans[plan.scan] = scan

    return DemoWorld(seed, feature_dim, scans, embeddings, _splits(scans, seed))


# --- Files ---------------------------------------------------------------------------------


def default_demo_dir() -> Path:
    """Return the demo world folder: `$CLIPNAV_DEMO_DIR`, else `<project root>/.cache/demo_world`.

    Outside a checkout (clipnav installed from a wheel) the default is
    `~/.cache/clipnav/demo_world`.
    """
    from_env = os.environ.get(DEMO_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    if IN_CHECKOUT:
        return PROJECT_ROOT / ".cache" / "demo_world"
    return Path.home() / ".cache" / "clipnav" / "demo_world"


def demo_features_path(data_dir: str | os.PathLike[str]) -> Path:
    """Return the path of the view-feature file inside a demo world folder."""
    return Path(data_dir) / FEATURES_FILE


def _expected_files() -> list[Path]:
    files = [Path("connectivity") / "scans.txt"]
    files += [Path("connectivity") / f"{scan}_connectivity.json" for scan in DEMO_SCANS]
    files += [Path("R2R") / f"R2R_{split}.json" for split in R2R_SPLITS]
    return [*files, FEATURES_FILE, Path(README_FILE), Path(MANIFEST_FILE)]


def _manifest(seed: int, feature_dim: int) -> dict[str, Any]:
    return {"generator": __name__, "version": FORMAT_VERSION, "seed": seed, "feature_dim": feature_dim}


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _is_complete(folder: Path, seed: int, feature_dim: int) -> bool:
    """Return whether `folder` contains a whole demo world of this generator version and settings."""
    if _read_manifest(folder) != _manifest(seed, feature_dim):
        return False
    return all((folder / name).is_file() for name in _expected_files())


def _readme(world: DemoWorld) -> str:
    lines = [
        "# clipnav demo world",
        "",
        f"Generated by `{__name__}` with seed {world.seed} and feature dimension {world.feature_dim}.",
        "The houses are made up, not Matterport3D scans, but every file has the format of the",
        "real data: the Matterport3D Simulator's connectivity graphs, the R2R JSON splits and",
        "TSV view features. Pass this folder as `--data-dir` and `features/demo_views.tsv` as",
        "the feature file. Do not edit the files. To rebuild them, delete the folder and call",
        "`envs.demo_world.ensure_demo_world`.",
        "",
        "| split | scans | paths | instructions |",
        "| --- | --- | --- | --- |",
    ]
    for split in R2R_SPLITS:
        items = world.splits[split]
        count = sum(len(item["instructions"]) for item in items)
        lines.append(f"| {split} | {', '.join(SPLIT_SCANS[split])} | {len(items)} | {count} |")
    return "\n".join(lines) + "\n"


def _write_world(world: DemoWorld, folder: Path) -> None:
    """Write every file of `world` into `folder`, the manifest last."""
    connectivity = folder / "connectivity"
    with atomic_write(connectivity / "scans.txt") as out:
        out.write("".join(f"{scan}\n" for scan in world.scans))
    for scan in world.scans.values():
        # Compact JSON, as in the Matterport3D Simulator's files.
        with atomic_write(connectivity / f"{scan.scan}_connectivity.json") as out:
            json.dump(scan.entries, out, separators=(",", ":"))

    for split, items in world.splits.items():
        # Indented with ", " separators, as in the R2R release.
        with atomic_write(folder / "R2R" / f"R2R_{split}.json") as out:
            json.dump(items, out, indent=2, separators=(", ", ": "))

    def records() -> Iterator[tuple[str, str, np.ndarray]]:
        for scan in world.scans.values():
            assert scan.features is not None
            for vp, features in zip(scan.viewpoints, scan.features):
                yield scan.scan, vp.viewpoint_id, features

    write_tsv_features(folder / FEATURES_FILE, records(), IMAGE_WIDTH, IMAGE_HEIGHT, VFOV_DEG)
    with atomic_write(folder / README_FILE) as out:
        out.write(_readme(world))
    write_json_atomic(folder / MANIFEST_FILE, _manifest(world.seed, world.feature_dim), indent=2)


def build_demo_world(
    out_dir: str | os.PathLike[str], seed: int = DEFAULT_SEED, feature_dim: int = DEFAULT_FEATURE_DIM
) -> Path:
    """Generate the demo world and write it to `out_dir`, replacing an older demo world there.

    The files are written to a temporary folder beside `out_dir`, which is then renamed, so
    `out_dir` never contains half a world: a crash leaves the old world, the new one or, between
    the two renames, no folder. Raises FileExistsError if `out_dir` exists but is neither an
    empty folder nor a demo world, because replacing it would delete someone's data.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder; pass a folder path for the demo world")
    if out.exists() and any(out.iterdir()) and _read_manifest(out) is None:
        raise FileExistsError(
            f"{out} exists and is not a demo world (it has files but no {MANIFEST_FILE}); "
            "pass an empty or new folder"
        )
    started = time.perf_counter()
    world = generate_world(seed, feature_dim)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes the folder private to its owner
    try:
        _write_world(world, staging)
        _install(staging, out, seed, feature_dim)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

    counts = ", ".join(
        f"{split} {sum(len(item['instructions']) for item in world.splits[split])}" for split in R2R_SPLITS
    )
    logger.info(
        "built demo world at %s (seed %d, feature dim %d) in %.2f s: %d scans, %d viewpoints; instructions: %s",
        out,
        seed,
        feature_dim,
        time.perf_counter() - started,
        len(world.scans),
        sum(len(scan.viewpoints) for scan in world.scans.values()),
        counts,
    )
    return out


def _install(staging: Path, out: Path, seed: int, feature_dim: int) -> None:
    """Rename the finished `staging` folder to `out`, moving an older world aside first."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old)  # an empty folder `old` is replaced by the old world
    try:
        os.rename(staging, out)
    except OSError:
        # Another process installed a world between the two renames. Keep it if it has the
        # requested settings, else put the old world back and re-raise.
        if _is_complete(out, seed, feature_dim):
            logger.info("another process built the demo world at %s first; keeping that one", out)
            return
        if old is not None and not out.exists():
            os.rename(old, out)
            old = None
        raise
    finally:
        if old is not None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(old)


def ensure_demo_world(
    out_dir: str | os.PathLike[str] | None = None,
    seed: int = DEFAULT_SEED,
    feature_dim: int = DEFAULT_FEATURE_DIM,
) -> Path:
    """Return the demo world folder, building it first unless a complete one with these settings exists.

    `out_dir` defaults to `default_demo_dir()`.
    """
    out = Path(out_dir).expanduser() if out_dir is not None else default_demo_dir()
    if _is_complete(out, seed, feature_dim):
        logger.debug("using the demo world at %s", out)
        return out
    if out.exists():
        logger.info("demo world at %s is missing files or has other settings; rebuilding it", out)
    return build_demo_world(out, seed, feature_dim)
