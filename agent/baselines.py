"""Baseline agents of the R2R literature: stop at once, random walk, shortest-path teacher."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from envs.r2r_env import R2RVectorEnv


class BaselineAgent:
    """An agent that picks one action per environment from the observation arrays."""

    name = "baseline"

    def act(self, observation: dict[str, np.ndarray], env: R2RVectorEnv, steps: np.ndarray) -> np.ndarray:
        """Return one action per environment; `steps` counts the actions each episode took."""
        raise NotImplementedError


class StopAgent(BaselineAgent):
    """Stops at the start viewpoint."""

    name = "stop"

    def act(self, observation: dict[str, np.ndarray], env: R2RVectorEnv, steps: np.ndarray) -> np.ndarray:
        return np.full(env.num_envs, env.stop_action, dtype=np.int64)


class RandomAgent(BaselineAgent):
    """Moves to a candidate drawn uniformly `num_moves` times, then stops.

    Five moves follow the random baseline of the R2R paper (Anderson et al. 2018), which
    takes five forward steps. Each draw depends only on the seed, the instr_id and the
    step, so trajectories do not change with the batch size or episode order.
    """

    name = "random"

    def __init__(self, seed: int = 0, num_moves: int = 5):
        self.seed = seed
        self.num_moves = num_moves

    def act(self, observation: dict[str, np.ndarray], env: R2RVectorEnv, steps: np.ndarray) -> np.ndarray:
        counts = observation["candidate_mask"].sum(axis=1)
        actions = np.full(env.num_envs, env.stop_action, dtype=np.int64)
        for slot, episode in enumerate(env.episodes):
            if episode is None or steps[slot] >= self.num_moves or counts[slot] == 0:
                continue
            key = [self.seed, zlib.crc32(episode.instr_id.encode()), int(steps[slot])]
            actions[slot] = np.random.default_rng(key).integers(counts[slot])
        return actions


class RandomHeadingAgent(BaselineAgent):
    """The random baseline of the R2R paper (Anderson et al. 2018).

    It picks a random heading, then makes `num_moves` forward moves, each to the
    neighbour closest to the centre of the level view at that heading. Where the view
    shows no neighbour, it first turns right 30 degrees. Then it stops. The heading depends
    only on the seed and the instr_id.
    """

    name = "random_heading"

    def __init__(self, seed: int = 0, num_moves: int = 5):
        self.seed = seed
        self.num_moves = num_moves
        self._headings: dict[str, int] = {}

    def act(self, observation: dict[str, np.ndarray], env: R2RVectorEnv, steps: np.ndarray) -> np.ndarray:
        headings = np.zeros(env.num_envs, dtype=np.int64)
        for slot, episode in enumerate(env.episodes):
            if episode is None:
                continue
            if steps[slot] == 0 or episode.instr_id not in self._headings:
                key = [self.seed, zlib.crc32(episode.instr_id.encode())]
                self._headings[episode.instr_id] = int(np.random.default_rng(key).integers(12))
            headings[slot] = self._headings[episode.instr_id]

        walking = steps < self.num_moves
        actions = np.full(env.num_envs, -1, dtype=np.int64)
        for _ in range(12):  # turn right until a view shows a neighbour
            blocked = walking & (actions < 0)
            actions[blocked] = env.forward_candidates(headings)[blocked]
            headings = np.where(walking & (actions < 0), headings + 1, headings)
        for slot, episode in enumerate(env.episodes):
            if episode is not None and walking[slot]:
                self._headings[episode.instr_id] = int(headings[slot] % 12)
        return np.where(walking & (actions >= 0), actions, env.stop_action)


class ShortestPathAgent(BaselineAgent):
    """Follows the shortest path to the goal through the panoramic candidates, then stops."""

    name = "shortest"

    def act(self, observation: dict[str, np.ndarray], env: R2RVectorEnv, steps: np.ndarray) -> np.ndarray:
        return env.teacher_actions()


BASELINES = {agent.name: agent for agent in (StopAgent, RandomAgent, RandomHeadingAgent, ShortestPathAgent)}


def make_baseline(name: str, seed: int = 0, random_moves: int = 5) -> BaselineAgent:
    """Return the baseline agent called `name` (stop, random, random_heading or shortest)."""
    if name == "random":
        return RandomAgent(seed=seed, num_moves=random_moves)
    if name == "random_heading":
        return RandomHeadingAgent(seed=seed, num_moves=random_moves)
    if name not in BASELINES:
        raise ValueError(f"unknown baseline agent {name!r}; choose one of {', '.join(BASELINES)}")
    return BASELINES[name]()


def baseline_names() -> Sequence[str]:
    return tuple(BASELINES)
