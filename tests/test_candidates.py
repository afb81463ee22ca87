"""Tests of the panoramic candidates: hand-worked synthetic scans and the recorded C++ sweeps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectivity import Connectivity, parse_scan_graph
from envs.candidates import CandidateTable, candidate_table, wrap_angle
from envs.navigable import NavigableTable, navigable_table

ANGLE_TOLERANCE = 1e-5  # radians; navigable values come from float32 arithmetic
DISTANCE_TOLERANCE = 1e-5  # metres
UP_ELEVATION_DEG = math.degrees(math.atan2(2.0, 1.0))  # 63.4349


def at_bearing(bearing_deg: float, horizontal: float, z: float = 0.0) -> tuple[float, float, float]:
    """Position at a bearing in degrees clockwise from +y (heading 0 of the simulator)."""
    b = math.radians(bearing_deg)
    return (horizontal * math.sin(b), horizontal * math.cos(b), z)


def pose(x: float, y: float, z: float) -> list[float]:
    return [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1]


def graph_of(positions: dict, excluded: frozenset[str] = frozenset(), blocked: frozenset[str] = frozenset()):
    """A scan where every pair is unobstructed except pairs that touch a `blocked` viewpoint."""
    names = list(positions)
    entries = [
        {
            "image_id": name,
            "pose": pose(*positions[name]),
            "included": name not in excluded,
            "unobstructed": [
                other != name and name not in blocked and other not in blocked for other in names
            ],
            "height": 1.5,
        }
        for name in names
    ]
    return parse_scan_graph("synth", entries)


def candidates_of(graph, viewpoint: str, table: CandidateTable | None = None) -> list[dict]:
    table = table if table is not None else candidate_table(navigable_table(graph))
    row = graph.index(viewpoint)
    return [
        {
            "viewpoint": graph.viewpoint_ids[table.target[row, k]],
            "view_index": int(table.view_index[row, k]),
            "slot": int(table.slot[row, k]),
            "heading": float(table.heading[row, k]),
            "elevation": float(table.elevation[row, k]),
            "distance": float(table.distance[row, k]),
        }
        for k in range(table.count[row])
    ]


# --- the two cases of the module docstring --------------------------------------------


@pytest.fixture(scope="module")
def east_graph():
    # One neighbour due east at the same height, 2 m away.
    return graph_of({"o": (0.0, 0.0, 0.0), "east": (2.0, 0.0, 0.0)})


def test_east_single_candidate(east_graph) -> None:
    assert [c["viewpoint"] for c in candidates_of(east_graph, "o")] == ["east"]


def test_east_best_view(east_graph) -> None:
    # Heading 90 degrees = step 3, level row 1: view 12 + 3 = 15.
    assert candidates_of(east_graph, "o")[0]["view_index"] == 15


def test_east_heading(east_graph) -> None:
    assert candidates_of(east_graph, "o")[0]["heading"] == pytest.approx(math.pi / 2, abs=ANGLE_TOLERANCE)


def test_east_elevation(east_graph) -> None:
    assert candidates_of(east_graph, "o")[0]["elevation"] == pytest.approx(0.0, abs=ANGLE_TOLERANCE)


def test_east_distance(east_graph) -> None:
    assert candidates_of(east_graph, "o")[0]["distance"] == pytest.approx(2.0, abs=DISTANCE_TOLERANCE)


def test_east_slot(east_graph) -> None:
    assert candidates_of(east_graph, "o")[0]["slot"] == 1


def test_east_back_to_origin(east_graph) -> None:
    # From east, o lies at bearing 270: step 9, level row, view 21.
    assert candidates_of(east_graph, "east")[0]["view_index"] == 21


@pytest.fixture(scope="module")
def up_graph():
    # One neighbour straight ahead (bearing 0), 1 m away horizontally and 2 m higher.
    return graph_of({"o": (0.0, 0.0, 0.0), "up": (0.0, 1.0, 2.0)})


def test_up_best_view(up_graph) -> None:
    # 63.4 degrees up is nearest the upper row (30 degrees): view 24 + 0.
    assert candidates_of(up_graph, "o")[0]["view_index"] == 24


def test_up_elevation_absolute(up_graph) -> None:
    expected = math.radians(UP_ELEVATION_DEG)
    assert candidates_of(up_graph, "o")[0]["elevation"] == pytest.approx(expected, abs=ANGLE_TOLERANCE)


def test_up_distance(up_graph) -> None:
    expected = math.sqrt(1.0 + 4.0)
    assert candidates_of(up_graph, "o")[0]["distance"] == pytest.approx(expected, abs=DISTANCE_TOLERANCE)


def test_down_best_view() -> None:
    # The same 2 m lower, at bearing 180: step 6 of the lower row, view 6.
    graph = graph_of({"o": (0.0, 0.0, 0.0), "down": (0.0, -1.0, -2.0)})
    assert candidates_of(graph, "o")[0]["view_index"] == 6


# --- a busier scan, worked out by hand ------------------------------------------------
#
# Around "o" lie l20 at bearing -20 (3 m), r39 at 39 (2 m), r41 at 41 (2 m), back at 180
# (1 m), up at bearing 0 (1 m out, 2 m up) and east at 90 (2 m). "excluded" (bearing 10)
# is included: false, and "blocked" (bearing -5) is obstructed from everything.
#
# A neighbour is navigable within 40 degrees of the camera heading. Scanning views 0..35,
# view 0 (heading 0, looking down) lists l20, r39 and up first. They are off centre by
# sqrt(20^2 + 30^2) = 36.1, sqrt(39^2 + 30^2) = 49.2 and 93.4 degrees. Then view 1 adds
# r41, view 2 (heading 60) adds east and view 5 (heading 150) adds back.
#
# Best views: l20 in view 23 (heading 330, 10 degrees off). r39 and r41 are both best in
# view 13 (heading 30, 9 and 11 degrees off, so slots 1 and 2). up is best in view 24
# (33.4 degrees off), east in view 15 and back in view 18.
BUSY = {
    "o": (0.0, 0.0, 0.0),
    "l20": at_bearing(-20, 3.0),
    "r39": at_bearing(39, 2.0),
    "r41": at_bearing(41, 2.0),
    "back": at_bearing(180, 1.0),
    "up": (0.0, 1.0, 2.0),
    "east": at_bearing(90, 2.0),
    "excluded": at_bearing(10, 1.0),
    "blocked": at_bearing(-5, 1.5),
}
BUSY_EXPECTED = [
    # viewpoint, view index, slot, heading (deg), elevation (deg), distance (m)
    ("l20", 23, 1, 340.0, 0.0, 3.0),
    ("r39", 13, 1, 39.0, 0.0, 2.0),
    ("up", 24, 1, 0.0, UP_ELEVATION_DEG, math.sqrt(5.0)),
    ("r41", 13, 2, 41.0, 0.0, 2.0),
    ("east", 15, 1, 90.0, 0.0, 2.0),
    ("back", 18, 1, 180.0, 0.0, 1.0),
]


@pytest.fixture(scope="module")
def busy_candidates() -> list[dict]:
    graph = graph_of(BUSY, excluded=frozenset({"excluded"}), blocked=frozenset({"blocked"}))
    return candidates_of(graph, "o")


def test_busy_order(busy_candidates) -> None:
    assert [c["viewpoint"] for c in busy_candidates] == [row[0] for row in BUSY_EXPECTED]


def test_busy_views(busy_candidates) -> None:
    assert [c["view_index"] for c in busy_candidates] == [row[1] for row in BUSY_EXPECTED]


def test_busy_slots(busy_candidates) -> None:
    assert [c["slot"] for c in busy_candidates] == [row[2] for row in BUSY_EXPECTED]


def test_busy_headings(busy_candidates) -> None:
    expected = [math.radians(row[3]) for row in BUSY_EXPECTED]
    assert [c["heading"] for c in busy_candidates] == pytest.approx(expected, abs=ANGLE_TOLERANCE)


def test_busy_elevations(busy_candidates) -> None:
    expected = [math.radians(row[4]) for row in BUSY_EXPECTED]
    assert [c["elevation"] for c in busy_candidates] == pytest.approx(expected, abs=ANGLE_TOLERANCE)


def test_busy_distances(busy_candidates) -> None:
    expected = [row[5] for row in BUSY_EXPECTED]
    assert [c["distance"] for c in busy_candidates] == pytest.approx(expected, abs=DISTANCE_TOLERANCE)


def test_isolated_viewpoint_has_none() -> None:
    graph = graph_of({"o": (0.0, 0.0, 0.0), "far": (5.0, 0.0, 0.0)}, blocked=frozenset({"far"}))
    table = candidate_table(navigable_table(graph))
    assert table.count[graph.index("o")] == 0


def test_table_width_at_least_one() -> None:
    graph = graph_of({"o": (0.0, 0.0, 0.0)})
    assert candidate_table(navigable_table(graph)).width == 1


# --- rules checked on a hand-built navigable table ------------------------------------


def hand_table(rows: dict[int, list[tuple[int, float, float]]], viewpoints: int = 3) -> NavigableTable:
    """A navigable table for `viewpoints` viewpoints, where viewpoint 0's views hold `rows`.

    rows maps a view index to its neighbours (target, rel_heading, rel_elevation) in slot
    order; slot 0 is always the viewpoint itself. Distances are 1 + target.
    """
    width = 1 + max(len(entries) for entries in rows.values())
    size = viewpoints * 36
    target = np.full((size, width), -1, dtype=np.int32)
    target[:, 0] = np.repeat(np.arange(viewpoints), 36)
    rel_heading = np.zeros((size, width))
    rel_elevation = np.zeros((size, width))
    rel_distance = np.zeros((size, width))
    count = np.ones(size, dtype=np.int32)
    for view, entries in rows.items():
        for slot, (there, heading, elevation) in enumerate(entries, 1):
            target[view, slot] = there
            rel_heading[view, slot] = heading
            rel_elevation[view, slot] = elevation
            rel_distance[view, slot] = 1.0 + there
        count[view] = 1 + len(entries)
    return NavigableTable(target, rel_heading, rel_elevation, rel_distance, count)


def test_tie_lowest_view_wins() -> None:
    # Viewpoint 1 is 0.2 rad off centre in both view 5 and view 7.
    table = candidate_table(hand_table({7: [(1, -0.2, 0.0)], 5: [(1, 0.2, 0.0)]}))
    assert table.view_index[0, 0] == 5


def test_smaller_offset_wins() -> None:
    table = candidate_table(hand_table({5: [(1, 0.3, 0.0)], 7: [(1, 0.0, 0.25)]}))
    assert table.view_index[0, 0] == 7


def test_offset_combines_angles() -> None:
    # View 5: sqrt(0.3^2 + 0.3^2) = 0.42; view 7: sqrt(0.4^2 + 0) = 0.4.
    table = candidate_table(hand_table({5: [(1, 0.3, 0.3)], 7: [(1, 0.4, 0.0)]}))
    assert table.view_index[0, 0] == 7


def test_order_by_first_appearance() -> None:
    # Viewpoint 2 appears first (view 3) although its best view (30) comes after
    # viewpoint 1's best view (10).
    rows = {3: [(2, 0.5, 0.0)], 10: [(1, 0.0, 0.0)], 30: [(2, 0.0, 0.0)]}
    table = candidate_table(hand_table(rows))
    assert table.target[0, :2].tolist() == [2, 1]


def test_order_within_view_by_slot() -> None:
    rows = {4: [(2, 0.1, 0.0), (1, 0.2, 0.0)]}
    table = candidate_table(hand_table(rows))
    assert table.target[0, :2].tolist() == [2, 1]


def test_slot_of_best_view() -> None:
    rows = {4: [(2, 0.1, 0.0), (1, 0.2, 0.0)], 9: [(2, 0.3, 0.0), (1, 0.05, 0.0)]}
    table = candidate_table(hand_table(rows))
    # Viewpoint 1 is best in view 9, where it sits in slot 2.
    assert (table.view_index[0, 1], table.slot[0, 1]) == (9, 2)


def test_heading_adds_view_heading() -> None:
    # View 14: heading step 2 = 60 degrees, plus 0.1 rad.
    table = candidate_table(hand_table({14: [(1, 0.1, 0.0)]}))
    assert table.heading[0, 0] == pytest.approx(math.radians(60) + 0.1)


def test_elevation_adds_view_elevation() -> None:
    # View 26 looks 30 degrees up; the target is 0.2 rad above that.
    table = candidate_table(hand_table({26: [(1, 0.0, 0.2)]}))
    assert table.elevation[0, 0] == pytest.approx(math.radians(30) + 0.2)


def test_distance_from_best_view() -> None:
    table = candidate_table(hand_table({26: [(1, 0.0, 0.2)]}))
    assert table.distance[0, 0] == 2.0


def test_other_viewpoints_empty() -> None:
    table = candidate_table(hand_table({26: [(1, 0.0, 0.2)]}))
    assert table.count.tolist() == [1, 0, 0]


def test_shifted_moves_targets() -> None:
    table = candidate_table(hand_table({26: [(1, 0.0, 0.2)]})).shifted(10)
    assert table.target[0, 0] == 11


def test_shifted_keeps_padding() -> None:
    table = candidate_table(hand_table({26: [(1, 0.0, 0.2)]})).shifted(10)
    assert table.target[1, 0] == -1


def test_concatenate_pads_to_widest() -> None:
    narrow = candidate_table(hand_table({26: [(1, 0.0, 0.2)]}))
    wide = candidate_table(hand_table({3: [(1, 0.0, 0.0), (2, 0.1, 0.0)]}))
    joined = CandidateTable.concatenate([narrow, wide])
    assert joined.target.shape == (6, 2)
    assert joined.target[0].tolist() == [1, -1]
    assert joined.count.tolist() == [1, 0, 0, 2, 0, 0]


# --- wrap_angle -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("angle", "expected"),
    [
        (0.0, 0.0),
        (math.pi, -math.pi),
        (-math.pi, -math.pi),
        (1.5 * math.pi, -0.5 * math.pi),
        (-1.5 * math.pi, 0.5 * math.pi),
        (2 * math.pi + 0.25, 0.25),
    ],
)
def test_wrap_angle_values(angle: float, expected: float) -> None:
    assert float(wrap_angle(angle)) == pytest.approx(expected, abs=1e-12)


@given(st.floats(-1e3, 1e3, allow_nan=False))
def test_wrap_angle_range(angle: float) -> None:
    wrapped = float(wrap_angle(angle))
    assert -math.pi <= wrapped < math.pi


@given(st.floats(-1e3, 1e3, allow_nan=False))
def test_wrap_angle_same_direction(angle: float) -> None:
    wrapped = float(wrap_angle(angle))
    assert math.cos(wrapped) == pytest.approx(math.cos(angle), abs=1e-9)
    assert math.sin(wrapped) == pytest.approx(math.sin(angle), abs=1e-9)


def test_wrap_angle_array_shape() -> None:
    assert wrap_angle(np.zeros((2, 3))).shape == (2, 3)


def test_wrap_angle_below_minus_pi() -> None:
    just_below = np.nextafter(-math.pi, -math.inf)
    assert float(wrap_angle(just_below)) < math.pi


# --- the recorded C++ sweeps ----------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_viewpoints(data_dir: Path) -> list[dict]:
    path = data_dir / "mattersim_reference" / "states.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())["viewpoints"]


def candidates_from_sweep(sweep: list[dict]) -> list[dict]:
    """Rebuild the candidate list from 36 recorded simulator states, in view order."""
    best: dict[str, dict] = {}
    for state in sorted(sweep, key=lambda s: s["viewIndex"]):
        for slot, loc in enumerate(state["navigableLocations"][1:], 1):
            offset = math.hypot(loc["rel_heading"], loc["rel_elevation"])
            known = best.get(loc["viewpointId"])
            if known is not None and not offset < known["offset"]:
                continue
            best[loc["viewpointId"]] = {
                "viewpoint": loc["viewpointId"],
                "offset": offset,
                "view_index": state["viewIndex"],
                "slot": slot,
                "heading": state["heading"] + loc["rel_heading"],
                "elevation": state["elevation"] + loc["rel_elevation"],
                "distance": loc["rel_distance"],
            }
    # Dicts keep insertion order, which is the order of first appearance.
    return list(best.values())


def test_recorded_sweeps_complete(recorded_viewpoints) -> None:
    for entry in recorded_viewpoints:
        assert sorted(s["viewIndex"] for s in entry["sweep36"]) == list(range(36))


def test_recorded_candidates_match(recorded_viewpoints, real_connectivity: Connectivity) -> None:
    tables: dict[str, CandidateTable] = {}
    for entry in recorded_viewpoints:
        scan, viewpoint = entry["scanId"], entry["viewpointId"]
        graph = real_connectivity[scan]
        if scan not in tables:
            tables[scan] = candidate_table(navigable_table(graph))
        ours = candidates_of(graph, viewpoint, tables[scan])
        expected = candidates_from_sweep(entry["sweep36"])

        context = f"{scan}/{viewpoint}"
        assert [c["viewpoint"] for c in ours] == [c["viewpoint"] for c in expected], context
        for got, want in zip(ours, expected):
            where = f"{context} candidate {want['viewpoint']}"
            assert got["view_index"] == want["view_index"], where
            assert got["slot"] == want["slot"], where
            assert got["heading"] == pytest.approx(want["heading"], abs=ANGLE_TOLERANCE), where
            assert got["elevation"] == pytest.approx(want["elevation"], abs=ANGLE_TOLERANCE), where
            assert got["distance"] == pytest.approx(want["distance"], abs=DISTANCE_TOLERANCE), where


def test_recorded_sweeps_have_candidates(recorded_viewpoints) -> None:
    # Guards the comparison above against passing on empty lists.
    assert all(candidates_from_sweep(entry["sweep36"]) for entry in recorded_viewpoints)
