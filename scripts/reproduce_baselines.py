"""Score the baseline agents on the validation splits: the figures of the README's baseline table.

Runs stop, random, random_heading and shortest on val_seen and val_unseen (or the given
splits), random agents over several seeds, and prints a Markdown table of SR, SPL, NE,
OSR, TL and nDTW. `--out` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agent.baselines import make_baseline
from agent.rollout import rollout
from envs.episodes import DatasetFormatError
from envs.evaluation import evaluate_trajectories
from envs.io import write_json_atomic
from envs.world import EnvSettings, NavigationWorld
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger("clipnav.reproduce_baselines")

AGENTS = ("stop", "random", "random_heading", "shortest")
COLUMNS = ("success", "spl", "navigation_error", "oracle_success", "trajectory_length", "ndtw")
HEADERS = ("SR", "SPL", "NE (m)", "OSR", "TL (m)", "nDTW")


def score_baselines(
    world: NavigationWorld, splits: Sequence[str], seeds: Sequence[int], batch_size: int = 64
) -> dict[str, dict[str, dict[str, float]]]:
    """Return {agent: {split: {metric: mean over seeds}}}; stds under "<metric>_std"."""
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name in AGENTS:
        figures[name] = {}
        for split_name in splits:
            split = world.split(split_name)
            runs = []
            for seed in seeds if name.startswith("random") else seeds[:1]:
                agent = make_baseline(name, seed=seed)
                entries = rollout(agent.act, world, split_name, batch_size=batch_size, progress=False)
                report = evaluate_trajectories(entries, split, world.connectivity, source=f"{name} agent")
                runs.append(report.means())
            summary = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}
            summary |= {f"{key}_std": float(np.std([run[key] for run in runs])) for key in runs[0]}
            summary["runs"] = len(runs)
            figures[name][split_name] = summary
            logger.info("%s on %s: SR %.4f over %d run(s)", name, split_name, summary["success"], len(runs))
    return figures


def markdown_table(figures: dict[str, dict[str, dict[str, float]]], splits: Sequence[str]) -> str:
    lines = [
        "| agent | split | " + " | ".join(HEADERS) + " |",
        "|---|---|" + "---|" * len(HEADERS),
    ]
    for name, by_split in figures.items():
        for split in splits:
            row = by_split[split]
            cells = []
            for key in COLUMNS:
                percent = key not in ("navigation_error", "trajectory_length")
                scale = 100.0 if percent else 1.0
                cell = f"{row[key] * scale:.1f}" if percent else f"{row[key]:.2f}"
                if row["runs"] > 1:
                    cell += (
                        f" ± {row[key + '_std'] * scale:.1f}" if percent else f" ± {row[key + '_std']:.2f}"
                    )
                cells.append(cell)
            lines.append(f"| {name} | {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--splits", nargs="+", default=["val_seen", "val_unseen"])
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of random agents"
    )
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    world = NavigationWorld.from_settings(EnvSettings(data_dir=args.data_dir, feature_dim=4))
    for split in args.splits:
        if not world.split(split).has_reference:
            raise DatasetFormatError(f"split {split} has no reference paths, so it cannot be scored")
    figures = score_baselines(world, args.splits, args.seeds)
    print("SR, SPL, OSR and nDTW in percent; random agents: mean ± std over seeds", args.seeds)
    print(markdown_table(figures, args.splits))
    if args.out:
        write_json_atomic(args.out, figures, indent=2)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
