"""Train the EnvDrop follower on R2R (or the demo world), with evaluation and resumable checkpoints.

Every option is a field of FollowerTrainingSettings or FollowerModelSettings. The defaults
reproduce the CLIP-ViL R2R configuration (RMSprop 1e-4, batch 64, 80,000 iterations,
35 actions, 80 tokens, dropout 0.5, feature dropout 0.3, imitation weight 0.2).
The output folder receives settings.json, versions.json, features.json, vocab.txt,
TensorBoard logs and checkpoints/ (latest.pt and best_<split>.pt, best by SPL, or nDTW with
--dataset rxr, then SR).
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.follower import FollowerModelSettings
from agent.training import FollowerTrainer, FollowerTrainingSettings
from scripts.common import print_best, run_cli, train_from_command_line


def run(argv: Sequence[str] | None = None) -> int:
    best = train_from_command_line(
        argv, __doc__, FollowerTrainingSettings, FollowerModelSettings, FollowerTrainer
    )
    print_best(best)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
