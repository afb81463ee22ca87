"""Build the instruction vocabulary from a split (train by default) and save it, one token per line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from envs.r2r import load_r2r_split
from envs.tokenizer import build_vocabulary
from scripts.common import add_common_arguments, run_cli, setup_logging


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--split", default="train", help="R2R split whose instructions are counted")
    parser.add_argument("--min-count", type=int, default=5, help="occurrences a word needs to enter")
    parser.add_argument("--max-size", type=int, default=None, help="tokens at most, special tokens included")
    parser.add_argument("--out", type=Path, required=True, help="vocabulary file to write")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    split = load_r2r_split(args.split, args.data_dir)
    vocabulary = build_vocabulary((e.instruction for e in split), args.min_count, args.max_size)
    vocabulary.save(args.out)
    print(f"{len(vocabulary)} tokens from {len(split)} instructions of {args.split} written to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
