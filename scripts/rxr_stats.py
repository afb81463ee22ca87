"""Print statistics of the RxR guide files: episodes, paths, path and instruction lengths.

For each split and each language, and for all languages together, the table gives the
episodes (instructions) and the distinct paths (path_id). It also gives three means over
the episodes: the reference path's length in hops (moves between viewpoints) and in
metres (summed edge lengths), and the instruction's length in tokens
(`envs.tokenizer.tokenize`).
Test splits have no reference paths, so their path lengths print as "-".

Example:
    clipnav-rxr-stats --splits train,val_unseen --languages en,hi
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from connectivity import Connectivity, DataNotFoundError, connectivity_dir
from envs.episodes import Episode, Split
from envs.metrics import collapse_repeats
from envs.rxr import RXR_SPLITS, load_rxr_split
from envs.tokenizer import tokenize
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger("clipnav.rxr_stats")

ALL_LANGUAGES = "all"


@dataclass(frozen=True)
class SplitStatistics:
    """Statistics of the episodes of one split in one language (or "all")."""

    split: str
    language: str
    episodes: int
    paths: int
    mean_hops: float | None  # None without reference paths
    mean_metres: float | None
    mean_tokens: float


def split_statistics(split: Split, connectivity: Connectivity) -> list[SplitStatistics]:
    """Return one row per language of the split, sorted, then one for all languages together."""
    by_language: dict[str, list[Episode]] = {}
    for episode in split:
        by_language.setdefault(episode.language, []).append(episode)
    groups = [(language, by_language[language]) for language in sorted(by_language)]
    groups.append((ALL_LANGUAGES, list(split)))
    return [_statistics(split.name, language, episodes, connectivity) for language, episodes in groups]


def _statistics(
    split: str, language: str, episodes: list[Episode], connectivity: Connectivity
) -> SplitStatistics:
    tokens = [len(tokenize(episode.instruction)) for episode in episodes]
    with_reference = [episode for episode in episodes if episode.has_reference]
    mean_hops = mean_metres = None
    if with_reference:
        paths = [collapse_repeats(episode.path) for episode in with_reference]
        mean_hops = float(np.mean([len(path) - 1 for path in paths]))
        mean_metres = float(
            np.mean(
                [connectivity[episode.scan].path_length(path) for episode, path in zip(with_reference, paths)]
            )
        )
    return SplitStatistics(
        split=split,
        language=language,
        episodes=len(episodes),
        paths=len({episode.path_id for episode in episodes}),
        mean_hops=mean_hops,
        mean_metres=mean_metres,
        mean_tokens=float(np.mean(tokens)) if tokens else float("nan"),
    )


def format_table(rows: Sequence[SplitStatistics]) -> str:
    """Return the rows as a table for the terminal."""
    header = (
        f"{'split':<14} {'language':<9} {'episodes':>9} {'paths':>7} {'hops':>6} {'metres':>7} {'tokens':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        hops = "-" if row.mean_hops is None else f"{row.mean_hops:.2f}"
        metres = "-" if row.mean_metres is None else f"{row.mean_metres:.2f}"
        lines.append(
            f"{row.split:<14} {row.language:<9} {row.episodes:>9} {row.paths:>7} {hops:>6} {metres:>7} "
            f"{row.mean_tokens:>7.1f}"
        )
    return "\n".join(lines)


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="clipnav-rxr-stats", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--splits",
        default=None,
        help=f"comma-separated RxR splits (default: those of {', '.join(RXR_SPLITS)} that are present)",
    )
    parser.add_argument(
        "--languages",
        default=None,
        help="comma-separated languages, en, hi, te or tags such as en-IN (default: all)",
    )
    parser.add_argument(
        "--rxr-dir",
        type=Path,
        default=None,
        help="folder of the rxr_<split>_guide.jsonl.gz files (default: RxR/ in the data folder)",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    names = [name for name in args.splits.split(",") if name] if args.splits else list(RXR_SPLITS)
    connectivity = Connectivity(connectivity_dir(args.data_dir))
    rows: list[SplitStatistics] = []
    for name in names:
        try:
            split = load_rxr_split(name, args.data_dir, args.languages, args.rxr_dir)
        except DataNotFoundError:
            if args.splits:
                raise
            logger.warning("RxR split %s not found; skipped", name)
            continue
        rows += split_statistics(split, connectivity)
    if not rows:
        raise DataNotFoundError(
            "no RxR guide file found; put rxr_<split>_guide.jsonl.gz files in RxR/ of the data folder "
            "or pass --rxr-dir"
        )
    print(format_table(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `clipnav-rxr-stats`: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
