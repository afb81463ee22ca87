"""Benchmark: follower training iterations per second at batch 64 with 512-dimensional features.

It trains on the real training split with an in-memory store of random 512-dimensional
view features for the viewpoints of the training scans. It reports iterations per second
for imitation-only and mixed (imitation + A2C) iterations, and the share of time each
spends in the environment (reset, step, observations, teacher), the model's forward
pass, and the backward pass with the optimizer step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from agent.follower import FollowerModelSettings
from agent.training import FollowerTrainer, FollowerTrainingSettings, build_world
from envs.features import InMemoryFeatureStore
from envs.world import NavigationWorld
from scripts.common import add_common_arguments, positive_int, run_cli, setup_logging

TARGET_ENVIRONMENT_SHARE = 0.10


class Stopwatch:
    """Accumulates the time spent inside wrapped functions."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def random_feature_world(settings: FollowerTrainingSettings, dim: int, seed: int) -> NavigationWorld:
    """Return the training world with random features of dimension `dim` for every training viewpoint."""
    world = build_world(settings, None)
    keys = [
        (scan, vp) for scan in world.split("train").scans for vp in world.connectivity[scan].viewpoint_ids
    ]
    features = np.random.default_rng(seed).standard_normal((len(keys), 36, dim), dtype=np.float32)
    world.features = InMemoryFeatureStore(keys, features, {"encoder": "random", "dim": dim})
    return world


def measure(trainer: FollowerTrainer, iterations: int) -> dict[str, float]:
    env_watch, backward_watch = Stopwatch(), Stopwatch()
    env = trainer.env
    originals = {name: getattr(env, name) for name in ("step", "reset", "teacher_actions")}
    for name, function in originals.items():
        setattr(env, name, env_watch.wrap(function))
    original_backward = torch.Tensor.backward
    original_step = trainer.optimizer.step
    torch.Tensor.backward = backward_watch.wrap(original_backward)
    trainer.optimizer.step = backward_watch.wrap(original_step)
    try:
        trainer.train_iteration()  # warm-up
        env_watch.seconds = backward_watch.seconds = 0.0
        start = time.perf_counter()
        for _ in range(iterations):
            trainer.train_iteration()
        total = time.perf_counter() - start
    finally:
        torch.Tensor.backward = original_backward
        trainer.optimizer.step = original_step
        for name, function in originals.items():
            setattr(env, name, function)
    forward = total - env_watch.seconds - backward_watch.seconds
    return {
        "iterations_per_second": iterations / total,
        "environment": env_watch.seconds / total,
        "forward": forward / total,
        "backward": backward_watch.seconds / total,
    }


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--iterations", type=positive_int, default=10, help="timed iterations per mode")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--dim", type=positive_int, default=512, help="view feature dimension")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    print(
        f"batch {args.batch_size}, D = {args.dim}, EnvDrop follower defaults, CPU with {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as output:
        settings = FollowerTrainingSettings(
            output_dir=output,
            data_dir=str(args.data_dir) if args.data_dir else None,
            batch_size=args.batch_size,
        )
        world = random_feature_world(settings, args.dim, 0)
        trainer = FollowerTrainer(settings, FollowerModelSettings(), world=world)
        for mode in ("il", "mixed"):
            trainer.settings = replace(settings, train_mode=mode)
            figures = measure(trainer, args.iterations)
            print(
                f"{mode:>5}: {figures['iterations_per_second']:.2f} iterations/s; environment "
                f"{100 * figures['environment']:.1f}%, forward {100 * figures['forward']:.1f}%, "
                f"backward and optimizer {100 * figures['backward']:.1f}% "
                f"(target: environment under {100 * TARGET_ENVIRONMENT_SHARE:.0f}%)"
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
