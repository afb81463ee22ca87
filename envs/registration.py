"""Gymnasium ids of the clipnav environments, registered when `envs` is imported."""

from __future__ import annotations

import gymnasium as gym

R2R_ENV_ID = "clipnav/R2R-v0"
R2R_MAX_EPISODE_STEPS = 35  # the action limit of EnvDrop and CLIP-ViL on R2R

R2R_EGOCENTRIC_ENV_ID = "clipnav/R2R-Egocentric-v0"
R2R_EGOCENTRIC_MAX_EPISODE_STEPS = 40
"""Low-level actions per episode, STOP included. A move takes a few turns first, so the
shortest-path teacher needs 12 actions on a median R2R episode and at most 33 (measured on
train, val_seen and val_unseen). The R2R paper's released Seq2Seq code stopped episodes
after 20 actions, which cuts the teacher short on 1 to 3 % of the episodes of each split."""


def register_environments() -> None:
    """Register the environment ids with Gymnasium (once)."""
    if R2R_ENV_ID not in gym.registry:
        gym.register(
            id=R2R_ENV_ID,
            entry_point="envs.r2r_env:R2REnv",
            vector_entry_point="envs.r2r_env:R2RVectorEnv",
            max_episode_steps=R2R_MAX_EPISODE_STEPS,
        )
    if R2R_EGOCENTRIC_ENV_ID not in gym.registry:
        gym.register(
            id=R2R_EGOCENTRIC_ENV_ID,
            entry_point="envs.r2r_env:R2REnv",
            vector_entry_point="envs.r2r_env:R2RVectorEnv",
            max_episode_steps=R2R_EGOCENTRIC_MAX_EPISODE_STEPS,
            kwargs={"action_space": "egocentric"},
        )
