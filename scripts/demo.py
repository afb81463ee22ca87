"""Run clipnav end to end on the built-in demo world; it needs no downloaded data.

The demo world is built on first use: a few generated houses in the Matterport3D
Simulator's connectivity format, R2R-format splits with templated instructions, and
synthetic view features in which landmarks are visible. The program runs the baseline
agents on its validation splits through the Gymnasium environments, scores them, and
writes a validated test-split submission.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agent.baselines import make_baseline
from agent.rollout import rollout
from envs.demo_world import ensure_demo_world
from envs.evaluation import evaluate_trajectories, write_report
from envs.trajectories import write_trajectories
from envs.world import EnvSettings, NavigationWorld
from scripts.common import run_cli, setup_logging
from scripts.reproduce_baselines import markdown_table, score_baselines

logger = logging.getLogger("clipnav.demo")


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--demo-dir", type=Path, help="where the demo world lives (default: .cache/demo_world)"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="folder for the outputs")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    demo_dir = ensure_demo_world(args.demo_dir)
    features = next((demo_dir / "features").glob("*.tsv"))
    world = NavigationWorld.from_settings(EnvSettings(data_dir=str(demo_dir), features=str(features)))
    logger.info("demo world at %s; features %s", demo_dir, world.features.describe())

    splits = ["val_seen", "val_unseen"]
    figures = score_baselines(world, splits, seeds=[0, 1, 2])
    print(f"Baselines on the demo world ({demo_dir}); SR, SPL, OSR and nDTW in percent")
    print(markdown_table(figures, splits))

    shortest = rollout(make_baseline("shortest").act, world, "val_unseen", progress=False)
    report = evaluate_trajectories(
        shortest, world.split("val_unseen"), world.connectivity, source="shortest agent"
    )
    write_trajectories(
        args.out / "val_unseen_shortest.json", {e["instr_id"]: e["trajectory"] for e in shortest}
    )
    write_report(report, args.out / "val_unseen_shortest_report.json")

    test = rollout(make_baseline("random_heading").act, world, "test", progress=False)
    evaluate_trajectories(test, world.split("test"), world.connectivity, source="random_heading agent")
    submission = args.out / "R2R_test_random_heading_agent.json"
    write_trajectories(submission, {e["instr_id"]: e["trajectory"] for e in test})
    print(f"outputs in {args.out}: trajectories, an evaluation report and a validated test submission")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
