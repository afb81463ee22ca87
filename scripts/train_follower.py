"""Train the EnvDrop follower on R2R (or the demo world), with evaluation and resumable checkpoints.

Every option is a field of FollowerTrainingSettings or FollowerModelSettings; defaults
reproduce the CLIP-ViL R2R configuration (RMSprop 1e-4, batch 64, 80,000 iterations,
35 actions, 80 tokens, dropout 0.5, feature dropout 0.3, imitation weight 0.2).
The output folder receives settings.json, versions.json, features.json, vocab.txt,
TensorBoard logs and checkpoints/ (latest.pt and best_<split>.pt, best by SPL then SR).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agent.follower import FollowerModelSettings
from agent.settings import add_settings_arguments, settings_from_arguments
from agent.training import FollowerTrainer, FollowerTrainingSettings
from scripts.common import run_cli, setup_logging


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_settings_arguments(parser, FollowerTrainingSettings)
    add_settings_arguments(parser, FollowerModelSettings)
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from latest.pt")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    settings = settings_from_arguments(FollowerTrainingSettings, args)
    model_settings = settings_from_arguments(FollowerModelSettings, args)
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(settings.output_dir) / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)

    trainer = FollowerTrainer(settings, model_settings, resume=args.resume)
    best = trainer.train()
    for split, record in best.items():
        print(
            f"best on {split}: SPL {record['spl']:.4f}, SR {record['success']:.4f} at iteration {record['iteration']}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
