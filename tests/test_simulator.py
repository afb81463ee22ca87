"""Tests of the discretized simulator on synthetic graphs with neighbours at known bearings.

Bearings are in degrees clockwise from +y (the simulator's heading 0), so a neighbour at
bearing b and horizontal distance r sits at (r sin b, r cos b).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from connectivity import Connectivity, UnknownScanError, UnknownViewpointError
from envs.navigable import CameraSettings, navigable_table, view_elevation, view_heading
from envs.simulator import (
    BatchSimulator,
    InvalidActionError,
    Simulator,
    snap_elevation_row,
    snap_heading_step,
)

ANGLE_TOLERANCE = 1e-5  # radians; the simulator works in float32
DISTANCE_TOLERANCE = 1e-5  # metres
UP_ELEVATION = math.atan2(2.0, 1.0)  # 2 m higher at 1 m horizontal: 63.4349 degrees


def at_bearing(bearing_deg: float, horizontal: float, z: float = 0.0) -> tuple[float, float, float]:
    b = math.radians(bearing_deg)
    return (horizontal * math.sin(b), horizontal * math.cos(b), z)


# Viewpoint "o" at the origin with neighbours placed around it. "excluded" is marked
# included: false; "blocked" is obstructed from every other viewpoint.
SYNTH = {
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
# A second scan: three viewpoints 2 m apart along +y, the two ends obstructed from each other.
LINE = {"p0": (0.0, 0.0, 0.0), "p1": (0.0, 2.0, 0.0), "p2": (0.0, 4.0, 0.0)}


def pose(x: float, y: float, z: float) -> list[float]:
    return [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1]


def write_scan(folder: Path, scan: str, positions: dict, blocked_pairs: set, excluded: set) -> None:
    names = list(positions)
    entries = [
        {
            "image_id": name,
            "pose": pose(*positions[name]),
            "included": name not in excluded,
            "unobstructed": [
                other != name and frozenset((name, other)) not in blocked_pairs for other in names
            ],
            "height": 1.5,
        }
        for name in names
    ]
    (folder / f"{scan}_connectivity.json").write_text(json.dumps(entries))


@pytest.fixture(scope="module")
def synth_connectivity(tmp_path_factory) -> Connectivity:
    folder = tmp_path_factory.mktemp("connectivity")
    (folder / "scans.txt").write_text("synth\nline\n")
    blocked = {frozenset(("blocked", other)) for other in SYNTH}
    write_scan(folder, "synth", SYNTH, blocked, excluded={"excluded"})
    write_scan(folder, "line", LINE, {frozenset(("p0", "p2"))}, excluded=set())
    return Connectivity(folder)


@pytest.fixture
def sim(synth_connectivity: Connectivity) -> Simulator:
    return Simulator(synth_connectivity)


def navigable_ids(sim: Simulator) -> list[str]:
    return [location.viewpoint for location in sim.state.navigable_locations]


def location(sim: Simulator, viewpoint: str):
    (found,) = [loc for loc in sim.state.navigable_locations if loc.viewpoint == viewpoint]
    return found


# --- snapping at a new episode --------------------------------------------------------


@pytest.mark.parametrize(
    ("heading_deg", "expected_deg"),
    [
        (0, 0),
        (14.9, 0),
        (15, 30),  # a half step rounds away from zero
        (44.9, 30),
        (45, 60),
        (-15, 0),  # wraps to 345, a half step, rounds up to 360 = 0
        (-14.9, 0),
        (-16, 330),
        (350, 0),
        (-100, 270),  # 260 degrees, nearer 270 than 240
        (720 + 95, 90),
    ],
)
def test_new_episode_snaps_heading(sim: Simulator, heading_deg: float, expected_deg: float) -> None:
    sim.new_episode("synth", "o", math.radians(heading_deg), 0.0)
    assert sim.state.heading == pytest.approx(math.radians(expected_deg), abs=1e-12)


@pytest.mark.parametrize(
    ("elevation_deg", "expected_deg"),
    [
        (0, 0),
        (15, 0),  # the boundary stays level
        (-15, 0),
        (15.1, 30),
        (-15.1, -30),
        (80, 30),
        (-80, -30),
    ],
)
def test_new_episode_snaps_elevation(sim: Simulator, elevation_deg: float, expected_deg: float) -> None:
    sim.new_episode("synth", "o", 0.0, math.radians(elevation_deg))
    assert sim.state.elevation == pytest.approx(math.radians(expected_deg), abs=1e-12)


@pytest.mark.parametrize(
    ("heading_deg", "elevation_deg", "view_index"),
    [(0, -30, 0), (90, -30, 3), (0, 0, 12), (330, 0, 23), (0, 30, 24), (330, 30, 35)],
)
def test_new_episode_view_index(
    sim: Simulator, heading_deg: float, elevation_deg: float, view_index: int
) -> None:
    sim.new_episode("synth", "o", math.radians(heading_deg), math.radians(elevation_deg))
    assert sim.state.view_index == view_index


def nearest_heading_step(heading: float) -> int:
    """The step k whose heading k * 30 degrees is circularly nearest to `heading`."""
    gaps = [abs(math.remainder(heading - k * math.pi / 6, 2 * math.pi)) for k in range(12)]
    return int(np.argmin(gaps))


@given(st.floats(-8 * math.pi, 8 * math.pi, allow_nan=False))
def test_snap_heading_nearest_step(heading: float) -> None:
    # Away from half steps the snapped heading is simply the nearest one.
    half_step_gap = abs(math.remainder(heading - math.pi / 12, math.pi / 6))
    assume(half_step_gap > 1e-9)
    assert snap_heading_step(np.array([heading]))[0] == nearest_heading_step(heading)


@given(st.floats(-8 * math.pi, 8 * math.pi, allow_nan=False))
def test_snap_heading_in_range(heading: float) -> None:
    step = snap_heading_step(np.array([heading]))[0]
    assert 0 <= step < 12


@given(st.floats(-math.pi, math.pi, allow_nan=False))
def test_snap_elevation_nearest_row(elevation: float) -> None:
    assume(abs(abs(elevation) - math.pi / 12) > 1e-12)
    levels = [-math.pi / 6, 0.0, math.pi / 6]
    expected = int(np.argmin([abs(elevation - level) for level in levels]))
    assert snap_elevation_row(np.array([elevation]))[0] == expected


# --- navigable locations --------------------------------------------------------------


def test_navigable_order_level(sim: Simulator) -> None:
    # Heading 0, level: l20 at 20 degrees, r39 at 39, up at 63.4 (elevation only);
    # r41 lies outside 40 degrees, back behind, excluded and blocked are not edges.
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert navigable_ids(sim) == ["o", "l20", "r39", "up"]


def test_navigable_self_first(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    first = sim.state.navigable_locations[0]
    assert first.viewpoint == "o"
    assert (first.rel_heading, first.rel_elevation, first.rel_distance) == (0.0, 0.0, 0.0)


def test_navigable_right_is_positive(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert location(sim, "r39").rel_heading == pytest.approx(math.radians(39), abs=ANGLE_TOLERANCE)


def test_navigable_left_is_negative(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert location(sim, "l20").rel_heading == pytest.approx(math.radians(-20), abs=ANGLE_TOLERANCE)


def test_navigable_distance_horizontal(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert location(sim, "l20").rel_distance == pytest.approx(3.0, abs=DISTANCE_TOLERANCE)


def test_navigable_distance_3d(sim: Simulator) -> None:
    # up is at (0, 1, 2): sqrt(1 + 4) = 2.2360680 m.
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert location(sim, "up").rel_distance == pytest.approx(math.sqrt(5.0), abs=DISTANCE_TOLERANCE)


def test_navigable_elevation_level_camera(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert location(sim, "up").rel_elevation == pytest.approx(UP_ELEVATION, abs=ANGLE_TOLERANCE)


def test_navigable_elevation_raised_camera(sim: Simulator) -> None:
    # atan2(2, 1) - 30 degrees = 33.43 degrees.
    sim.new_episode("synth", "o", 0.0, math.radians(30))
    expected = UP_ELEVATION - math.radians(30)
    assert location(sim, "up").rel_elevation == pytest.approx(expected, abs=ANGLE_TOLERANCE)


def test_navigable_elevation_lowered_camera(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, math.radians(-30))
    assert location(sim, "l20").rel_elevation == pytest.approx(math.radians(30), abs=ANGLE_TOLERANCE)


def test_navigable_order_raised_camera(sim: Simulator) -> None:
    # Looking 30 degrees up: up is 33.4 degrees off centre, l20 sqrt(20^2 + 30^2) = 36.1,
    # r39 sqrt(39^2 + 30^2) = 49.2.
    sim.new_episode("synth", "o", 0.0, math.radians(30))
    assert navigable_ids(sim) == ["o", "up", "l20", "r39"]


def test_navigable_order_lowered_camera(sim: Simulator) -> None:
    # Looking 30 degrees down: l20 36.1, r39 49.2, up 93.4 degrees off centre.
    sim.new_episode("synth", "o", 0.0, math.radians(-30))
    assert navigable_ids(sim) == ["o", "l20", "r39", "up"]


def test_navigable_heading_60(sim: Simulator) -> None:
    # Heading 60: r41 at -19, r39 at -21, east at +30 degrees.
    sim.new_episode("synth", "o", math.radians(60), 0.0)
    assert navigable_ids(sim) == ["o", "r41", "r39", "east"]


def test_navigable_relative_to_turned_camera(sim: Simulator) -> None:
    sim.new_episode("synth", "o", math.radians(60), 0.0)
    assert location(sim, "r39").rel_heading == pytest.approx(math.radians(-21), abs=ANGLE_TOLERANCE)


def test_navigable_east_ahead_at_90(sim: Simulator) -> None:
    sim.new_episode("synth", "o", math.radians(90), 0.0)
    assert location(sim, "east").rel_heading == pytest.approx(0.0, abs=ANGLE_TOLERANCE)


def test_navigable_across_north(sim: Simulator) -> None:
    # Heading 330: l20 (bearing 340) at +10, up (bearing 0) at +30 degrees.
    sim.new_episode("synth", "o", math.radians(330), 0.0)
    assert navigable_ids(sim) == ["o", "l20", "up"]


def test_navigable_wraps_relative_heading(sim: Simulator) -> None:
    sim.new_episode("synth", "o", math.radians(330), 0.0)
    assert location(sim, "up").rel_heading == pytest.approx(math.radians(30), abs=ANGLE_TOLERANCE)


def test_navigable_behind(sim: Simulator) -> None:
    sim.new_episode("synth", "o", math.radians(180), 0.0)
    assert navigable_ids(sim) == ["o", "back"]


def test_navigable_position_from_pose(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert location(sim, "up").position == (0.0, 1.0, 2.0)


def test_navigable_narrow_camera(synth_connectivity: Connectivity) -> None:
    # A square image: vfov * width / height / 2 = 30 degrees, so r39 drops out.
    sim = Simulator(synth_connectivity, CameraSettings(width=480, height=480))
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert navigable_ids(sim) == ["o", "l20", "up"]


def test_navigable_unrestricted(synth_connectivity: Connectivity) -> None:
    sim = Simulator(synth_connectivity, CameraSettings(restricted_navigation=False))
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert sorted(navigable_ids(sim)[1:]) == ["back", "east", "l20", "r39", "r41", "up"]


def test_camera_half_fov() -> None:
    assert CameraSettings().cos_half_hfov == pytest.approx(math.cos(math.radians(40)))


def test_view_heading_of_index() -> None:
    assert view_heading(15) == pytest.approx(math.radians(90))


def test_view_heading_upper_row() -> None:
    assert view_heading(35) == pytest.approx(math.radians(330))


def test_view_elevation_rows() -> None:
    assert view_elevation(np.array([0, 12, 24])).tolist() == pytest.approx(
        [math.radians(-30), 0.0, math.radians(30)]
    )


def test_navigable_table_count(synth_connectivity: Connectivity) -> None:
    table = navigable_table(synth_connectivity["synth"])
    # Row of viewpoint o (index 0), view 12: o, l20, r39, up.
    assert table.count[0 * 36 + 12] == 4


def test_navigable_table_padding(synth_connectivity: Connectivity) -> None:
    table = navigable_table(synth_connectivity["synth"])
    assert (table.target[0 * 36 + 12, 4:] == -1).all()


# --- single-episode actions -----------------------------------------------------------


def test_make_action_moves(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(1)
    assert sim.state.viewpoint == "l20"


def test_make_action_keeps_angles(sim: Simulator) -> None:
    sim.new_episode("synth", "o", math.radians(60), math.radians(30))
    sim.make_action(1)
    assert (sim.state.heading, sim.state.elevation) == pytest.approx((math.radians(60), math.radians(30)))


def test_make_action_counts_steps(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, 1.0, 0.0)
    sim.make_action(0, 1.0, 0.0)
    assert sim.state.step == 2


def test_make_action_new_episode_resets_step(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, 1.0, 0.0)
    sim.new_episode("synth", "o", 0.0, 0.0)
    assert sim.state.step == 0


def test_make_action_moves_before_turning(sim: Simulator) -> None:
    # At heading 0 index 2 is r39; after a right turn index 2 would be r41.
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(2, 1.0, 0.0)
    assert sim.state.viewpoint == "r39"


def test_make_action_turn_after_move(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(2, 1.0, 0.0)
    assert sim.state.heading == pytest.approx(math.radians(30))


def test_make_action_turn_right(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, 1.0, 0.0)
    assert sim.state.view_index == 13


def test_make_action_turn_left_wraps(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, -1.0, 0.0)
    assert sim.state.heading == pytest.approx(math.radians(330))


def test_make_action_turn_left_view(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, -1.0, 0.0)
    assert sim.state.view_index == 23


def test_make_action_turn_by_sign_only(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, 0.01, 0.0)
    assert sim.state.heading == pytest.approx(math.radians(30))


def test_make_action_large_turn_is_one_step(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, math.radians(90), 0.0)
    assert sim.state.heading == pytest.approx(math.radians(30))


def test_make_action_look_up(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, 0.0, 1.0)
    assert sim.state.view_index == 24


def test_make_action_elevation_stops_up(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, math.radians(30))
    sim.make_action(0, 0.0, 1.0)
    assert sim.state.elevation == pytest.approx(math.radians(30))


def test_make_action_elevation_stops_down(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    sim.make_action(0, 0.0, -1.0)
    sim.make_action(0, 0.0, -1.0)
    assert sim.state.elevation == pytest.approx(math.radians(-30))


def test_make_action_index_too_large(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    with pytest.raises(InvalidActionError, match="got 4"):
        sim.make_action(4)


def test_make_action_index_negative(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    with pytest.raises(InvalidActionError):
        sim.make_action(-1)


def test_make_action_invalid_keeps_state(sim: Simulator) -> None:
    sim.new_episode("synth", "o", 0.0, 0.0)
    with pytest.raises(InvalidActionError):
        sim.make_action(9, 1.0, 1.0)
    assert (sim.state.viewpoint, sim.state.view_index, sim.state.step) == ("o", 12, 0)


def test_make_action_before_episode(sim: Simulator) -> None:
    with pytest.raises(InvalidActionError):
        sim.make_action(0)


def test_state_before_episode(sim: Simulator) -> None:
    with pytest.raises(InvalidActionError):
        _ = sim.state


def test_new_episode_excluded_viewpoint(sim: Simulator) -> None:
    with pytest.raises(UnknownViewpointError, match="excluded"):
        sim.new_episode("synth", "excluded", 0.0, 0.0)


def test_new_episode_unknown_viewpoint(sim: Simulator) -> None:
    with pytest.raises(UnknownViewpointError, match="'nowhere'"):
        sim.new_episode("synth", "nowhere", 0.0, 0.0)


def test_new_episode_unknown_scan(sim: Simulator) -> None:
    with pytest.raises(UnknownScanError, match="'synthh'"):
        sim.new_episode("synthh", "o", 0.0, 0.0)


def test_state_records_scan(sim: Simulator) -> None:
    sim.new_episode("line", "p1", 0.0, 0.0)
    assert sim.state.scan == "line"


def test_state_position(sim: Simulator) -> None:
    sim.new_episode("line", "p2", 0.0, 0.0)
    assert sim.state.position == (0.0, 4.0, 0.0)


def test_obstructed_pair_not_navigable(sim: Simulator) -> None:
    # p0 and p2 are both straight ahead, but only p1 is unobstructed from p0.
    sim.new_episode("line", "p0", 0.0, 0.0)
    assert navigable_ids(sim) == ["p0", "p1"]


@given(
    turns=st.lists(st.tuples(st.sampled_from([-2.0, -0.5, 0.0, 0.5, 2.0]), st.sampled_from([-1.0, 0.0, 1.0])))
)
def test_turns_follow_signs(synth_connectivity: Connectivity, turns: list[tuple[float, float]]) -> None:
    sim = Simulator(synth_connectivity)
    sim.new_episode("line", "p1", 0.0, 0.0)
    heading_deg, elevation_deg = 0, 0
    for heading, elevation in turns:
        sim.make_action(0, heading, elevation)
        heading_deg = (heading_deg + 30 * int(np.sign(heading))) % 360
        elevation_deg = min(30, max(-30, elevation_deg + 30 * int(np.sign(elevation))))
    assert sim.state.heading == pytest.approx(math.radians(heading_deg), abs=1e-12)
    assert sim.state.elevation == pytest.approx(math.radians(elevation_deg), abs=1e-12)


# --- batch API ------------------------------------------------------------------------


STARTS = [("synth", "o"), ("line", "p0"), ("synth", "east"), ("line", "p2")]


def random_actions(rng: np.random.Generator, counts: list[int]) -> list[tuple[int, float, float]]:
    return [
        (int(rng.integers(count)), float(rng.choice([-1.0, 0.0, 1.0])), float(rng.choice([-1.0, 0.0, 1.0])))
        for count in counts
    ]


def test_batch_matches_single(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    singles = [Simulator(synth_connectivity) for _ in STARTS]
    headings = [0.0, 1.0, 2.5, -0.7]
    elevations = [0.0, 0.4, -0.4, 0.0]
    batch.new_episodes([s for s, _ in STARTS], [v for _, v in STARTS], headings, elevations)
    for single, (scan, viewpoint), h, e in zip(singles, STARTS, headings, elevations):
        single.new_episode(scan, viewpoint, h, e)

    rng = np.random.default_rng(7)
    for step in range(40):
        actions = random_actions(rng, [len(s.state.navigable_locations) for s in singles])
        batch.make_actions(*zip(*actions))
        for single, action in zip(singles, actions):
            single.make_action(*action)
        for i, single in enumerate(singles):
            assert batch.state(i) == single.state, f"episode {i}, step {step}"


def test_batch_slots_restart(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth", "line"], ["o", "p0"], [0.0, 0.0], [0.0, 0.0])
    batch.make_actions([1, 1], [1.0, 1.0], [0.0, 0.0])
    batch.new_episodes(["synth"], ["east"], [math.radians(180)], [0.0], slots=[1])

    single = Simulator(synth_connectivity)
    single.new_episode("synth", "east", math.radians(180), 0.0)
    assert batch.state(1) == single.state


def test_batch_slots_leave_others(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth", "line"], ["o", "p0"], [0.0, 0.0], [0.0, 0.0])
    batch.make_actions([1, 1], [1.0, 1.0], [0.0, 0.0])
    batch.new_episodes(["synth"], ["east"], [0.0], [0.0], slots=[1])

    single = Simulator(synth_connectivity)
    single.new_episode("synth", "o", 0.0, 0.0)
    single.make_action(1, 1.0, 0.0)
    assert batch.state(0) == single.state


def test_batch_size(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"] * 3, ["o"] * 3, [0.0] * 3, [0.0] * 3)
    assert batch.batch_size == 3


def test_batch_unequal_lengths(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    with pytest.raises(ValueError, match="equally long"):
        batch.new_episodes(["synth", "synth"], ["o"], [0.0, 0.0], [0.0, 0.0])


def test_batch_slots_wrong_length(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"] * 2, ["o"] * 2, [0.0] * 2, [0.0] * 2)
    with pytest.raises(ValueError, match="one slot per episode"):
        batch.new_episodes(["synth"], ["o"], [0.0], [0.0], slots=[0, 1])


def test_batch_wrong_action_count(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"] * 2, ["o"] * 2, [0.0] * 2, [0.0] * 2)
    with pytest.raises(InvalidActionError, match="expected 2 actions"):
        batch.make_actions([0, 0, 0], [0.0] * 3, [0.0] * 3)


def test_batch_invalid_index_names_episode(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth", "line"], ["o", "p0"], [0.0, 0.0], [0.0, 0.0])
    # p0 at heading 0 has two navigable locations: itself and p1.
    with pytest.raises(InvalidActionError, match="episode 1"):
        batch.make_actions([3, 2], [0.0, 0.0], [0.0, 0.0])


def test_batch_navigable_arrays(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth", "line"], ["o", "p0"], [0.0, 0.0], [0.0, 0.0])
    assert batch.navigable_arrays()["count"].tolist() == [4, 2]


def test_batch_bad_heading_keeps_state(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"] * 3, ["o"] * 3, [0.0] * 3, [0.0] * 3)
    with pytest.raises(InvalidActionError):
        batch.make_actions([1, 1, 1], [0.0, 0.0], [0.0, 0.0, 0.0])
    assert batch.state(0).viewpoint == "o"


def test_batch_short_heading_rejected(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"] * 3, ["o"] * 3, [0.0] * 3, [0.0] * 3)
    with pytest.raises(InvalidActionError):
        batch.make_actions([0, 0, 0], [1.0], [0.0, 0.0, 0.0])


def test_batch_negative_slot_rejected(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"] * 2, ["o"] * 2, [0.0] * 2, [0.0] * 2)
    with pytest.raises(ValueError):
        batch.new_episodes(["synth"], ["east"], [0.0], [0.0], slots=[-1])


# Candidates of "o" were worked out by hand in tests/test_candidates.py. Index 4 is east,
# best seen in view 15 (heading 90, level) at slot 1. Index 2 is up, best seen in view 24
# (heading 0, looking up) at slot 1.
EAST_CANDIDATE, EAST_VIEW = 4, 15
UP_CANDIDATE, UP_VIEW = 2, 24


def test_candidate_action_moves(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"], ["o"], [0.0], [0.0])
    batch.make_candidate_actions([EAST_CANDIDATE])
    assert batch.state(0).viewpoint == "east"


def test_candidate_action_view(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"], ["o"], [0.0], [0.0])
    batch.make_candidate_actions([UP_CANDIDATE])
    assert batch.state(0).view_index == UP_VIEW


def test_candidate_action_counts_step(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"], ["o"], [0.0], [0.0])
    batch.make_candidate_actions([EAST_CANDIDATE])
    assert batch.state(0).step == 1


def test_candidate_action_matches_turn_then_move(synth_connectivity: Connectivity) -> None:
    # The same move with single-episode calls: face view 15, then take slot 1.
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth"], ["o"], [0.0], [0.0])
    batch.make_candidate_actions([EAST_CANDIDATE])

    single = Simulator(synth_connectivity)
    single.new_episode("synth", "o", 0.0, 0.0)
    for _ in range(EAST_VIEW % 12):
        single.make_action(0, 1.0, 0.0)
    single.make_action(1, 0.0, 0.0)
    ours, theirs = batch.state(0), single.state
    assert (ours.viewpoint, ours.view_index) == (theirs.viewpoint, theirs.view_index)


def test_candidate_action_not_moving(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth", "synth"], ["o", "o"], [0.0, 0.0], [0.0, 0.0])
    batch.make_candidate_actions([EAST_CANDIDATE, 99], np.array([True, False]))
    still = batch.state(1)
    assert (still.viewpoint, still.view_index, still.step) == ("o", 12, 0)


def test_candidate_action_invalid(synth_connectivity: Connectivity) -> None:
    # o has six candidates.
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth", "synth"], ["o", "o"], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(InvalidActionError, match="episode 1"):
        batch.make_candidate_actions([0, 6])


def test_candidate_action_batch_matches_single(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes([s for s, _ in STARTS], [v for _, v in STARTS], [0.0] * 4, [0.0] * 4)
    singles = [BatchSimulator(synth_connectivity) for _ in STARTS]
    for single, (scan, viewpoint) in zip(singles, STARTS):
        single.new_episodes([scan], [viewpoint], [0.0], [0.0])

    rng = np.random.default_rng(3)
    for step in range(20):
        counts = [int(single.tables.candidates.count[single.viewpoint[0]]) for single in singles]
        chosen = [int(rng.integers(count)) for count in counts]
        moving = rng.random(len(STARTS)) < 0.7
        batch.make_candidate_actions(chosen, moving)
        for single, candidate, move in zip(singles, chosen, moving):
            if move:
                single.make_candidate_actions([candidate])
        for i, single in enumerate(singles):
            assert batch.state(i) == single.state(0), f"episode {i}, step {step}"


def test_candidate_action_integer_mask(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth", "synth"], ["o", "o"], [0.0, 0.0], [0.0, 0.0])
    batch.make_candidate_actions([EAST_CANDIDATE, EAST_CANDIDATE], np.array([1, 1]))
    assert batch.state(0).viewpoint == "east"


def test_candidate_action_short_mask(synth_connectivity: Connectivity) -> None:
    batch = BatchSimulator(synth_connectivity)
    batch.new_episodes(["synth", "synth"], ["o", "o"], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(InvalidActionError):
        batch.make_candidate_actions([EAST_CANDIDATE, EAST_CANDIDATE], np.array([True]))
