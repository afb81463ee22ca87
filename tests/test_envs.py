"""The Gymnasium R2R environments: API contract, determinism, observations, rewards and ends."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs
from envs.navigable import view_elevation, view_heading
from envs.r2r_env import R2REnv, R2RVectorEnv
from envs.simulator import InvalidActionError


def first_ids(world, split: str, count: int) -> list[str]:
    return [episode.instr_id for episode in world.split(split).episodes[:count]]


def random_valid_action(rng: np.random.Generator, action_mask: np.ndarray) -> int:
    return int(rng.choice(np.flatnonzero(action_mask)))


def test_single_env_passes_checker(demo_world) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded feature boxes are expected
        check_env(R2REnv(world=demo_world), skip_render_check=True)


def test_made_env_passes_checker(demo_dir) -> None:
    env = gym.make(envs.R2R_ENV_ID, data_dir=str(demo_dir), feature_dim=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)


def test_registration_sets_step_limit(demo_dir) -> None:
    env = gym.make(envs.R2R_ENV_ID, data_dir=str(demo_dir), feature_dim=8)
    assert env.spec.max_episode_steps == 35


def test_make_vec_uses_native_vector_env(demo_dir) -> None:
    env = gym.make_vec(envs.R2R_ENV_ID, num_envs=3, data_dir=str(demo_dir), feature_dim=8)
    assert isinstance(env.unwrapped, R2RVectorEnv)
    assert env.unwrapped.max_episode_steps == 35


def test_single_env_truncates_at_step_limit(demo_dir) -> None:
    env = gym.make(envs.R2R_ENV_ID, data_dir=str(demo_dir), feature_dim=8, max_episode_steps=4)
    observation, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(4):
        mask = info["action_mask"].copy()
        mask[-1] = 0 if mask[:-1].any() else 1  # never STOP while a move exists
        observation, reward, terminated, truncated, info = env.step(random_valid_action(rng, mask))
    assert truncated
    assert "metrics" in info


def test_same_seed_same_observations(demo_world) -> None:
    env_a, env_b = R2REnv(world=demo_world), R2REnv(world=demo_world)
    obs_a, info_a = env_a.reset(seed=7)
    obs_b, info_b = env_b.reset(seed=7)
    rng = np.random.default_rng(3)
    for _ in range(6):
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=key)
        action = random_valid_action(rng, info_a["action_mask"])
        obs_a, _, done_a, _, info_a = env_a.step(action)
        obs_b, _, done_b, _, info_b = env_b.step(action)
        assert done_a == done_b
        if done_a:
            obs_a, info_a = env_a.reset()
            obs_b, info_b = env_b.reset()


def test_vector_same_seed_same_observations(demo_world) -> None:
    env_a = R2RVectorEnv(num_envs=4, world=demo_world, max_episode_steps=5)
    env_b = R2RVectorEnv(num_envs=4, world=demo_world, max_episode_steps=5)
    obs_a, info_a = env_a.reset(seed=11)
    obs_b, _ = env_b.reset(seed=11)
    rng = np.random.default_rng(5)
    for _ in range(12):
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=key)
        actions = np.array([random_valid_action(rng, m) for m in info_a["action_mask"]])
        obs_a, reward_a, _, _, info_a = env_a.step(actions)
        obs_b, reward_b, _, _, _ = env_b.step(actions)
        np.testing.assert_array_equal(reward_a, reward_b)


def test_vector_matches_single_envs(demo_world) -> None:
    instr_ids = first_ids(demo_world, "val_seen", 3)
    vector = R2RVectorEnv(num_envs=3, world=demo_world, autoreset_mode=AutoresetMode.DISABLED)
    vector_obs, vector_info = vector.reset(options={"split": "val_seen", "instr_ids": instr_ids})
    singles = [R2REnv(world=demo_world) for _ in instr_ids]
    single_obs = [
        env.reset(options={"split": "val_seen", "instr_id": i})[0] for env, i in zip(singles, instr_ids)
    ]
    rng = np.random.default_rng(0)
    for _ in range(4):
        for slot, observation in enumerate(single_obs):
            for key in observation:
                np.testing.assert_array_equal(vector_obs[key][slot], observation[key], err_msg=key)
        mask = vector_info["action_mask"].copy()
        mask[:, -1] = 0  # keep moving so every step compares a new state
        actions = np.array([random_valid_action(rng, m) for m in mask])
        vector_obs, _, _, _, vector_info = vector.step(actions)
        single_obs = [env.step(int(a))[0] for env, a in zip(singles, actions)]


def test_observation_in_space(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world)
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)


def test_reset_starts_at_episode_start(demo_world) -> None:
    env = R2REnv(world=demo_world)
    episode = demo_world.split("val_seen").episodes[0]
    _, info = env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
    viewpoint, heading, elevation = info["trajectory"][0]
    assert viewpoint == episode.start
    # The simulator snaps the heading to the nearest 30 degree step.
    expected_step = math.floor((episode.heading % (2 * math.pi)) / (math.pi / 6) + 0.5) % 12
    assert heading == pytest.approx(expected_step * math.pi / 6)
    assert elevation == 0.0


def test_unknown_instr_id_suggests_match(demo_world) -> None:
    env = R2REnv(world=demo_world)
    instr_id = demo_world.split("val_seen").episodes[0].instr_id
    with pytest.raises(LookupError, match="Did you mean"):
        env.reset(options={"split": "val_seen", "instr_id": instr_id + "9"})


def test_candidate_features_come_from_their_view(demo_world) -> None:
    env = R2REnv(world=demo_world)
    episode = demo_world.split("val_seen").episodes[0]
    observation, _ = env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
    views = demo_world.features.get(episode.scan, episode.start)  # [36, D]
    count = int(observation["candidate_mask"].sum())
    assert count >= 1
    for k in range(count):
        matches = [v for v in range(36) if np.array_equal(views[v], observation["candidate_features"][k])]
        assert matches, f"candidate {k} feature is not one of the viewpoint's views"


def test_candidate_angles_point_at_neighbours(demo_world) -> None:
    env = R2REnv(world=demo_world)
    episode = demo_world.split("val_seen").episodes[0]
    observation, _ = env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
    graph = demo_world.connectivity[episode.scan]
    here = graph.positions[graph.index(episode.start)]
    agent_heading = float(observation["heading"][0])
    expected = []
    for neighbour in graph.neighbors(episode.start):
        dx, dy, dz = graph.positions[graph.index(neighbour)] - here
        bearing = math.atan2(dx, dy)  # heading 0 along +y, growing towards +x
        relative = (bearing - agent_heading + math.pi) % (2 * math.pi) - math.pi
        expected.append((math.sin(relative), math.cos(relative), math.atan2(dz, math.hypot(dx, dy))))
    count = int(observation["candidate_mask"].sum())
    got = []
    for k in range(count):
        sin_h, cos_h, sin_e, cos_e = observation["candidate_angles"][k, :4]
        got.append((float(sin_h), float(cos_h), math.atan2(sin_e, cos_e)))
    np.testing.assert_allclose(np.array(sorted(got)), np.array(sorted(expected)), atol=1e-4)


def test_angle_features_repeat(demo_world) -> None:
    env = R2REnv(world=demo_world)
    observation, _ = env.reset(seed=0)
    angles = observation["candidate_angles"][0]
    size = demo_world.settings.angle_feature_size
    np.testing.assert_array_equal(angles, np.tile(angles[:4], size // 4))


def test_view_angles_relative_to_heading(demo_world) -> None:
    env = R2REnv(world=demo_world)
    observation, _ = env.reset(seed=0)
    heading = float(observation["heading"][0])
    for view in (0, 13, 35):
        relative = float(view_heading(view)) - heading
        elevation = float(view_elevation(view))
        expected = [math.sin(relative), math.cos(relative), math.sin(elevation), math.cos(elevation)]
        assert observation["view_angles"][view, :4] == pytest.approx(expected, abs=1e-6)


def test_move_reward_is_distance_gain(demo_world) -> None:
    env = R2REnv(world=demo_world)
    episode = demo_world.split("val_seen").episodes[0]
    _, info = env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
    graph = demo_world.connectivity[episode.scan]
    action = env.teacher_action()
    _, reward, _, _, info = env.step(action)
    here = info["trajectory"][-1][0]
    expected = graph.distance(episode.start, episode.goal) - graph.distance(here, episode.goal)
    assert reward == pytest.approx(expected)


def test_stop_at_goal_rewards_success(demo_world) -> None:
    env = R2REnv(world=demo_world)
    episode = demo_world.split("val_seen").episodes[0]
    env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
    while (action := env.teacher_action()) != env.stop_action:
        env.step(action)
    _, reward, terminated, _, info = env.step(env.stop_action)
    assert terminated
    assert reward == demo_world.settings.success_reward
    assert info["metrics"]["success"] == 1.0


def test_stop_at_start_penalised(demo_world) -> None:
    env = R2REnv(world=demo_world)
    episode = demo_world.split("val_seen").episodes[0]
    env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
    _, reward, terminated, _, info = env.step(env.stop_action)
    assert terminated
    assert reward == -demo_world.settings.success_reward
    assert info["metrics"]["success"] == 0.0


def test_teacher_follows_reference_path(demo_world) -> None:
    env = R2REnv(world=demo_world)
    for episode in demo_world.split("val_seen").episodes[:20]:
        env.reset(options={"split": "val_seen", "instr_id": episode.instr_id})
        while (action := env.teacher_action()) != env.stop_action:
            _, _, _, _, info = env.step(action)
        _, _, _, _, info = env.step(env.stop_action)
        assert [pose[0] for pose in info["trajectory"]] == list(episode.path)


def test_invalid_action_is_ignored(demo_world) -> None:
    env = R2REnv(world=demo_world)
    _, info = env.reset(seed=0)
    invalid = int(np.flatnonzero(info["action_mask"] == 0)[0])
    _, reward, terminated, _, info = env.step(invalid)
    assert info["invalid_action"]
    assert len(info["trajectory"]) == 1
    assert reward == 0.0


def test_invalid_action_raises_when_asked(demo_world) -> None:
    env = R2REnv(world=demo_world, invalid_actions="raise")
    _, info = env.reset(seed=0)
    invalid = int(np.flatnonzero(info["action_mask"] == 0)[0])
    with pytest.raises(InvalidActionError, match="expected a candidate index"):
        env.step(invalid)


def test_test_split_runs_without_metrics(demo_world) -> None:
    env = R2REnv(world=demo_world)
    _, info = env.reset(seed=0, options={"split": "test"})
    rng = np.random.default_rng(0)
    _, reward, _, _, info = env.step(random_valid_action(rng, info["action_mask"][:-1]))
    assert reward == 0.0
    _, reward, terminated, _, info = env.step(env.stop_action)
    assert terminated
    assert "metrics" not in info


def test_vector_autoreset_next_step(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world)
    env.reset(seed=0)
    first = list(env.episodes)
    _, _, terminated, _, infos = env.step(np.full(2, env.stop_action))
    assert terminated.all()
    assert infos["_metrics"].all()
    _, reward, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.int64))
    assert not terminated.any()
    assert not truncated.any()
    assert (reward == 0).all()
    assert [e.instr_id for e in env.episodes] != [e.instr_id for e in first]


def test_vector_disabled_keeps_ended(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world, autoreset_mode=AutoresetMode.DISABLED)
    env.reset(seed=0)
    env.step(np.array([env.stop_action, env.teacher_actions()[1]]))
    _, reward, terminated, _, infos = env.step(np.array([0, env.stop_action]))
    assert reward[0] == 0.0
    assert not terminated[0]
    assert len(env.batch.trajectories[0]) == 1


def test_vector_epoch_covers_split(demo_world) -> None:
    split = demo_world.split("val_seen")
    env = R2RVectorEnv(num_envs=len(split), world=demo_world)
    env.reset(seed=0, options={"split": "val_seen"})
    assert sorted(e.instr_id for e in env.episodes) == sorted(e.instr_id for e in split)


def test_autoreset_keeps_reset_split(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world)  # the world draws from train by default
    env.reset(seed=0, options={"split": "val_unseen"})
    env.step(np.full(2, env.stop_action))
    env.step(np.zeros(2, dtype=np.int64))  # restarts both
    unseen = {e.instr_id for e in demo_world.split("val_unseen")}
    assert all(e.instr_id in unseen for e in env.episodes)


def test_unknown_reset_option_rejected(demo_world) -> None:
    env = R2REnv(world=demo_world)
    with pytest.raises(envs.r2r_env.EnvUsageError, match="unknown reset options"):
        env.reset(options={"instr_ids": ["1_0"]})


def test_step_after_end_rejected(demo_world) -> None:
    env = R2REnv(world=demo_world)
    env.reset(seed=0)
    env.step(env.stop_action)
    with pytest.raises(envs.r2r_env.EnvUsageError, match="call reset"):
        env.step(env.stop_action)


def test_vector_step_before_reset_rejected(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world)
    with pytest.raises(envs.r2r_env.EnvUsageError, match="reset"):
        env.step(np.zeros(2, dtype=np.int64))


def test_vector_action_shape_checked(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world)
    env.reset(seed=0)
    with pytest.raises(envs.r2r_env.EnvUsageError, match="shape"):
        env.step(np.zeros((2, 1), dtype=np.int64))


def test_fractional_action_rejected(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world)
    env.reset(seed=0)
    with pytest.raises(envs.r2r_env.EnvUsageError, match="integers"):
        env.step(np.array([0.5, 1.0]))


def test_invalid_setting_rejected(demo_dir) -> None:
    with pytest.raises(ValueError, match="max_candidates"):
        R2REnv(data_dir=str(demo_dir), max_candidates=0)


def test_world_repr_short(demo_world) -> None:
    assert len(repr(demo_world)) < 1000
