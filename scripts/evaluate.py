"""Score a leaderboard-format trajectory file on an R2R or RxR split and print the metrics.

Examples:
    clipnav-evaluate results/val_unseen.json --split val_unseen --report report.json
    clipnav-evaluate preds.jsonl.gz --dataset rxr --split val_unseen --languages hi

With --dataset rxr the file is either a trajectory file (JSON list) or, when its name
ends in .jsonl or .jsonl.gz, RxR predictions (one {"instruction_id", "path"} object per
line), and the table adds the means of each language. On test splits, which have no
reference paths, the file is validated and no metric is computed. Invalid input ends
with one error message and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from connectivity import Connectivity, connectivity_dir
from envs.evaluation import evaluate_file, write_report
from envs.metrics import DEFAULT_SPL_LENGTH, DEFAULT_SUCCESS_DISTANCE, SPL_LENGTH_DESCRIPTIONS, SPL_LENGTHS
from envs.r2r import load_r2r_split
from envs.rxr import load_rxr_split
from envs.rxr_submission import evaluate_rxr_submission, read_rxr_submission
from envs.world import DATASETS
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipnav-evaluate",
        description=(
            "Validate a trajectory file in the R2R leaderboard format (or RxR predictions) against a "
            "split and print NE, SR, OSR, TL, SPL, nDTW, SDTW and CLS."
        ),
    )
    parser.add_argument(
        "trajectories",
        type=Path,
        help='JSON list of {"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]}, '
        'or with --dataset rxr a .jsonl(.gz) file of {"instruction_id": ..., "path": [...]} lines',
    )
    parser.add_argument(
        "--split",
        default="val_unseen",
        help="split to score on: train, val_seen, val_unseen, or test (R2R) and test_standard (RxR) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--dataset", choices=DATASETS, default="r2r", help="task of the split (default: %(default)s)"
    )
    parser.add_argument(
        "--languages",
        default=None,
        help="RxR only: comma-separated languages to score, en, hi, te or tags such as en-IN (default: all)",
    )
    parser.add_argument(
        "--rxr-dir",
        type=Path,
        default=None,
        help="RxR only: folder of the rxr_<split>_guide.jsonl.gz files (default: RxR/ in the data folder)",
    )
    parser.add_argument(
        "--spl-length",
        choices=SPL_LENGTHS,
        default=DEFAULT_SPL_LENGTH,
        help="path length L of SPL: "
        + ", or ".join(f"{name}, {description}" for name, description in SPL_LENGTH_DESCRIPTIONS.items())
        + " (default: %(default)s, as the R2R scorer)",
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
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    if args.dataset == "rxr":
        split = load_rxr_split(args.split, args.data_dir, args.languages, args.rxr_dir)
    elif args.languages is not None or args.rxr_dir is not None:
        parser.error("--languages and --rxr-dir need --dataset rxr")
    else:
        split = load_r2r_split(args.split, args.data_dir)
    connectivity = Connectivity(connectivity_dir(args.data_dir))
    logger.info("evaluating %s on split %s (%d episodes)", args.trajectories, split.name, len(split))
    if args.dataset == "rxr" and args.trajectories.name.endswith((".jsonl", ".jsonl.gz")):
        report = evaluate_rxr_submission(
            read_rxr_submission(args.trajectories),
            split,
            connectivity,
            success_distance=args.success_distance,
            allow_missing=args.allow_missing,
            source=str(args.trajectories),
            spl_length=args.spl_length,
        )
    else:
        report = evaluate_file(
            args.trajectories,
            split,
            connectivity,
            success_distance=args.success_distance,
            allow_missing=args.allow_missing,
            spl_length=args.spl_length,
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
