"""Timing helpers for the benchmark scripts: best of several runs, in one process."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(run: Callable[[], object], repeats: int = 3) -> float:
    """Return the shortest wall time in seconds of `repeats` calls of `run`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best
