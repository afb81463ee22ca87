"""Convert view features between the TSV, HDF5 and clipnav formats, keeping their metadata.

The source format is detected from the file; the output format follows from the output
name (.tsv, .h5 or .hdf5, .clipnav) unless --format is given. Example:
`python -m scripts.convert_features views.hdf5 views.clipnav --dim 768 --dtype float16`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from envs.features import FORMATS, convert_features
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger(__name__)


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="feature file or clipnav store to read")
    parser.add_argument("dst", type=Path, help="output path")
    add_common_arguments(parser)
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="output format (default: from dst's name)"
    )
    parser.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default=None,
        help="output dtype (default: the source's where the output format allows it, else float32)",
    )
    parser.add_argument(
        "--dim",
        type=int,
        default=None,
        help="feature dimension of the source; drops the 1000 ImageNet logits of HDF5 files dim + 1000 wide",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace dst if it exists")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    out = convert_features(
        args.src, args.dst, args.format, args.dtype, args.dim, overwrite=args.overwrite, progress=True
    )
    logger.info("converted %s to %s", args.src, out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
