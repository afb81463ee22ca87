"""Train the EnvDrop speaker on R2R (or the demo world), scored by BLEU, with resumable checkpoints.

Every option is a field of SpeakerTrainingSettings or SpeakerModelSettings. The defaults
follow R2R-EnvDrop's speaker run: Adam 1e-4, batch 64, hidden 512, word embedding 256,
dropout 0.6, feature dropout 0.3, gradient norm 40 and at most 120 generated words.
The output folder receives settings.json, versions.json, features.json, vocab.txt,
TensorBoard logs (losses/cross_entropy, eval/<split>/bleu, ...) and checkpoints/
(latest.pt and best_<split>.pt, best by BLEU).
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.speaker import SpeakerModelSettings
from agent.speaker_training import SpeakerTrainer, SpeakerTrainingSettings
from scripts.common import run_cli, train_from_command_line


def run(argv: Sequence[str] | None = None) -> int:
    best = train_from_command_line(
        argv, __doc__, SpeakerTrainingSettings, SpeakerModelSettings, SpeakerTrainer
    )
    for split, record in best.items():
        print(f"best on {split}: BLEU {record['bleu']:.4f} at iteration {record['iteration']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
