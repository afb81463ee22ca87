"""Benchmark: opening a feature store and reading random viewpoints, TSV against clipnav.

Builds random float32 features for 10,567 viewpoints (the included viewpoints of the
real connectivity when the data folder has it, else synthetic ids), D = 512, and writes
them as a TSV file and as clipnav stores in a temporary folder (not timed). Each format
is then measured in a fresh process. The open time covers decoding every line for TSV,
as the published loaders do, and mapping the array for clipnav. Random reads take all 36
views of a viewpoint, in batches as the environments read them and one viewpoint at a
time. Resident memory (VmRSS) is compared before and after the open and the reads.
Reads hit the page cache, which contains the freshly written files.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import multiprocessing
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from connectivity import Connectivity, DataNotFoundError, connectivity_dir
from envs.features import ClipnavStoreWriter, open_feature_store, write_tsv_features
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger(__name__)

R2R_VIEWPOINTS = 10_567
TARGET_OPEN_SPEEDUP = 100
TARGET_VIEWS_PER_SECOND = 1_000_000
TARGET_EXTRA_RSS_MB = 200
CHUNK_ROWS = 256


def benchmark_keys(data_dir: Path | None, count: int) -> tuple[list[tuple[str, str]], str]:
    """Return `count` (scan, viewpoint) keys, real included viewpoints first, and where they came from."""
    keys: list[tuple[str, str]] = []
    origin = "synthetic ids"
    try:
        root = connectivity_dir(data_dir)
    except DataNotFoundError as error:
        logger.info("using synthetic viewpoint ids: %s", error)
    else:
        connectivity = Connectivity(root)
        for scan in connectivity:
            graph = connectivity[scan]
            keys += [(scan, vp) for vp, included in zip(graph.viewpoint_ids, graph.included) if included]
        origin = f"included viewpoints of {root}"
    if len(keys) < count:
        keys += [(f"synth{i // 120:04d}", f"{i:032x}") for i in range(len(keys), count)]
        origin += " and synthetic ids" if origin != "synthetic ids" else ""
    return keys[:count], origin


def feature_chunks(count: int, dim: int, seed: int) -> Iterator[np.ndarray]:
    """Yield random float32 features [rows, 36, dim] chunk by chunk, the same for a given seed."""
    for chunk, start in enumerate(range(0, count, CHUNK_ROWS)):
        rows = min(CHUNK_ROWS, count - start)
        yield np.random.default_rng([seed, chunk]).standard_normal((rows, 36, dim), dtype=np.float32)


def write_stores(
    folder: Path, keys: list[tuple[str, str]], dim: int, dtypes: Sequence[str], seed: int
) -> dict[str, Path]:
    """Write the benchmark features as TSV and as one clipnav store per dtype; return their paths."""
    paths = {"tsv": folder / "features.tsv"}

    def records() -> Iterator[tuple[str, str, np.ndarray]]:
        row = 0
        for chunk in feature_chunks(len(keys), dim, seed):
            for features in chunk:
                yield keys[row][0], keys[row][1], features
                row += 1

    write_tsv_features(paths["tsv"], tqdm(records(), total=len(keys), desc="writing TSV", unit="viewpoint"))
    for dtype in dtypes:
        path = paths[f"clipnav {dtype}"] = folder / f"features_{dtype}.clipnav"
        writer = ClipnavStoreWriter.create(
            path, keys, dim, dtype, {"encoder": "random", "pretrained": "none"}
        )
        start = 0
        for chunk in tqdm(
            feature_chunks(len(keys), dim, seed), desc=f"writing clipnav {dtype}", unit="chunk"
        ):
            writer.write(np.arange(start, start + len(chunk)), chunk)
            start += len(chunk)
        writer.finish()
    return paths


def memory_mb() -> dict[str, float]:
    """Return VmRSS, RssAnon and RssFile of this process in MB, from /proc/self/status."""
    values: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                values[name] = int(rest.split()[0]) / 1024
    return values


def measure(path: str, keys: list[tuple[str, str]], reads: int, batch: int, seed: int) -> dict[str, Any]:
    """Open the store at `path` and read `reads` random viewpoints; run in a fresh process."""
    before_open = memory_mb()
    start = time.perf_counter()
    store = open_feature_store(path)
    open_seconds = time.perf_counter() - start
    after_open = memory_mb()

    picked = np.random.default_rng(seed).choice(len(keys), size=reads, replace=reads > len(keys))
    rows = store.lookup_many([keys[i] for i in picked])

    start = time.perf_counter()
    for first in range(0, reads, batch):
        store.read_rows(rows[first : first + batch])
    batch_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for first in range(reads):
        store.read_rows(rows[first : first + 1])
    single_seconds = time.perf_counter() - start
    after_reads = memory_mb()

    return {
        "open_s": open_seconds,
        "open_rss_mb": after_open.get("VmRSS", float("nan")) - before_open.get("VmRSS", float("nan")),
        "batch_views_per_s": reads * 36 / batch_seconds,
        "single_views_per_s": reads * 36 / single_seconds,
        "reads_anon_mb": after_reads.get("RssAnon", float("nan")) - before_open.get("RssAnon", float("nan")),
        "reads_file_mb": after_reads.get("RssFile", float("nan")) - before_open.get("RssFile", float("nan")),
    }


def measure_in_fresh_process(
    path: Path, keys: list[tuple[str, str]], reads: int, batch: int, seed: int
) -> dict[str, Any]:
    """Run `measure` in a newly spawned process, so its memory figures start clean."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, str(path), keys, reads, batch, seed).result()


def print_results(results: dict[str, dict[str, Any]], batch: int) -> None:
    print(f"{'format':<16} {'open s':>9} {'open RSS MB':>12} {f'views/s ({batch})':>16} {'views/s (1)':>14}")
    for name, result in results.items():
        print(
            f"{name:<16} {result['open_s']:>9.4f} {result['open_rss_mb']:>12.1f} "
            f"{result['batch_views_per_s']:>16,.0f} {result['single_views_per_s']:>14,.0f}"
        )
    print("memory after the reads (MB, growth since before the open): anonymous / file-backed, shared")
    for name, result in results.items():
        print(f"  {name:<16} {result['reads_anon_mb']:>8.1f} / {result['reads_file_mb']:.1f}")

    tsv = results["tsv"]
    for name, result in results.items():
        if name == "tsv":
            continue
        speedup = tsv["open_s"] / result["open_s"]
        print(
            f"{name}: opens {speedup:,.0f}x faster than TSV (target {TARGET_OPEN_SPEEDUP}x), "
            f"{result['batch_views_per_s']:,.0f} views/s in batches (target {TARGET_VIEWS_PER_SECOND:,}), "
            f"{result['open_rss_mb']:.1f} MB more resident memory on open (target under {TARGET_EXTRA_RSS_MB})"
        )


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--count", type=int, default=R2R_VIEWPOINTS, help="viewpoints in the stores")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension")
    parser.add_argument("--reads", type=int, default=10_000, help="random viewpoints read per format")
    parser.add_argument(
        "--batch", type=int, default=64, help="viewpoints per read_rows call in batched reads"
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=("float16", "float32"),
        default=["float16", "float32"],
        help="clipnav dtypes",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="folder for the stores (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    keys, origin = benchmark_keys(args.data_dir, args.count)
    print(f"{len(keys)} viewpoints ({origin}), D = {args.dim}, {args.reads} random reads, batch {args.batch}")
    with tempfile.TemporaryDirectory(dir=args.work_dir, prefix="bench_features.") as folder:
        paths = write_stores(Path(folder), keys, args.dim, args.dtypes, args.seed)
        sizes = ", ".join(f"{name} {_size_mb(path):,.0f} MB" for name, path in paths.items())
        print(f"store sizes: {sizes}")
        results = {}
        for name, path in paths.items():
            logger.info("measuring %s", name)
            results[name] = measure_in_fresh_process(path, keys, args.reads, args.batch, args.seed)
    print_results(results, args.batch)
    return 0


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else list(path.iterdir())
    return sum(file.stat().st_size for file in files) / 2**20


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
