"""Train the EnvDrop speaker on R2R (or the demo world), scored by BLEU, with resumable checkpoints.

Every option is a field of SpeakerTrainingSettings or SpeakerModelSettings. The defaults
follow R2R-EnvDrop's speaker run: Adam 1e-4, batch 64, hidden 512, word embedding 256,
dropout 0.6, feature dropout 0.3, gradient norm 40 and at most 120 generated words.
The output folder receives settings.json, versions.json, features.json, vocab.txt,
TensorBoard logs (losses/cross_entropy, eval/<split>/bleu, ...) and checkpoints/
(latest.pt and best_<split>.pt, best by BLEU).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agent.settings import add_settings_arguments, settings_from_arguments
from agent.speaker import SpeakerModelSettings
from agent.speaker_training import SpeakerTrainer, SpeakerTrainingSettings
from scripts.common import run_cli, setup_logging


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_settings_arguments(parser, SpeakerTrainingSettings)
    add_settings_arguments(parser, SpeakerModelSettings)
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from latest.pt")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    settings = settings_from_arguments(SpeakerTrainingSettings, args)
    model_settings = settings_from_arguments(SpeakerModelSettings, args)
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(settings.output_dir) / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)

    trainer = SpeakerTrainer(settings, model_settings, resume=args.resume)
    best = trainer.train()
    for split, record in best.items():
        print(f"best on {split}: BLEU {record['bleu']:.4f} at iteration {record['iteration']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
