"""The egocentric action space: simulator semantics, masks, the low-level teacher and the environments."""

from __future__ import annotations

import json
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs
from connectivity.loader import parse_scan_graph
from envs.egocentric import (
    FORWARD,
    STOP,
    egocentric_next_hops,
    forward_reachable,
    teacher_turn_actions,
    turn_counts,
)
from envs.navigable import navigable_table
from envs.r2r_env import R2REnv, R2RVectorEnv
from envs.simulator import InvalidActionError, Simulator
from envs.world import EnvSettings, NavigationWorld
from tests.conftest import needs_real_data

# makeAction(index, heading, elevation) of each action, written out independently of envs.egocentric.
MAKE_ACTION = {0: (0, -1.0, 0.0), 1: (0, 1.0, 0.0), 2: (0, 0.0, 1.0), 3: (0, 0.0, -1.0), 4: (1, 0.0, 0.0)}
HALF_HFOV = math.radians(40)


def egocentric_env(world, **kwargs) -> R2REnv:
    return R2REnv(world=world, action_space="egocentric", **kwargs)


def run_teacher(env: R2RVectorEnv, split: str, instr_ids: list[str], limit: int = 200) -> dict[str, list]:
    """Follow the teacher on a batch of episodes until every one stops; return trajectories by instr_id."""
    mask = np.zeros(env.num_envs, dtype=bool)
    mask[: len(instr_ids)] = True
    env.reset(options={"split": split, "instr_ids": instr_ids, "reset_mask": mask})
    running = mask.copy()
    trajectories, metrics = {}, {}
    for _ in range(limit):
        if not running.any():
            break
        _, _, terminated, truncated, infos = env.step(env.teacher_actions())
        for slot in np.flatnonzero(running & (terminated | truncated)):
            instr_id = env.episodes[slot].instr_id
            trajectories[instr_id] = infos["trajectory"][slot]
            metrics[instr_id] = infos["metrics"][slot]
            assert terminated[slot], f"{instr_id}: the teacher was truncated"
        running &= ~(terminated | truncated)
    assert not running.any(), f"the teacher did not stop within {limit} actions"
    return {"trajectories": trajectories, "metrics": metrics}


def collapse(trajectory: list) -> list[str]:
    viewpoints = [pose[0] for pose in trajectory]
    return [v for i, v in enumerate(viewpoints) if i == 0 or v != viewpoints[i - 1]]


def view_centre_neighbour(graph, viewpoint: str, heading: float, elevation: float) -> str | None:
    """Return the neighbour nearest the view centre among those within 40 degrees of the heading, from positions."""
    here = graph.positions[graph.index(viewpoint)]
    best, best_key = None, math.inf
    for neighbour in graph.neighbors(viewpoint):  # file order, so ties keep the first
        dx, dy, dz = graph.positions[graph.index(neighbour)] - here
        bearing = math.atan2(dx, dy)
        rel_heading = (bearing - heading + math.pi) % (2 * math.pi) - math.pi
        if abs(rel_heading) > HALF_HFOV:
            continue
        rel_elevation = math.atan2(dz, math.hypot(dx, dy)) - elevation
        key = math.hypot(rel_heading, rel_elevation)
        if key < best_key - 1e-9:
            best, best_key = neighbour, key
    return best


# --- action semantics ------------------------------------------------------------------


def test_actions_match_simulator(demo_world) -> None:
    env = egocentric_env(demo_world)
    sim = Simulator(demo_world.connectivity)
    rng = np.random.default_rng(0)
    for episode in demo_world.split("val_seen").episodes[:6]:
        _, info = env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
        sim.new_episode(episode.scan, episode.start, episode.heading, 0.0)
        for _ in range(25):
            action = int(rng.choice(np.flatnonzero(info["action_mask"][:STOP])))
            _, _, _, _, info = env.step(action)
            sim.make_action(*MAKE_ACTION[action])
            viewpoint, heading, elevation = info["trajectory"][-1]
            assert viewpoint == sim.state.viewpoint
            assert heading == pytest.approx(sim.state.heading)
            assert elevation == pytest.approx(sim.state.elevation)


def test_forward_reaches_view_centre_neighbour(demo_world) -> None:
    env = egocentric_env(demo_world)
    episode = demo_world.split("val_unseen").episodes[0]
    graph = demo_world.connectivity[episode.scan]
    _, info = env.reset(options={"split": "val_unseen", "instr_id": episode.instr_id})
    moves = 0
    for action in [2, 4, 1, 4, 3, 3, 4, 0, 4, 1, 1, 4, 2, 4, 0, 4] * 3:
        viewpoint, heading, elevation = info["trajectory"][-1]
        expected = view_centre_neighbour(graph, viewpoint, heading, elevation)
        if action == FORWARD and expected is None:
            assert info["action_mask"][FORWARD] == 0
            continue
        _, _, _, _, info = env.step(action)
        if action == FORWARD:
            moves += 1
            assert info["trajectory"][-1][0] == expected
            assert tuple(info["trajectory"][-1][1:]) == (heading, elevation)
    assert moves > 0


def test_turn_keeps_viewpoint_with_zero_reward(demo_world) -> None:
    env = egocentric_env(demo_world)
    _, info = env.reset(seed=0)
    start = info["trajectory"][0]
    _, reward, terminated, _, info = env.step(1)  # right
    assert reward == 0.0
    assert not terminated
    assert info["trajectory"][-1][0] == start[0]
    assert info["trajectory"][-1][1] == pytest.approx((start[1] + math.pi / 6) % (2 * math.pi))


def test_turns_recorded_in_trajectory(demo_world) -> None:
    env = egocentric_env(demo_world)
    env.reset(seed=0)
    for action in (0, 0, 2):
        _, _, _, _, info = env.step(action)
    assert len(info["trajectory"]) == 4


def test_elevation_clamped_at_top(demo_world) -> None:
    env = egocentric_env(demo_world)
    env.reset(seed=0)
    env.step(2)
    _, reward, _, _, info = env.step(2)
    assert not info["invalid_action"]
    assert info["trajectory"][-1][2] == pytest.approx(math.pi / 6)
    assert info["trajectory"][-2][2] == pytest.approx(math.pi / 6)
    assert reward == 0.0


def test_left_wraps_heading(demo_world) -> None:
    env = egocentric_env(demo_world)
    episode = demo_world.split("val_seen").episodes[0]
    _, info = env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
    for _ in range(12):
        _, _, _, _, info = env.step(0)
    assert info["trajectory"][-1] == info["trajectory"][0]


def test_move_reward_is_distance_gain(demo_world) -> None:
    env = egocentric_env(demo_world)
    episode = demo_world.split("val_seen").episodes[0]
    graph = demo_world.connectivity[episode.scan]
    env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
    while (action := env.teacher_action()) != FORWARD:
        env.step(action)
    _, reward, _, _, info = env.step(FORWARD)
    here = info["trajectory"][-1][0]
    expected = graph.distance(episode.start, episode.goal) - graph.distance(here, episode.goal)
    assert reward == pytest.approx(expected)


# --- masks and observations --------------------------------------------------------------


def test_forward_mask_matches_navigable(demo_world) -> None:
    env = egocentric_env(demo_world)
    sim = Simulator(demo_world.connectivity)
    rng = np.random.default_rng(1)
    observation, info = env.reset(seed=3)
    episode = env.episode
    sim.new_episode(episode.scan, episode.start, episode.heading, 0.0)
    blocked_seen = False
    for _ in range(40):
        has_neighbour = len(sim.state.navigable_locations) > 1
        blocked_seen |= not has_neighbour
        assert info["action_mask"][FORWARD] == int(has_neighbour)
        assert observation["forward_mask"][0] == int(has_neighbour)
        assert observation["view_index"][0] == sim.state.view_index
        assert info["action_mask"][[0, 1, 2, 3, STOP]].tolist() == [1, 1, 1, 1, 1]
        action = int(rng.choice(np.flatnonzero(info["action_mask"][:STOP])))
        observation, _, _, _, info = env.step(action)
        sim.make_action(*MAKE_ACTION[action])
    assert blocked_seen, "no state without a forward neighbour was visited; the test checks one mask value"


def blocked_state(env: R2REnv) -> dict:
    """Reset and turn right until the view shows no neighbour; return the last info."""
    _, info = env.reset(seed=0)
    for _ in range(12):
        if info["action_mask"][FORWARD] == 0:
            return info
        _, _, _, _, info = env.step(1)
    pytest.fail("every heading of the start viewpoint shows a neighbour; choose another episode")


def test_forward_without_neighbour_ignored(demo_world) -> None:
    env = egocentric_env(demo_world)
    info = blocked_state(env)
    length = len(info["trajectory"])
    _, reward, terminated, _, info = env.step(FORWARD)
    assert info["invalid_action"]
    assert reward == 0.0
    assert not terminated
    assert len(info["trajectory"]) == length


def test_forward_without_neighbour_raises(demo_world) -> None:
    env = egocentric_env(demo_world, invalid_actions="raise")
    blocked_state(env)
    with pytest.raises(InvalidActionError, match="forward is invalid"):
        env.step(FORWARD)


def test_out_of_range_action_raises(demo_world) -> None:
    env = egocentric_env(demo_world, invalid_actions="raise")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="expected an egocentric action"):
        env.step(6)


def test_view_index_from_pose(demo_world) -> None:
    env = egocentric_env(demo_world)
    env.reset(seed=0)
    for action in (1, 2, 1, 4, 3, 3):
        if action == FORWARD and not env.batch.action_masks()[0, FORWARD]:
            continue
        observation, _, _, _, info = env.step(action)
        viewpoint, heading, elevation = info["trajectory"][-1]
        expected = round(heading / (math.pi / 6)) % 12 + 12 * (round(elevation / (math.pi / 6)) + 1)
        assert observation["view_index"][0] == expected
        assert observation["elevation"][0] == pytest.approx(elevation)


def test_panoramic_observation_keys_unchanged(demo_world) -> None:
    observation, _ = R2REnv(world=demo_world).reset(seed=0)
    assert "view_index" not in observation
    assert "forward_mask" not in observation


def test_unknown_action_space_rejected(demo_world) -> None:
    with pytest.raises(ValueError, match="action_space must be"):
        R2REnv(world=demo_world, action_space="low-level")


# --- the teacher -----------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val_seen", "val_unseen"])
def test_teacher_reaches_demo_goals(demo_world, split: str) -> None:
    episodes = demo_world.split(split).episodes
    env = R2RVectorEnv(
        num_envs=len(episodes),
        world=demo_world,
        autoreset_mode=AutoresetMode.DISABLED,
        action_space="egocentric",
    )
    result = run_teacher(env, split, [e.instr_id for e in episodes])
    for episode in episodes:
        assert collapse(result["trajectories"][episode.instr_id])[-1] == episode.goal, episode.instr_id
        assert result["metrics"][episode.instr_id]["success"] == 1.0, episode.instr_id


def forward_views(world, scan: str, viewpoint: str) -> dict[tuple[int, int], str]:
    """Read navigable_locations[1] of every view (heading step, elevation row) of a viewpoint from the simulator."""
    sim = Simulator(world.connectivity)
    shown = {}
    for row in range(3):
        for step in range(12):
            sim.new_episode(scan, viewpoint, step * math.pi / 6, (row - 1) * math.pi / 6)
            locations = sim.state.navigable_locations
            if len(locations) > 1:
                shown[step, row] = locations[1].viewpoint
    return shown


def test_teacher_retraces_shortest_path(demo_world) -> None:
    # Where every edge of the shortest path can be taken by forward, the teacher walks it.
    episodes = demo_world.split("train").episodes
    env = R2RVectorEnv(
        num_envs=len(episodes),
        world=demo_world,
        autoreset_mode=AutoresetMode.DISABLED,
        action_space="egocentric",
    )
    trajectories = run_teacher(env, "train", [e.instr_id for e in episodes])["trajectories"]
    reachable: dict[tuple[str, str], set[str]] = {}
    checked = 0
    for episode in episodes:
        graph = demo_world.connectivity[episode.scan]
        path = graph.shortest_path(episode.start, episode.goal)
        for viewpoint in path:
            if (episode.scan, viewpoint) not in reachable:
                shown = forward_views(demo_world, episode.scan, viewpoint)
                reachable[episode.scan, viewpoint] = set(shown.values())
        if all(there in reachable[episode.scan, here] for here, there in zip(path, path[1:])):
            checked += 1
            assert collapse(trajectories[episode.instr_id]) == path, episode.instr_id
    assert checked > 0.9 * len(episodes)


def test_teacher_turns_are_fewest(demo_world) -> None:
    # Before each forward move, the teacher turns exactly as often as the nearest view
    # (by heading steps plus elevation steps) that shows the next viewpoint at slot 1.
    env = egocentric_env(demo_world)
    for episode in demo_world.split("val_unseen").episodes[:8]:
        env.reset(options={"split": "val_unseen", "instr_id": episode.instr_id})
        turns, before = 0, None
        while (action := env.teacher_action()) != STOP:
            if before is None:
                before = env.batch.trajectories[0][-1]
            if action == FORWARD:
                _, _, _, _, info = env.step(action)
                target = info["trajectory"][-1][0]
                viewpoint, heading, elevation = before
                step, row = round(heading / (math.pi / 6)) % 12, round(elevation / (math.pi / 6)) + 1
                fewest = math.inf
                for (view_step, view_row), shown in forward_views(
                    demo_world, episode.scan, viewpoint
                ).items():
                    if shown == target:
                        gap = abs(view_step - step)
                        fewest = min(fewest, min(gap, 12 - gap) + abs(view_row - row))
                assert turns == fewest, episode.instr_id
                turns, before = 0, None
            else:
                env.step(action)
                turns += 1


def test_turn_counts_by_hand() -> None:
    counts = turn_counts(np.array([0, 11]), np.array([1, 0]))
    assert counts[0, 12] == 0  # view 12: heading step 0, level
    assert counts[0, 6 + 24] == 7  # 6 heading steps and 1 row up
    assert counts[1, 0] == 1  # heading 11 to 0 is one step right
    assert counts[1, 35] == 2


def test_teacher_turn_prefers_right_on_tie() -> None:
    slot_one = np.full((1, 36), -1)
    slot_one[0, 12 + 6] = 7  # only the level view behind the agent shows viewpoint 7
    actions, found = teacher_turn_actions(np.array([0]), np.array([1]), slot_one, np.array([7]))
    assert found[0]
    assert actions[0] == 1  # right


def test_teacher_turns_heading_before_elevation() -> None:
    slot_one = np.full((1, 36), -1)
    slot_one[0, 24 + 11] = 4  # heading step 11, looking up
    actions, _ = teacher_turn_actions(np.array([0]), np.array([1]), slot_one, np.array([4]))
    assert actions[0] == 0  # left


def test_teacher_without_view_stops() -> None:
    actions, found = teacher_turn_actions(np.array([0]), np.array([1]), np.full((1, 36), -1), np.array([3]))
    assert not found[0]
    assert actions[0] == STOP


# --- a neighbour that is never at navigable location 1 ---------------------------------------

FLANKED_POSITIONS = {
    "a": (0.0, 0.0),
    "c": (0.0, 1.0),  # bearing 0 from a
    "e": (math.sin(math.pi / 6), math.cos(math.pi / 6)),  # bearing 30 degrees from a
    "b": (2 * math.sin(math.pi / 12), 2 * math.cos(math.pi / 12)),  # bearing 15 degrees, 2 m from a
}
FLANKED_LINKS = {("a", "b"), ("a", "c"), ("a", "e"), ("c", "b"), ("e", "b")}


def flanked_entries() -> list[dict]:
    """Connectivity entries of a scan where a's neighbour b is never at navigable location 1.

    All four viewpoints are at one height. From a, b lies halfway between headings 0 and 30
    degrees, so only those two headings show it (the field of view is +-40 degrees), and
    in each c or e lies nearer the centre. The direct edge a-b is the shortest path (2 m);
    a route through c or e is 6.6 cm longer.
    """
    names = list(FLANKED_POSITIONS)
    return [
        {
            "image_id": name,
            "pose": [
                1,
                0,
                0,
                FLANKED_POSITIONS[name][0],
                0,
                1,
                0,
                FLANKED_POSITIONS[name][1],
                0,
                0,
                1,
                1.5,
                0,
                0,
                0,
                1,
            ],
            "included": True,
            "unobstructed": [
                (name, other) in FLANKED_LINKS or (other, name) in FLANKED_LINKS for other in names
            ],
            "height": 1.5,
        }
        for name in names
    ]


def flanked_slot_one(graph) -> np.ndarray:
    return navigable_table(graph).target[:, 1].reshape(len(graph), 36)


def test_flanked_neighbour_never_forward() -> None:
    graph = parse_scan_graph("flanked", flanked_entries())
    reachable = forward_reachable(graph, flanked_slot_one(graph))
    a, c, e, b = (graph.index(name) for name in "aceb")
    assert graph.adjacency[a, b]
    assert not reachable[a, b]
    assert reachable[a, c]
    assert reachable[a, e]
    assert reachable[c, b]
    assert reachable[e, b]


def test_hops_route_around_unreachable_edge() -> None:
    graph = parse_scan_graph("flanked", flanked_entries())
    hops = egocentric_next_hops(graph, flanked_slot_one(graph))
    a, c, e, b = (graph.index(name) for name in "aceb")
    assert graph.next_hops[b, a] == b  # the graph's shortest path is the direct edge
    assert hops[b, a] in (c, e)
    assert hops[b, c] == b
    assert hops[b, e] == b
    assert hops[b, b] < 0
    assert hops[c, a] == c  # edges that forward can take keep the graph's hop


def test_teacher_walks_detour(tmp_path) -> None:
    connectivity = tmp_path / "connectivity"
    connectivity.mkdir()
    (connectivity / "scans.txt").write_text("flanked\n")
    (connectivity / "flanked_connectivity.json").write_text(json.dumps(flanked_entries()))
    (tmp_path / "R2R").mkdir()
    episode = {
        "scan": "flanked",
        "path_id": 1,
        "path": ["a", "b"],
        "heading": 0.0,
        "distance": 2.0,
        "instructions": ["walk to b"],
    }
    (tmp_path / "R2R" / "R2R_train.json").write_text(json.dumps([episode]))
    world = NavigationWorld.from_settings(
        EnvSettings(data_dir=str(tmp_path), feature_dim=4, min_word_count=1)
    )
    env = R2RVectorEnv(
        num_envs=1, world=world, autoreset_mode=AutoresetMode.DISABLED, action_space="egocentric"
    )
    result = run_teacher(env, "train", ["1_0"])
    assert collapse(result["trajectories"]["1_0"]) in (["a", "c", "b"], ["a", "e", "b"])
    assert result["metrics"]["1_0"]["success"] == 1.0


# --- environments -------------------------------------------------------------------------


def test_egocentric_env_passes_checker(demo_world) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded feature boxes are expected
        check_env(egocentric_env(demo_world), skip_render_check=True)


def test_made_egocentric_env(demo_dir) -> None:
    env = gym.make(envs.R2R_EGOCENTRIC_ENV_ID, data_dir=str(demo_dir), feature_dim=8)
    assert env.spec.max_episode_steps == 40
    assert env.action_space == spaces.Discrete(6)
    assert env.unwrapped.action_space_name == "egocentric"


def test_make_with_action_space_keyword(demo_dir) -> None:
    env = gym.make(envs.R2R_ENV_ID, data_dir=str(demo_dir), feature_dim=8, action_space="egocentric")
    assert env.action_space == spaces.Discrete(6)


def test_make_vec_egocentric(demo_dir) -> None:
    env = gym.make_vec(envs.R2R_EGOCENTRIC_ENV_ID, num_envs=3, data_dir=str(demo_dir), feature_dim=8)
    assert isinstance(env.unwrapped, R2RVectorEnv)
    assert env.unwrapped.max_episode_steps == 40
    assert env.action_space == spaces.MultiDiscrete([6, 6, 6])


def test_panoramic_registration_unchanged(demo_dir) -> None:
    env = gym.make(envs.R2R_ENV_ID, data_dir=str(demo_dir), feature_dim=8)
    assert env.spec.max_episode_steps == 35
    assert env.unwrapped.action_space_name == "panoramic"


def test_vector_matches_single_envs(demo_world) -> None:
    instr_ids = [e.instr_id for e in demo_world.split("val_seen").episodes[:3]]
    vector = R2RVectorEnv(
        num_envs=3, world=demo_world, autoreset_mode=AutoresetMode.DISABLED, action_space="egocentric"
    )
    vector_obs, vector_info = vector.reset(options={"split": "val_seen", "instr_ids": instr_ids})
    singles = [egocentric_env(demo_world) for _ in instr_ids]
    single_obs = [
        env.reset(options={"split": "val_seen", "instr_id": i})[0] for env, i in zip(singles, instr_ids)
    ]
    rng = np.random.default_rng(0)
    for _ in range(12):
        for slot, observation in enumerate(single_obs):
            assert set(observation) == set(vector_obs)
            for key in observation:
                np.testing.assert_array_equal(vector_obs[key][slot], observation[key], err_msg=key)
        actions = np.array([int(rng.choice(np.flatnonzero(m[:STOP]))) for m in vector_info["action_mask"]])
        vector_obs, vector_reward, _, _, vector_info = vector.step(actions)
        steps = [env.step(int(a)) for env, a in zip(singles, actions)]
        single_obs = [step[0] for step in steps]
        np.testing.assert_array_equal(vector_reward, [step[1] for step in steps])


def test_observation_in_space(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world, action_space="egocentric")
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)


# --- real data ----------------------------------------------------------------------------


@needs_real_data
def test_real_edges_never_at_slot_one(real_connectivity) -> None:
    edges = never = scans = cut_off = 0
    for scan in real_connectivity:
        graph = real_connectivity[scan]
        slot_one = navigable_table(graph).target[:, 1].reshape(len(graph), 36)
        reachable = forward_reachable(graph, slot_one)
        adjacency = graph.adjacency & ~np.eye(len(graph), dtype=bool)
        missing = int((adjacency & ~reachable).sum())
        edges += int(adjacency.sum())
        never += missing
        scans += missing > 0
        # Every connected pair keeps a teacher route through forward moves.
        connected = np.isfinite(graph.distances) & ~np.eye(len(graph), dtype=bool)
        cut_off += int((egocentric_next_hops(graph, slot_one)[connected] < 0).sum())
    assert cut_off == 0
    assert edges == 42_936
    assert never == 1_279
    assert scans == 84


@needs_real_data
@pytest.mark.parametrize("split", ["val_seen", "val_unseen"])
def test_teacher_reaches_real_goals(data_dir, split: str) -> None:
    world = NavigationWorld.from_settings(EnvSettings(data_dir=str(data_dir), feature_dim=4))
    episodes = world.split(split).episodes[::5]
    env = R2RVectorEnv(
        num_envs=len(episodes), world=world, autoreset_mode=AutoresetMode.DISABLED, action_space="egocentric"
    )
    result = run_teacher(env, split, [e.instr_id for e in episodes])
    successes = [result["metrics"][e.instr_id]["success"] for e in episodes]
    assert np.mean(successes) == 1.0
    assert all(collapse(result["trajectories"][e.instr_id])[-1] == e.goal for e in episodes)
