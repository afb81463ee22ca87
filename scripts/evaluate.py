"""Score a leaderboard-format trajectory file on an R2R split and print the metrics.

Example:
    clipnav-evaluate results/val_unseen.json --split val_unseen --report report.json

On the test split, which has no reference paths, the file is validated and no metric is
computed. Invalid input ends with one error message and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from connectivity import Connectivity, connectivity_dir
from envs.evaluation import evaluate_file, write_report
from envs.metrics import DEFAULT_SUCCESS_DISTANCE
from envs.r2r import load_r2r_split
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipnav-evaluate",
        description=(
            "Validate a trajectory file in the R2R leaderboard format against a split and print "
            "NE, SR, OSR, TL, SPL, nDTW, SDTW and CLS."
        ),
    )
    parser.add_argument(
        "trajectories",
        type=Path,
        help='JSON list of {"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]}',
    )
    parser.add_argument(
        "--split",
        default="val_unseen",
        help="R2R split to score on: train, val_seen, val_unseen or test (default: %(default)s)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write the means and per-episode rows to this JSON file",
    )
    parser.add_argument(
        "--success-distance",
        type=float,
        default=DEFAULT_SUCCESS_DISTANCE,
        help="distance to the goal in metres below which an episode succeeds (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score a partial file: episodes of the split without a trajectory are skipped, not rejected",
    )
    add_common_arguments(parser)
    return parser


def evaluate(argv: Sequence[str] | None = None) -> int:
    """Run the command without run_cli's error handling; returns the exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    split = load_r2r_split(args.split, args.data_dir)
    connectivity = Connectivity(connectivity_dir(args.data_dir))
    logger.info("evaluating %s on split %s (%d episodes)", args.trajectories, split.name, len(split))
    report = evaluate_file(
        args.trajectories,
        split,
        connectivity,
        success_distance=args.success_distance,
        allow_missing=args.allow_missing,
    )

    print(report.format_table())
    if args.report is not None:
        write_report(report, args.report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `clipnav-evaluate`: exit code 0, or 2 with a message for invalid input."""
    return run_cli(evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
