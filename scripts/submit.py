"""Write an R2R leaderboard submission for the test split, refusing one that fails validation.

Either validate an existing trajectory file (--trajectories), run a baseline agent on
the test split (--run-agent), or run a trained follower or Seq2Seq agent greedily
(--checkpoint). The submission must contain every test instr_id once,
each trajectory starting at its episode's start and moving only along navigable edges.
Otherwise nothing is written and every problem is listed.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agent.inference import load_agent
from envs.evaluation import evaluate_trajectories
from envs.trajectories import read_trajectories, write_trajectories
from envs.world import EnvSettings, NavigationWorld
from scripts.common import add_common_arguments, run_cli, setup_logging
from scripts.run_baseline import add_agent_arguments, run_agent

logger = logging.getLogger("clipnav.submit")


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, checkpoint_run=True)
    add_agent_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--trajectories", type=Path, help="trajectory file to validate and submit")
    source.add_argument("--run-agent", action="store_true", help="run the --agent baseline on the split")
    source.add_argument("--checkpoint", type=Path, help="run this follower or Seq2Seq checkpoint greedily")
    parser.add_argument(
        "--force-features",
        action="store_true",
        help="run even if the features differ from the training features",
    )
    parser.add_argument("--device", default="auto", help="device of the trained agent: cpu, cuda or auto")
    parser.add_argument("--split", default="test", help="split of the submission (default: test)")
    parser.add_argument(
        "--out", type=Path, help="submission file (default: outputs/submissions/R2R_<split>_<name>.json)"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    if args.checkpoint is not None:
        data_dir = str(args.data_dir) if args.data_dir else None
        features = None if args.features == "none" else args.features
        agent = load_agent(args.checkpoint, data_dir, features, args.device, args.force_features)
        world = agent.world
    else:
        settings = EnvSettings(
            data_dir=args.data_dir, split=args.split, features=args.features, feature_dim=4
        )
        world = NavigationWorld.from_settings(settings)
    split = world.split(args.split)
    if args.checkpoint is not None:
        trajectories = agent.run_split(args.split)
        name, source = f"{agent.kind}_{args.checkpoint.stem}", str(args.checkpoint)
    elif args.trajectories is not None:
        trajectories = read_trajectories(args.trajectories)
        name, source = args.trajectories.stem, str(args.trajectories)
    else:
        trajectories = run_agent(args, world, args.split)
        name, source = f"{args.agent}_agent", f"{args.agent} agent"

    # Raises TrajectoryValidationError listing every problem; nothing is written then.
    report = evaluate_trajectories(trajectories, split, world.connectivity, source=source)
    out = args.out or Path("outputs") / "submissions" / f"R2R_{args.split}_{name}.json"
    write_trajectories(out, trajectories)
    print(f"submission for {args.split}: {len(report.instr_ids)} instr_ids validated, written to {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
