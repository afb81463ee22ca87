"""Running an agent over the episodes of a split and collecting leaderboard trajectories."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from envs.r2r_env import R2RVectorEnv
from envs.world import NavigationWorld

logger = logging.getLogger(__name__)

Policy = Callable[[dict[str, np.ndarray], R2RVectorEnv, np.ndarray], np.ndarray]
TrajectoryEntry = dict[str, object]


def rollout(
    policy: Policy,
    world: NavigationWorld,
    split: str,
    instr_ids: Sequence[str] | None = None,
    batch_size: int = 64,
    max_steps: int = 35,
    progress: bool = True,
) -> list[TrajectoryEntry]:
    """Run `policy` on every episode of `split` (or the given instr_ids), `batch_size` at a time.

    Returns the trajectories in the leaderboard format, in episode order:
    `[{"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]}]`.
    An episode ends when the policy returns STOP or after `max_steps` actions.
    """
    if instr_ids is None:
        instr_ids = [episode.instr_id for episode in world.split(split)]
    env = R2RVectorEnv(
        num_envs=batch_size, world=world, max_episode_steps=max_steps, autoreset_mode=AutoresetMode.DISABLED
    )
    results: dict[str, list] = {}
    bar = tqdm(total=len(instr_ids), desc=f"rollout {split}", unit="ep", disable=not progress)
    for start in range(0, len(instr_ids), batch_size):
        chunk = list(instr_ids[start : start + batch_size])
        mask = np.zeros(batch_size, dtype=bool)
        mask[: len(chunk)] = True
        observation, _ = env.reset(options={"split": split, "instr_ids": chunk, "reset_mask": mask})
        steps = np.zeros(batch_size, dtype=np.int64)
        running = mask.copy()
        while running.any():
            actions = policy(observation, env, steps)
            observation, _, terminated, truncated, infos = env.step(actions)
            steps += running
            for slot in np.flatnonzero(terminated | truncated):
                instr_id = env.episodes[slot].instr_id
                results[instr_id] = [list(pose) for pose in infos["trajectory"][slot]]
            running &= ~(terminated | truncated)
        bar.update(len(chunk))
    bar.close()
    env.close()
    return [{"instr_id": instr_id, "trajectory": results[instr_id]} for instr_id in instr_ids]
