"""Train the Seq2Seq agent of the R2R paper on egocentric actions, with evaluation and resumable checkpoints.

Every option is a field of Seq2SeqTrainingSettings or Seq2SeqModelSettings; defaults
reproduce the student-forcing agent of the R2R paper (Anderson et al. 2018) as its released
code trains it: Adam 1e-4 with weight decay 5e-4, batch 100, 20,000 iterations, 20 actions,
80 tokens, embeddings of 256 (words) and 32 (actions), a unidirectional 512-unit LSTM
encoder and decoder, dropout 0.5.
The output folder receives settings.json, versions.json, features.json, vocab.txt,
TensorBoard logs and checkpoints/ (latest.pt and best_<split>.pt, best by SPL, or nDTW with
--dataset rxr, then SR).
Run a checkpoint on a split with clipnav-infer.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.seq2seq import Seq2SeqModelSettings
from agent.seq2seq_training import Seq2SeqTrainer, Seq2SeqTrainingSettings
from scripts.common import print_best, run_cli, train_from_command_line


def run(argv: Sequence[str] | None = None) -> int:
    best = train_from_command_line(
        argv, __doc__, Seq2SeqTrainingSettings, Seq2SeqModelSettings, Seq2SeqTrainer
    )
    print_best(best)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
