"""Benchmark: bare simulator steps per second at batch 64 on the real navigation graphs.

A step is `make_actions` plus reading the new states' navigable locations, with random
valid actions. In the same run, a plain per-episode Python port of the simulator's
neighbour loop (the computation the C++ simulator does each step) gives the baseline
ratio. The C++ simulator itself does about 256,000 steps per second at batch 64 with
rendering off on a 2-core machine of the kind these figures come from.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np

from connectivity import Connectivity, connectivity_dir
from envs.navigable import HEADING_INCREMENT, CameraSettings
from envs.simulator import BatchSimulator
from scripts.common import add_common_arguments, positive_int, run_cli, setup_logging

CPP_STEPS_PER_SECOND = 256_000
TARGET_STEPS_PER_SECOND = 1_000_000


def start_states(graphs: Connectivity, batch: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    scans = [graphs.scans[i % len(graphs.scans)] for i in range(batch)]
    viewpoints = []
    for scan in scans:
        graph = graphs[scan]
        viewpoints.append(graph.viewpoint_ids[int(rng.choice(np.flatnonzero(graph.included)))])
    return scans, viewpoints


def batched_rate(graphs: Connectivity, batch: int, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    sim = BatchSimulator(graphs)
    scans, viewpoints = start_states(graphs, batch, rng)
    sim.new_episodes(scans, viewpoints, rng.uniform(0, 2 * math.pi, batch), np.zeros(batch))
    draws = rng.random((steps, batch))
    turns = rng.integers(-1, 2, size=(steps, 2, batch)).astype(np.float64)
    navigable = sim.navigable_arrays()

    start = time.perf_counter()
    for step in range(steps):
        index = (draws[step] * navigable["count"]).astype(np.int64)
        sim.make_actions(index, turns[step, 0], turns[step, 1])
        navigable = sim.navigable_arrays()
    return batch * steps / (time.perf_counter() - start)


def python_port_rate(graphs: Connectivity, batch: int, steps: int, seed: int) -> float:
    """Steps per second of a per-episode loop over neighbours, as the C++ simulator does it."""
    rng = np.random.default_rng(seed)
    scans, viewpoints = start_states(graphs, batch, rng)
    camera = CameraSettings()
    state = []
    for scan, viewpoint in zip(scans, viewpoints):
        graph = graphs[scan]
        state.append([graph, graph.index(viewpoint), 0, 1])  # graph, index, heading step, row
    draws = rng.random((steps, batch))

    start = time.perf_counter()
    for step in range(steps):
        for episode in range(batch):
            graph, here, heading_step, row = state[episode]
            heading = heading_step * HEADING_INCREMENT
            elevation = (row - 1) * math.pi / 6
            camera_x, camera_y = math.cos(math.pi / 2 - heading), math.sin(math.pi / 2 - heading)
            found = [(0.0, here)]
            for there in np.flatnonzero(graph.unobstructed[here] & graph.included):
                dx, dy, dz = graph.positions[there] - graph.positions[here]
                flat = math.hypot(dx, dy)
                if (dx * camera_x + dy * camera_y) / flat >= camera.cos_half_hfov:
                    rel_heading = math.atan2(dx * camera_y - dy * camera_x, dx * camera_x + dy * camera_y)
                    rel_elevation = math.atan2(dz, flat) - elevation
                    found.append((math.hypot(rel_heading, rel_elevation), int(there)))
            found.sort()
            target = found[int(draws[step, episode] * len(found))][1]
            state[episode][1] = target
            state[episode][2] = (heading_step + 1) % 12
    return batch * steps / (time.perf_counter() - start)


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--steps", type=positive_int, default=20_000, help="batched steps timed")
    parser.add_argument(
        "--baseline-steps", type=positive_int, default=200, help="steps of the Python port timed"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    graphs = Connectivity(connectivity_dir(args.data_dir))
    graphs.load_all(with_distances=False)

    batched_rate(graphs, args.batch_size, 100, args.seed)  # computes every scan's tables
    ours = batched_rate(graphs, args.batch_size, args.steps, args.seed)
    port = python_port_rate(graphs, args.batch_size, args.baseline_steps, args.seed)
    print(f"batch {args.batch_size}, {len(graphs)} scans, random valid actions")
    print(f"clipnav BatchSimulator: {ours:,.0f} steps/s (target {TARGET_STEPS_PER_SECOND:,})")
    print(f"per-episode Python port: {port:,.0f} steps/s (same run); ratio {ours / port:,.1f}x")
    print(
        f"C++ simulator, reference figure: about {CPP_STEPS_PER_SECOND:,} steps/s; ratio {ours / CPP_STEPS_PER_SECOND:.1f}x"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
