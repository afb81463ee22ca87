"""Merge the clipnav stores of a sharded extraction (or any compatible stores) into one store."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from envs.features import FeatureFormatError, detect_format, merge_stores
from scripts.common import run_cli, setup_logging


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("inputs", type=Path, nargs="+", help="clipnav stores to merge")
    parser.add_argument("--out", type=Path, required=True, help="merged clipnav store to write")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.out.suffix not in ("", ".clipnav"):
        parser.error(
            f"--out {args.out}: the merged store is a clipnav folder, so name it <name>.clipnav (or without "
            "a suffix); convert it afterwards with clipnav-convert-features"
        )
    for path in args.inputs:
        if path.exists() and detect_format(path) != "clipnav":
            raise FeatureFormatError(
                f"{path} is a {detect_format(path)} store; only clipnav stores merge: convert it first "
                "with clipnav-convert-features"
            )
    merged = merge_stores(args.inputs, args.out, progress=True)
    print(f"merged {len(args.inputs)} stores into {merged}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
