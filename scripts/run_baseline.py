"""Run a baseline agent (stop, random, shortest) on a split, write its trajectories and score them."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agent.baselines import baseline_names, make_baseline
from agent.rollout import rollout
from envs.evaluation import evaluate_trajectories, write_report
from envs.registration import R2R_MAX_EPISODE_STEPS
from envs.trajectories import write_trajectories
from envs.world import EnvSettings, NavigationWorld
from scripts.common import add_common_arguments, non_negative_int, positive_int, run_cli, setup_logging

logger = logging.getLogger("clipnav.run_baseline")


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose and configure a baseline agent."""
    parser.add_argument("--agent", choices=baseline_names(), default="random", help="baseline agent")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random agent")
    parser.add_argument(
        "--random-moves", type=non_negative_int, default=5, help="moves of the random agents before STOP"
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="episodes stepped together")
    parser.add_argument(
        "--max-steps", type=positive_int, default=R2R_MAX_EPISODE_STEPS, help="maximum actions per episode"
    )
    parser.add_argument("--features", default="none", help='view-feature file, or "none" for zeros')


def run_agent(args: argparse.Namespace, world: NavigationWorld, split: str) -> dict[str, list]:
    """Run the baseline named by `args` on `split`; return trajectories by instr_id."""
    agent = make_baseline(args.agent, seed=args.seed, random_moves=args.random_moves)
    entries = rollout(agent.act, world, split, batch_size=args.batch_size, max_steps=args.max_steps)
    return {entry["instr_id"]: entry["trajectory"] for entry in entries}


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    add_agent_arguments(parser)
    parser.add_argument("--split", default="val_unseen", help="R2R split (train, val_seen, val_unseen, test)")
    parser.add_argument(
        "--out", type=Path, required=True, help="trajectory file to write (leaderboard format)"
    )
    parser.add_argument("--report", type=Path, help="also write a JSON evaluation report here")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    settings = EnvSettings(data_dir=args.data_dir, split=args.split, features=args.features, feature_dim=4)
    world = NavigationWorld.from_settings(settings)
    trajectories = run_agent(args, world, args.split)

    split = world.split(args.split)
    report = evaluate_trajectories(trajectories, split, world.connectivity, source=str(args.out))
    write_trajectories(args.out, trajectories)
    print(f"{args.agent} agent on {args.split}: trajectories in {args.out}")
    print(report.format_table())
    if args.report:
        write_report(report, args.report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
