"""Run clipnav end to end on the built-in demo world; it needs no downloaded data.

The demo world is built on first use: a few generated houses in the Matterport3D
Simulator's connectivity format, R2R-format splits with templated instructions, and
synthetic view features in which landmarks are visible. The program runs the baseline
agents on its validation splits through the Gymnasium environments and scores them.
Then it trains an EnvDrop follower on the training split, with a smaller network than
the R2R default so that it takes a few minutes on a CPU. It scores the follower on the
held-out splits and writes a validated test-split submission from it.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from agent.baselines import make_baseline
from agent.follower import FollowerModelSettings
from agent.inference import load_agent
from agent.rollout import rollout
from agent.training import FollowerTrainer, FollowerTrainingSettings
from envs.demo_world import ensure_demo_world
from envs.evaluation import evaluate_trajectories, write_report
from envs.trajectories import write_trajectories
from envs.world import EnvSettings, NavigationWorld
from scripts.common import non_negative_int, run_cli, setup_logging
from scripts.reproduce_baselines import markdown_table, score_baselines

logger = logging.getLogger("clipnav.demo")

# A smaller follower than the R2R default: the demo world's instructions and houses are small.
DEMO_FOLLOWER = FollowerModelSettings(embedding_size=128, hidden_size=256)


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--demo-dir", type=Path, help="where the demo world lives (default: .cache/demo_world)"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="folder for the outputs")
    parser.add_argument(
        "--iterations",
        type=non_negative_int,
        default=1500,
        help="follower training iterations (0: baselines only)",
    )
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
    if args.iterations == 0:
        test = rollout(make_baseline("random_heading").act, world, "test", progress=False)
        evaluate_trajectories(test, world.split("test"), world.connectivity, source="random_heading agent")
        write_trajectories(
            args.out / "R2R_test_random_heading_agent.json", {e["instr_id"]: e["trajectory"] for e in test}
        )
        print(f"outputs in {args.out}: baseline trajectories, a report and a validated test submission")
        return 0

    settings = FollowerTrainingSettings(
        output_dir=str(args.out / "follower"),
        data_dir=str(demo_dir),
        features=str(features),
        iterations=args.iterations,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        train_mode="il",
        eval_interval=250,
        checkpoint_interval=250,
    )
    resume = (Path(settings.output_dir) / "checkpoints" / "latest.pt").is_file()
    trainer = FollowerTrainer(settings, DEMO_FOLLOWER, resume=resume)
    start = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - start) / 60
    best = Path(settings.output_dir) / "checkpoints" / "best_val_seen.pt"
    agent = load_agent(best, data_dir=str(demo_dir))
    print(
        f"EnvDrop follower, {args.iterations} iterations ({minutes:.1f} min of training here), best on val_seen:"
    )
    for split in splits:
        trajectories = agent.run_split(split)
        means = evaluate_trajectories(trajectories, world.split(split), world.connectivity).means()
        print(
            f"  {split}: SR {100 * means['success']:.1f}, SPL {100 * means['spl']:.1f}, NE {means['navigation_error']:.2f} m"
        )

    test = agent.run_split("test")
    evaluate_trajectories(test, world.split("test"), world.connectivity, source=str(best))
    submission = args.out / "R2R_test_demo_follower.json"
    write_trajectories(submission, test)
    print(
        f"outputs in {args.out}: baseline trajectories and report, the follower run, and a validated test submission"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
