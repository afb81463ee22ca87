"""Time clipnav's evaluation against the method of the official R2R scorer, on the same input.

Both sides start from the parsed trajectory file and the parsed split, and read the
connectivity files of the split's scans from disk on every repeat:

- ours: `Connectivity` (SciPy all-pairs Dijkstra per scan), then `evaluate_trajectories`,
  which validates every trajectory and computes all eight metrics;
- official method (`tasks/R2R/eval.py` of the Matterport3D Simulator, reimplemented
  here): one networkx Graph per scan, `nx.all_pairs_dijkstra_path_length`, then a Python
  loop over the trajectories computing NE, SR, OSR, TL and SPL.

The script prints the best time of each over a few repeats, their ratio, and whether
both give the same SR, SPL and NE. It exits with 1 if they differ. networkx comes with
the project's `dev` extra.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from connectivity import ClipnavError, Connectivity, connectivity_dir, resolve_data_dir
from envs.episodes import Split
from envs.evaluation import EvaluationReport, evaluate_trajectories
from envs.metrics import DEFAULT_SUCCESS_DISTANCE
from envs.r2r import load_r2r_split
from envs.trajectories import read_trajectories
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger(__name__)

DEFAULT_TRAJECTORIES = Path("trajectories") / "val_unseen_shortest_agent.json"  # inside the data folder
# Largest difference in metres (NE) or ratio (SPL) counted as equal, because the two
# sides may sum the same edge lengths in different orders.
TOLERANCE = 1e-9


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_evaluation",
        description="Time clipnav's evaluation against the official R2R scorer's method (networkx).",
    )
    parser.add_argument(
        "--trajectories",
        type=Path,
        default=None,
        help=f"leaderboard-format trajectory file (default: <data dir>/{DEFAULT_TRAJECTORIES})",
    )
    parser.add_argument("--split", default="val_unseen", help="R2R split of the file (default: %(default)s)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs of each side (default: %(default)s)"
    )
    add_common_arguments(parser)
    return parser


def score_official_method(
    root: Path, split: Split, entries: Sequence[dict], success_distance: float = DEFAULT_SUCCESS_DISTANCE
) -> dict[str, dict[str, float]]:
    """Score trajectories the way the official R2R scorer does; returns {instr_id: {metric: value}}."""
    try:
        import networkx as nx
    except ImportError:
        raise ClipnavError(
            "networkx is not installed; the official method needs it. Install the dev extra: pip install -e '.[dev]'"
        ) from None

    scans = {split[entry["instr_id"]].scan for entry in entries}
    lengths: dict[str, dict[str, dict[str, float]]] = {}
    for scan in scans:
        with open(root / f"{scan}_connectivity.json") as file:
            viewpoints = json.load(file)
        graph = nx.Graph()
        for item in viewpoints:
            if not item["included"]:
                continue
            for j, unobstructed in enumerate(item["unobstructed"]):
                other = viewpoints[j]
                if unobstructed and other["included"]:
                    graph.add_edge(item["image_id"], other["image_id"], weight=_pose_distance(item, other))
        lengths[scan] = dict(nx.all_pairs_dijkstra_path_length(graph))

    scores: dict[str, dict[str, float]] = {}
    for entry in entries:
        episode = split[entry["instr_id"]]
        table = lengths[episode.scan]
        path = [step[0] for step in entry["trajectory"]]
        goal = episode.path[-1]

        navigation_error = table[path[-1]][goal]
        oracle_error = min(table[viewpoint][goal] for viewpoint in path)
        trajectory_length = 0.0
        for before, after in zip(path[:-1], path[1:]):
            trajectory_length += table[before][after]
        shortest = table[episode.path[0]][goal]
        success = navigation_error < success_distance
        spl = shortest / max(trajectory_length, shortest) if success else 0.0

        scores[entry["instr_id"]] = {
            "navigation_error": navigation_error,
            "success": float(success),
            "oracle_success": float(oracle_error < success_distance),
            "trajectory_length": trajectory_length,
            "spl": spl,
        }
    return scores


def _pose_distance(first: dict, second: dict) -> float:
    """Euclidean distance between the translations (pose elements 3, 7, 11) of two viewpoints."""
    return math.sqrt(sum((first["pose"][k] - second["pose"][k]) ** 2 for k in (3, 7, 11)))


def best_time(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Run `run` `repeats` times; return the shortest wall time in seconds and the last result."""
    best = math.inf
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(ours: EvaluationReport, official: dict[str, dict[str, float]]) -> dict[str, float]:
    """Return the largest absolute difference per metric between the two sides."""
    if ours.metrics is None:
        raise ClipnavError(f"split {ours.split} has no reference paths; benchmark a split with metrics")
    differences = {}
    for name in ("success", "spl", "navigation_error", "oracle_success", "trajectory_length"):
        theirs = np.array([official[instr_id][name] for instr_id in ours.instr_ids])
        differences[name] = float(np.abs(getattr(ours.metrics, name) - theirs).max())
    return differences


def benchmark(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark without run_cli's error handling; returns the exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.repeats < 1:
        raise ClipnavError(f"--repeats must be at least 1, got {args.repeats}")

    data_dir = resolve_data_dir(args.data_dir)
    root = connectivity_dir(data_dir)
    path = args.trajectories or data_dir / DEFAULT_TRAJECTORIES
    split = load_r2r_split(args.split, data_dir)
    entries = read_trajectories(path)
    logger.info("benchmarking %s on split %s, %d repeats", path, split.name, args.repeats)

    def run_ours() -> EvaluationReport:
        return evaluate_trajectories(entries, split, Connectivity(root), source=str(path))

    ours_seconds, report = best_time(run_ours, args.repeats)
    official_seconds, official = best_time(lambda: score_official_method(root, split, entries), args.repeats)
    differences = compare(report, official)

    print(f"episodes: {len(report.instr_ids)} of split {split.name}, {len(set(report.scans))} scans")
    print(f"ours, graphs from disk + validation + 8 metrics: {ours_seconds:.4f} s (best of {args.repeats})")
    print(
        f"official method, networkx + Python loop, 5 metrics: {official_seconds:.4f} s (best of {args.repeats})"
    )
    print(f"official / ours: {official_seconds / ours_seconds:.2f}x")
    print("largest difference: " + ", ".join(f"{name} {value:.3g}" for name, value in differences.items()))

    disagree = [name for name in ("success", "spl", "navigation_error") if differences[name] > TOLERANCE]
    if disagree:
        logger.error("ours and the official method differ in %s beyond %g", ", ".join(disagree), TOLERANCE)
        return 1
    print("SR, SPL and NE agree on every episode")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(benchmark, argv)


if __name__ == "__main__":
    raise SystemExit(main())
