"""Benchmark: read all navigation graphs of a connectivity folder with their all-pairs distances.

Prints the best wall time of several cold loads (a new `Connectivity` each time; the
operating system's file cache stays warm) against the target of 3 s.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from connectivity import Connectivity, connectivity_dir
from scripts.benchmarking import best_time
from scripts.common import add_common_arguments, run_cli, setup_logging

TARGET_SECONDS = 3.0


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3, help="timed loads; the best is printed")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    logging.getLogger("connectivity").setLevel(logging.WARNING)
    folder = connectivity_dir(args.data_dir)

    def load() -> Connectivity:
        graphs = Connectivity(folder)
        graphs.load_all(with_distances=True)
        return graphs

    seconds = best_time(load, args.repeats)
    graphs = load()
    viewpoints = sum(len(graphs[scan]) for scan in graphs)
    print(f"graphs: {len(graphs)} scans, {viewpoints} viewpoints, all-pairs distances included")
    print(f"load time: {seconds:.3f} s (best of {args.repeats}; target under {TARGET_SECONDS:.0f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
