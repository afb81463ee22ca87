"""Gymnasium environments for R2R: one episode (`R2REnv`) or a native batch (`R2RVectorEnv`).

Both take panoramic actions (the default) or the egocentric low-level actions of the R2R
paper (`action_space="egocentric"`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from connectivity.errors import ClipnavError
from envs.episodes import Episode
from envs.features import VIEWS_PER_VIEWPOINT
from envs.metrics import batch_metrics, episode_metrics
from envs.navigation import NavigationBatch
from envs.world import EnvSettings, NavigationWorld

SETTING_NAMES = frozenset(f.name for f in fields(EnvSettings))


def _world(world: NavigationWorld | None, settings: dict[str, Any]) -> NavigationWorld:
    unknown = set(settings) - SETTING_NAMES
    if unknown:
        raise TypeError(
            f"unknown environment settings {sorted(unknown)}; known: {', '.join(sorted(SETTING_NAMES))}"
        )
    if world is not None:
        if settings:
            raise TypeError("pass either world= or settings, not both: the world carries its settings")
        return world
    return NavigationWorld.from_settings(EnvSettings(**settings))


def observation_space(world: NavigationWorld, action_space: str = "panoramic") -> spaces.Dict:
    """Return the observation space of one episode; egocentric actions add `view_index` and `forward_mask`."""
    settings = world.settings
    length = settings.max_instruction_length
    dim = world.features.dim
    slots = settings.max_candidates
    angle = settings.angle_feature_size
    space = spaces.Dict(
        {
            "instruction": spaces.Box(0, len(world.encoder.vocabulary) - 1, (length,), np.int64),
            "instruction_mask": spaces.MultiBinary(length),
            "heading": spaces.Box(0.0, 2 * math.pi, (1,), np.float32),
            "elevation": spaces.Box(-math.pi / 2, math.pi / 2, (1,), np.float32),
            "view_features": spaces.Box(-np.inf, np.inf, (VIEWS_PER_VIEWPOINT, dim), np.float32),
            "view_angles": spaces.Box(-1.0, 1.0, (VIEWS_PER_VIEWPOINT, angle), np.float32),
            "candidate_features": spaces.Box(-np.inf, np.inf, (slots, dim), np.float32),
            "candidate_angles": spaces.Box(-1.0, 1.0, (slots, angle), np.float32),
            "candidate_mask": spaces.MultiBinary(slots),
        }
    )
    if action_space == "egocentric":
        space["view_index"] = spaces.Box(0, VIEWS_PER_VIEWPOINT - 1, (1,), np.int64)
        space["forward_mask"] = spaces.MultiBinary(1)
    return space


class EpisodeSampler:
    """Draws episodes of a split in shuffled epochs, from the environment's random generator."""

    def __init__(self) -> None:
        self._order: dict[str, np.ndarray] = {}
        self._cursor: dict[str, int] = {}

    def draw(self, world: NavigationWorld, split: str, count: int, rng: np.random.Generator) -> list[Episode]:
        episodes = world.split(split).episodes
        drawn = []
        for _ in range(count):
            cursor = self._cursor.get(split, len(episodes))
            if cursor >= len(episodes):
                self._order[split] = rng.permutation(len(episodes))
                cursor = 0
            drawn.append(episodes[self._order[split][cursor]])
            self._cursor[split] = cursor + 1
        return drawn

    def reset(self) -> None:
        self._order.clear()
        self._cursor.clear()

    def state_dict(self) -> dict[str, Any]:
        """Return the epoch orders and positions as plain values, for checkpoints."""
        return {
            "order": {split: order.tolist() for split, order in self._order.items()},
            "cursor": dict(self._cursor),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by `state_dict`."""
        self._order = {split: np.asarray(order, dtype=np.int64) for split, order in state["order"].items()}
        self._cursor = {split: int(cursor) for split, cursor in state["cursor"].items()}


def _episode_metrics(world: NavigationWorld, episode: Episode, trajectory: list) -> dict[str, float]:
    graph = world.connectivity[episode.scan]
    viewpoints = [pose[0] for pose in trajectory]
    return episode_metrics(graph, episode.path, viewpoints, world.settings.success_distance).as_dict()


class EnvUsageError(ClipnavError, RuntimeError):
    """An environment is called out of order or with options it does not know."""


def _check_options(options: dict[str, Any] | None, known: frozenset[str]) -> dict[str, Any]:
    options = dict(options or {})
    unknown = set(options) - known
    if unknown:
        raise EnvUsageError(f"unknown reset options {sorted(unknown)}; known: {', '.join(sorted(known))}")
    return options


def _integer_actions(actions: Any, count: int) -> np.ndarray:
    array = np.asarray(actions)
    if array.shape != (count,):
        raise EnvUsageError(f"expected {count} actions of shape ({count},), got shape {array.shape}")
    integral = np.issubdtype(array.dtype, np.integer) or (
        np.issubdtype(array.dtype, np.floating)
        and np.isfinite(array).all()
        and (array == np.round(array)).all()
    )
    if not integral:
        raise EnvUsageError(f"actions must be integers, got {array.tolist()}")
    return array.astype(np.int64)


def _named_episodes(world: NavigationWorld, split: str, instr_ids: Sequence[str]) -> list[Episode]:
    return [world.episode(split, instr_id) for instr_id in instr_ids]


class R2REnv(gym.Env):
    """Follow one R2R instruction through a Matterport3D house, moving between viewpoints.

    ## Description
    The agent starts at the episode's first viewpoint, at its heading, looking level. Each
    step it moves to one of the panoramic candidates (navigable neighbours, each seen in
    the view where it is closest to the centre) or stops. States are those of the
    Matterport3D Simulator in discretized mode.

    ## Action space
    Panoramic (the default): `Discrete(max_candidates + 1)`. Action k < max_candidates
    moves to candidate k (valid where `candidate_mask[k]` is 1), and action
    `max_candidates` is STOP (`env.stop_action`).

    Egocentric (`action_space="egocentric"`, the low-level actions of the R2R paper,
    Anderson et al. 2018): `Discrete(6)`, with 0 left, 1 right (turn 30 degrees), 2 up,
    3 down (look 30 degrees), 4 forward and 5 STOP. Forward moves to
    `navigable_locations[1]`, the neighbour closest to the view centre, keeping heading
    and elevation. It is valid only where `forward_mask` is 1. Up and down stop at +-30
    degrees, where they leave the view unchanged, as in the simulator's `makeAction`.

    `info["action_mask"]` marks the valid actions. An invalid action leaves the agent in
    place with reward 0 and `info["invalid_action"]` True; `invalid_actions="raise"`
    makes it raise `InvalidActionError` instead.

    ## Observation space
    | key                  | shape                  | meaning                                         |
    |----------------------|------------------------|-------------------------------------------------|
    | `instruction`        | [L] int64              | token ids: <bos> words <eos> <pad>...           |
    | `instruction_mask`   | [L] int8               | 1 on tokens, 0 on padding                       |
    | `heading`            | [1] float32            | radians in [0, 2 pi), 0 along +y, right positive |
    | `elevation`          | [1] float32            | radians, positive up                            |
    | `view_features`      | [36, D] float32        | features of the 36 views, by view index         |
    | `view_angles`        | [36, A] float32        | angle features of the views, relative to heading |
    | `candidate_features` | [max_candidates, D]    | feature of the view each candidate is seen in   |
    | `candidate_angles`   | [max_candidates, A]    | sin/cos of relative heading and elevation        |
    | `candidate_mask`     | [max_candidates] int8  | 1 on real candidates                            |
    | `view_index`         | [1] int64              | egocentric only: the current view, 0..35        |
    | `forward_mask`       | [1] int8               | egocentric only: 1 where forward can move       |

    The current view's feature is `view_features[view_index]`, and its angle feature
    `view_angles[view_index]`. An angle feature is (sin h, cos h, sin e, cos e) repeated
    A / 4 times, with h the heading relative to the agent (wrapped to [-pi, pi)) and e the
    absolute elevation.

    ## Rewards
    Moving: the decrease of the shortest-path distance to the goal, in metres; with the
    setting `reward="ndtw"`, the increase of the nDTW between the trajectory so far and
    the reference path. Turning in place: 0. STOP: `success_reward` (2) within
    `success_distance` (3 m) of the goal, else its negative.
    Episodes without a reference path (the test split) give 0.

    ## Starting state
    `reset(seed=..., options={"split": ..., "instr_id": ...})` starts the named episode;
    without an instr_id, an episode of the split drawn in shuffled epochs.

    ## Episode end
    Terminated on STOP; truncated by the registration's `max_episode_steps` (35 for
    "clipnav/R2R-v0", 40 for "clipnav/R2R-Egocentric-v0").
    `info` carries `instr_id`, `trajectory` ([viewpoint, heading, elevation] per visited
    state, turns in place included) and `action_mask` at every step. After each step,
    episodes with a reference path also carry the `metrics` of the trajectory so far
    (the metrics collapse turns in place): navigation_error, success,
    oracle_success, trajectory_length, spl, ndtw, sdtw and cls. So the step that ends
    the episode, by STOP or by the time limit, carries the episode's metrics.

    ## Arguments
    `world`: a shared `NavigationWorld`; otherwise any `EnvSettings` field as a keyword
    (`data_dir`, `split`, `features`, `max_candidates`, ...). `action_space`: "panoramic"
    or "egocentric". `invalid_actions`: "ignore" or "raise".

    ## Version history
    - v0: first version.
    - Egocentric-v0: the same environment with `action_space="egocentric"`.

    >>> import gymnasium as gym, envs
    >>> env = gym.make("clipnav/R2R-v0", data_dir=demo_dir)  # doctest: +SKIP
    >>> observation, info = env.reset(seed=0)  # doctest: +SKIP
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        world: NavigationWorld | None = None,
        invalid_actions: str = "ignore",
        action_space: str = "panoramic",
        **settings: Any,
    ):
        self.world = _world(world, settings)
        self.batch = NavigationBatch(self.world, 1, invalid_actions, action_space)
        self.action_space_name = action_space
        self.stop_action = self.batch.stop_action
        self.observation_space = observation_space(self.world, action_space)
        self.action_space = spaces.Discrete(self.batch.num_actions)
        self.split = self.world.settings.split
        self._sampler = EpisodeSampler()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: `options` may name a "split" and an "instr_id"; returns (observation, info)."""
        options = _check_options(options, frozenset({"split", "instr_id"}))
        super().reset(seed=seed)
        if seed is not None:
            self._sampler.reset()
        split = options.get("split", self.split)
        if "instr_id" in options:
            episode = self.world.episode(split, options["instr_id"])
        else:
            episode = self._sampler.draw(self.world, split, 1, self.np_random)[0]
        self.batch.start([0], [episode])
        info = self.batch.episode_info(0)
        info["action_mask"] = self.batch.action_masks()[0]
        return self._observation(), info

    def step(self, action: int):
        """Take one panoramic or egocentric action; returns the five values of `gymnasium.Env.step`."""
        if self.batch.episodes[0] is None or self.batch.ended[0]:
            raise EnvUsageError("the episode has ended or never started: call reset() before step()")
        reward, stopped, invalid = self.batch.step(_integer_actions([action], 1))
        terminated = bool(stopped[0])
        info = self.batch.episode_info(0)
        info["action_mask"] = self.batch.action_masks()[0]
        info["invalid_action"] = bool(invalid[0])
        # The time limit is a wrapper that this environment cannot see, so every step
        # carries the metrics so far. The step that ends the episode carries its final ones.
        if self.batch.episodes[0].has_reference:
            info["metrics"] = _episode_metrics(self.world, self.batch.episodes[0], info["trajectory"])
        return self._observation(), float(reward[0]), terminated, False, info

    def _observation(self) -> dict[str, np.ndarray]:
        return {key: value[0] for key, value in self.batch.observe().items()}

    def teacher_action(self) -> int:
        """Return the teacher's action, shortest-path or reference-path (see `NavigationBatch.teacher_actions`)."""
        return int(self.batch.teacher_actions()[0])

    @property
    def episode(self) -> Episode | None:
        return self.batch.episodes[0]


class R2RVectorEnv(VectorEnv):
    """`num_envs` R2R episodes stepped together with NumPy; see `R2REnv` for the task.

    Follows the `gymnasium.vector` API. `autoreset_mode` NEXT_STEP (the default) restarts
    an ended episode on the next `step`, ignoring its action there. DISABLED keeps ended
    episodes ended (their actions ignored, reward 0) until `reset(options={"reset_mask":
    mask})`, the loop of agents that run a batch of episodes to the end.

    `reset` options: `split`; `instr_ids` (one per environment, or one per True entry of
    `reset_mask`); `reset_mask`. Infos carry `instr_id` for all environments, and
    `trajectory` and `metrics` (masked by `_trajectory`, `_metrics`) where an episode ended.
    `action_space` is "panoramic" or "egocentric", as for `R2REnv`; the batched action space
    is `MultiDiscrete`.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        world: NavigationWorld | None = None,
        max_episode_steps: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        invalid_actions: str = "ignore",
        action_space: str = "panoramic",
        **settings: Any,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.world = _world(world, settings)
        self.num_envs = num_envs
        self.batch = NavigationBatch(self.world, num_envs, invalid_actions, action_space)
        self.action_space_name = action_space
        self.stop_action = self.batch.stop_action
        self.max_episode_steps = max_episode_steps
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            raise ValueError("R2RVectorEnv supports autoreset modes NEXT_STEP and DISABLED, not SAME_STEP")
        self.metadata = {"autoreset_mode": self.autoreset_mode}
        self.single_observation_space = observation_space(self.world, action_space)
        self.single_action_space = spaces.Discrete(self.batch.num_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.split = self.world.settings.split
        self._active_split = self.split  # the split of the last reset, which autoreset draws from
        self._sampler = EpisodeSampler()
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._restart = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start episodes in all environments, or in those of `options["reset_mask"]`."""
        options = _check_options(options, frozenset({"split", "instr_ids", "reset_mask"}))
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
            self._sampler.reset()
        split = options.get("split", self.split)
        self._active_split = split
        mask = np.asarray(options.get("reset_mask", np.ones(self.num_envs, dtype=bool)), dtype=bool)
        if mask.shape != (self.num_envs,):
            raise EnvUsageError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
        slots = np.flatnonzero(mask)
        if "instr_ids" in options:
            instr_ids = list(options["instr_ids"])
            if len(instr_ids) != len(slots):
                raise ValueError(
                    f"reset expected {len(slots)} instr_ids (one per environment being reset), "
                    f"got {len(instr_ids)}"
                )
            episodes = _named_episodes(self.world, split, instr_ids)
        else:
            episodes = self._sampler.draw(self.world, split, len(slots), self.np_random)
        if len(slots):
            self.batch.start(slots, episodes)
        self._steps[slots] = 0
        self._restart[slots] = False
        return self.batch.observe(), self._infos()

    def step(self, actions: np.ndarray):
        """Step every environment; returns (observations, rewards, terminations, truncations, infos)."""
        if self.batch.sim.batch_size == 0:
            raise EnvUsageError("call reset() before step()")
        actions = _integer_actions(actions, self.num_envs)
        restart = np.flatnonzero(self._restart)
        acting = np.where(self._restart, self.stop_action, actions)
        was_ended = self.batch.ended.copy()

        reward, stopped, invalid = self.batch.step(np.where(was_ended, self.stop_action, acting))
        self._steps[~was_ended] += 1

        terminated = stopped & ~was_ended
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = ~was_ended & ~terminated & (self._steps >= self.max_episode_steps)
            self.batch.ended |= truncated
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            if len(restart):
                episodes = self._sampler.draw(self.world, self._active_split, len(restart), self.np_random)
                self.batch.start(restart, episodes)
                self._steps[restart] = 0
                reward[restart] = 0.0
            self._restart = terminated | truncated

        infos = self._infos(np.flatnonzero(terminated | truncated))
        infos["invalid_action"], infos["_invalid_action"] = invalid, invalid.copy()
        return self.batch.observe(), reward, terminated, truncated, infos

    def _infos(self, ended: np.ndarray | Sequence[int] = ()) -> dict[str, Any]:
        instr_ids = np.array([e.instr_id if e is not None else "" for e in self.batch.episodes], dtype=object)
        everywhere = np.ones(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {
            "instr_id": instr_ids,
            "_instr_id": everywhere,
            "action_mask": self.batch.action_masks(),
            "_action_mask": everywhere.copy(),
        }
        if len(ended):
            trajectories = np.full(self.num_envs, None, dtype=object)
            metrics = np.full(self.num_envs, None, dtype=object)
            has_metrics = np.zeros(self.num_envs, dtype=bool)
            for slot in ended:
                trajectories[slot] = list(self.batch.trajectories[slot])
                has_metrics[slot] = self.batch.episodes[slot].has_reference
            scored = np.flatnonzero(has_metrics)
            if len(scored):
                episodes = [self.batch.episodes[slot] for slot in scored]
                scores = batch_metrics(
                    [self.world.connectivity[e.scan] for e in episodes],
                    [e.path for e in episodes],
                    [[pose[0] for pose in trajectories[slot]] for slot in scored],
                    self.world.settings.success_distance,
                )
                for i, slot in enumerate(scored):
                    metrics[slot] = scores.episode(i).as_dict()
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[list(ended)] = True
            infos.update(trajectory=trajectories, _trajectory=mask, metrics=metrics, _metrics=has_metrics)
        return infos

    def sampling_state(self) -> dict[str, Any]:
        """Return the state that decides which episodes reset draws next, for checkpoints."""
        return {"sampler": self._sampler.state_dict(), "rng": dict(self.np_random.bit_generator.state)}

    def load_sampling_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by `sampling_state`."""
        self._sampler.load_state_dict(state["sampler"])
        self.np_random.bit_generator.state = state["rng"]

    def teacher_actions(self) -> np.ndarray:
        """Return the teacher's action for every environment, STOP where ended (see `NavigationBatch.teacher_actions`)."""
        return self.batch.teacher_actions()

    def forward_candidates(self, heading_step: np.ndarray) -> np.ndarray:
        """Candidate reached by a low-level forward move at each heading step, -1 where none."""
        return self.batch.forward_candidates(heading_step)

    @property
    def episodes(self) -> list[Episode | None]:
        return self.batch.episodes
