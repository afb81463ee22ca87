"""Write an RxR competition submission, refusing one that fails validation.

The submission is JSON lines, one {"instruction_id": <integer>, "path": [viewpoint, ...]}
object per instruction of the split (test_standard by default), gzipped when the name
ends in .gz. Its source is one of: RxR predictions to check and copy (--predictions), a
trajectory file in the R2R leaderboard format, as clipnav-infer writes (--trajectories),
or a trained follower or Seq2Seq checkpoint run greedily (--checkpoint). Every
instruction_id of the split must appear once, each path starting at its episode's start
and moving only along navigable edges. Otherwise nothing is written and every problem
is listed.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agent.inference import load_agent
from connectivity import Connectivity, connectivity_dir
from envs.rxr import load_rxr_split
from envs.rxr_submission import (
    predictions_from_trajectories,
    read_rxr_submission,
    validate_rxr_submission,
    write_rxr_submission,
)
from envs.trajectories import read_trajectories, validate_trajectories
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger("clipnav.submit_rxr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipnav-submit-rxr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, checkpoint_run=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", type=Path, help="RxR predictions (.jsonl or .jsonl.gz) to validate")
    source.add_argument("--trajectories", type=Path, help="R2R leaderboard-format trajectory file to convert")
    source.add_argument("--checkpoint", type=Path, help="run this follower or Seq2Seq checkpoint greedily")
    parser.add_argument(
        "--split", default="test_standard", help="RxR split of the submission (default: %(default)s)"
    )
    parser.add_argument(
        "--languages",
        default=None,
        help="comma-separated languages of the submission, en, hi, te or tags such as en-IN "
        "(default: those of the checkpoint's run, else all)",
    )
    parser.add_argument(
        "--rxr-dir",
        type=Path,
        default=None,
        help="folder of the rxr_<split>_guide.jsonl.gz files (default: the checkpoint run's, else RxR/ in "
        "the data folder)",
    )
    parser.add_argument(
        "--features",
        default=None,
        help="view features of the checkpoint run (default: the training features)",
    )
    parser.add_argument(
        "--force-features",
        action="store_true",
        help="run even if the features differ from the training features",
    )
    parser.add_argument("--device", default="auto", help="device of the trained agent: cpu, cuda or auto")
    parser.add_argument(
        "--out",
        type=Path,
        help="submission file; .gz compresses it (default: outputs/submissions/rxr_<split>_<name>.jsonl.gz)",
    )
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    data_dir = str(args.data_dir) if args.data_dir else None
    if args.checkpoint is not None:
        agent = load_agent(args.checkpoint, data_dir, args.features, args.device, args.force_features)
        # Unless given here, the data folder, guide files and languages are the run's.
        trained = agent.world.settings
        languages = args.languages if args.languages is not None else trained.languages
        rxr_dir = args.rxr_dir if args.rxr_dir is not None else trained.rxr_dir
        split = load_rxr_split(args.split, str(agent.world.data_dir), languages, rxr_dir)
        if languages is not None and args.languages is None:
            logger.info("languages of the checkpoint's run: %s", languages)
        connectivity = agent.world.connectivity
        # The checkpoint's world reads R2R splits by name, so the RxR split is handed to it.
        agent.world.add_split(split)
        predictions = predictions_from_trajectories(agent.run_split(split.name))
        name, source = f"{agent.kind}_{args.checkpoint.stem}", str(args.checkpoint)
    else:
        split = load_rxr_split(args.split, data_dir, args.languages, args.rxr_dir)
        connectivity = Connectivity(connectivity_dir(data_dir))
        if args.trajectories is not None:
            trajectories = validate_trajectories(
                read_trajectories(args.trajectories), split, connectivity, source=str(args.trajectories)
            )
            predictions = predictions_from_trajectories({i: t.steps for i, t in trajectories.items()})
            name, source = args.trajectories.stem, str(args.trajectories)
        else:
            predictions = read_rxr_submission(args.predictions)
            name, source = args.predictions.name.split(".")[0], str(args.predictions)

    # Raises RxrSubmissionError listing every problem; nothing is written then.
    paths = validate_rxr_submission(predictions, split, connectivity, source=source)
    out = args.out or Path("outputs") / "submissions" / f"rxr_{args.split}_{name}.jsonl.gz"
    write_rxr_submission(out, paths)
    print(f"RxR submission for {args.split}: {len(paths)} instruction_ids validated, written to {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `clipnav-submit-rxr`: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
