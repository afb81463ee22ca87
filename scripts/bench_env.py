"""Benchmark: Gymnasium vectorized R2R environment steps per second at batch 64.

Every step builds all observations (instruction, angles, 36 view features and the
candidate features and angle features) from an in-memory store of random 512-dimensional
features for every viewpoint of the split's scans. Actions are random valid candidates
or STOP; ended episodes restart automatically, so resets are part of the figure.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from envs.features import InMemoryFeatureStore
from envs.r2r_env import R2RVectorEnv
from envs.world import EnvSettings, NavigationWorld
from scripts.common import add_common_arguments, positive_int, run_cli, setup_logging

TARGET_STEPS_PER_SECOND = 20_000


def random_feature_world(data_dir: str | None, split: str, dim: int, seed: int) -> NavigationWorld:
    world = NavigationWorld.from_settings(EnvSettings(data_dir=data_dir, split=split, feature_dim=dim))
    keys = [
        (scan, viewpoint)
        for scan in world.split(split).scans
        for viewpoint in world.connectivity[scan].viewpoint_ids
    ]
    features = np.random.default_rng(seed).standard_normal((len(keys), 36, dim), dtype=np.float32)
    world.features = InMemoryFeatureStore(keys, features, {"encoder": "random"})
    return world


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--steps", type=positive_int, default=2_000, help="vector steps timed")
    parser.add_argument("--dim", type=int, default=512, help="view feature dimension")
    parser.add_argument("--split", default="val_unseen")
    parser.add_argument("--stop-probability", type=float, default=0.15, help="chance of STOP per step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    world = random_feature_world(args.data_dir, args.split, args.dim, args.seed)
    env = R2RVectorEnv(num_envs=args.batch_size, world=world, max_episode_steps=35)
    rng = np.random.default_rng(args.seed)
    observation, infos = env.reset(seed=args.seed)
    for scan in world.split(args.split).scans:
        world.prepare_scan(scan)

    def random_actions(infos: dict) -> np.ndarray:
        counts = infos["action_mask"][:, :-1].sum(axis=1)
        actions = (rng.random(args.batch_size) * counts).astype(np.int64)
        stop = rng.random(args.batch_size) < args.stop_probability
        return np.where(stop | (counts == 0), env.stop_action, actions)

    episodes = 0
    start = time.perf_counter()
    for _ in range(args.steps):
        observation, reward, terminated, truncated, infos = env.step(random_actions(infos))
        episodes += int((terminated | truncated).sum())
    seconds = time.perf_counter() - start

    rate = args.batch_size * args.steps / seconds
    print(f"batch {args.batch_size}, D = {args.dim}, split {args.split}, {episodes} episodes ended")
    print(f"R2RVectorEnv: {rate:,.0f} environment steps/s (target {TARGET_STEPS_PER_SECOND:,})")
    print(f"observation bytes per step: {sum(v.nbytes for v in observation.values()):,}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
