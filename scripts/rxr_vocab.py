"""Build RxR instruction vocabularies from a split (train by default): one shared, or one per language.

Examples:
    clipnav-rxr-vocab --out runs/vocab_rxr.txt
    clipnav-rxr-vocab --scope per_language --out "runs/vocab.{language}.txt"

A per-language file name contains "{language}", which is replaced by en, hi and te. Training reads a
per-language file through the same name with one language selected, for example
`--vocabulary "runs/vocab.{language}.txt" --languages hi`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from envs.rxr import VOCABULARY_SCOPES, build_rxr_vocabularies, load_rxr_split, save_rxr_vocabularies
from scripts.common import add_common_arguments, run_cli, setup_logging


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="clipnav-rxr-vocab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--split", default="train", help="RxR split whose instructions are counted")
    parser.add_argument("--languages", default=None, help="comma-separated languages to count (default: all)")
    parser.add_argument(
        "--rxr-dir",
        type=Path,
        default=None,
        help="folder of the guide files (default: RxR/ in the data folder)",
    )
    parser.add_argument(
        "--scope", choices=VOCABULARY_SCOPES, default="shared", help="one vocabulary, or one per language"
    )
    parser.add_argument("--min-count", type=int, default=5, help="occurrences a word needs to enter")
    parser.add_argument("--max-size", type=int, default=None, help="tokens at most, special tokens included")
    parser.add_argument(
        "--out", required=True, help='vocabulary file; per language, a name holding "{language}"'
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    split = load_rxr_split(args.split, args.data_dir, args.languages, args.rxr_dir)
    vocabularies = build_rxr_vocabularies(split, args.scope, args.min_count, args.max_size)
    files = save_rxr_vocabularies(vocabularies, args.out)
    for key, path in files.items():
        print(f"{key}: {len(vocabularies[key])} tokens from split {args.split} written to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `clipnav-rxr-vocab`: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
