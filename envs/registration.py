"""Gymnasium ids of the clipnav environments, registered when `envs` is imported."""

from __future__ import annotations

import gymnasium as gym

R2R_ENV_ID = "clipnav/R2R-v0"
R2R_MAX_EPISODE_STEPS = 35  # the action limit of EnvDrop and CLIP-ViL on R2R


def register_environments() -> None:
    """Register the environment ids with Gymnasium (once)."""
    if R2R_ENV_ID in gym.registry:
        return
    gym.register(
        id=R2R_ENV_ID,
        entry_point="envs.r2r_env:R2REnv",
        vector_entry_point="envs.r2r_env:R2RVectorEnv",
        max_episode_steps=R2R_MAX_EPISODE_STEPS,
    )
