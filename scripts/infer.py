"""Run a trained agent greedily on a split and write its trajectories in the leaderboard format.

The checkpoint may hold an EnvDrop follower or a Seq2Seq agent; its "kind" entry decides.

Trajectories are validated by the evaluation suite before they are written; on splits
with reference paths the metrics are printed too. A checkpoint trained on features of
another dimension, encoder or weights than --features is rejected unless --force-features.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from agent.inference import load_agent
from envs.evaluation import evaluate_trajectories, write_report
from envs.trajectories import write_trajectories
from scripts.common import add_common_arguments, run_cli, setup_logging


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --checkpoint, --features, --device and --force-features."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="follower or Seq2Seq checkpoint (.pt)")
    parser.add_argument("--features", help="feature store (default: the one the model was trained on)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument(
        "--force-features",
        action="store_true",
        help="run even if the features differ from the training features",
    )


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, checkpoint_run=True)
    add_checkpoint_arguments(parser)
    parser.add_argument("--split", default="val_unseen", help="split to run on")
    parser.add_argument("--out", type=Path, required=True, help="trajectory file to write")
    parser.add_argument("--report", type=Path, help="also write a JSON evaluation report here")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    data_dir = str(args.data_dir) if args.data_dir else None
    agent = load_agent(args.checkpoint, data_dir, args.features, args.device, args.force_features)
    trajectories = agent.run_split(args.split)
    world = agent.world
    report = evaluate_trajectories(
        trajectories, world.split(args.split), world.connectivity, source=str(args.out)
    )
    write_trajectories(args.out, trajectories)
    print(f"{agent.kind} {args.checkpoint} on {args.split}: trajectories in {args.out}")
    print(report.format_table())
    if args.report:
        write_report(report, args.report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
