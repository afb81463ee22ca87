"""Replay of states recorded from the C++ Matterport3D Simulator (discretized, 640x480, 60 degrees)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from connectivity import Connectivity
from envs.simulator import BatchSimulator, SimState, Simulator

ANGLE_TOLERANCE = 1e-5  # radians
DISTANCE_TOLERANCE = 1e-5  # metres


@pytest.fixture(scope="module")
def reference(data_dir: Path) -> dict:
    path = data_dir / "mattersim_reference" / "states.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


def assert_same_state(ours: SimState, recorded: dict, context: str) -> None:
    assert ours.viewpoint == recorded["location"]["viewpointId"], context
    assert ours.view_index == recorded["viewIndex"], context
    assert ours.heading == pytest.approx(recorded["heading"], abs=ANGLE_TOLERANCE), context
    assert ours.elevation == pytest.approx(recorded["elevation"], abs=ANGLE_TOLERANCE), context
    ours_ids = [loc.viewpoint for loc in ours.navigable_locations]
    recorded_ids = [loc["viewpointId"] for loc in recorded["navigableLocations"]]
    assert ours_ids == recorded_ids, context
    for loc, expected in zip(ours.navigable_locations, recorded["navigableLocations"]):
        where = f"{context}, navigable {loc.viewpoint}"
        assert loc.rel_heading == pytest.approx(expected["rel_heading"], abs=ANGLE_TOLERANCE), where
        assert loc.rel_elevation == pytest.approx(expected["rel_elevation"], abs=ANGLE_TOLERANCE), where
        assert loc.rel_distance == pytest.approx(expected["rel_distance"], abs=DISTANCE_TOLERANCE), where
        recorded_position = (expected["x"], expected["y"], expected["z"])
        assert loc.position == pytest.approx(recorded_position, abs=1e-6), where


def test_initial_states_match(reference: dict, real_connectivity: Connectivity) -> None:
    sim = Simulator(real_connectivity)
    for entry in reference["viewpoints"]:
        sim.new_episode(entry["scanId"], entry["viewpointId"], 0.0, 0.0)
        assert_same_state(sim.state, entry["initial_h0_e0"], f"{entry['viewpointId']} initial")


def test_sweeps_match(reference: dict, real_connectivity: Connectivity) -> None:
    sim = Simulator(real_connectivity)
    for entry in reference["viewpoints"]:
        for ix, recorded in enumerate(entry["sweep36"]):
            if ix == 0:
                sim.new_episode(entry["scanId"], entry["viewpointId"], 0.0, np.radians(-30))
            elif ix % 12 == 0:
                sim.make_action(0, 1.0, 1.0)
            else:
                sim.make_action(0, 1.0, 0.0)
            assert_same_state(sim.state, recorded, f"{entry['viewpointId']} sweep {ix}")


def test_random_walks_match(reference: dict, real_connectivity: Connectivity) -> None:
    sim = Simulator(real_connectivity)
    for walk in reference["random_walks"]:
        first = walk["states"][0]
        sim.new_episode(walk["scanId"], walk["start_viewpointId"], first["heading"], first["elevation"])
        assert_same_state(sim.state, first, f"{walk['scanId']} walk start")
        for step, (action, recorded) in enumerate(zip(walk["actions"], walk["states"][1:]), 1):
            sim.make_action(action["index"], action["heading"], action["elevation"])
            assert_same_state(sim.state, recorded, f"{walk['scanId']} walk step {step}")
            assert sim.state.step == step


def test_batch_replays_walks_together(reference: dict, real_connectivity: Connectivity) -> None:
    walks = reference["random_walks"]
    sim = BatchSimulator(real_connectivity)
    sim.new_episodes(
        [w["scanId"] for w in walks],
        [w["start_viewpointId"] for w in walks],
        [w["states"][0]["heading"] for w in walks],
        [w["states"][0]["elevation"] for w in walks],
    )
    steps = min(len(w["actions"]) for w in walks)
    for step in range(steps):
        actions = [w["actions"][step] for w in walks]
        sim.make_actions(
            [a["index"] for a in actions], [a["heading"] for a in actions], [a["elevation"] for a in actions]
        )
        for i, walk in enumerate(walks):
            assert_same_state(sim.state(i), walk["states"][step + 1], f"batch {i} step {step + 1}")


def test_nan_heading_rejected(real_connectivity: Connectivity) -> None:
    sim = Simulator(real_connectivity)
    with pytest.raises(ValueError, match="finite"):
        sim.new_episode("17DRP5sb8fy", "10c252c90fa24ef3b698c6f54d984c5c", float("nan"), 0.0)


def test_nan_turn_rejected(real_connectivity: Connectivity) -> None:
    sim = Simulator(real_connectivity)
    sim.new_episode("17DRP5sb8fy", "10c252c90fa24ef3b698c6f54d984c5c", 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        sim.make_action(0, float("nan"), 0.0)
