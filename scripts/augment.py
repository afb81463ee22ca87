"""Write back-translation data: sampled training-house paths described by a trained speaker.

Samples COUNT distinct shortest paths of 4 to 6 hops between included viewpoints of the
training split's scans, with random start headings drawn from a fixed seed. The speaker
writes an instruction for each, and the paths go to an R2R-format JSON file whose
path_ids start at --path-id-offset (1,000,000). An offset that is not above every
path_id of the data folder's R2R files is rejected. Train a follower on the file with
`clipnav-train-follower --augmented FILE`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from agent.augmentation import AugmentationSettings, augment
from agent.settings import add_settings_arguments, settings_from_arguments
from scripts.common import positive_int, run_cli, setup_logging


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speaker", required=True, help="speaker checkpoint (checkpoints/best_<split>.pt)")
    parser.add_argument("--count", type=positive_int, required=True, help="number of paths to sample")
    parser.add_argument("--out", required=True, help="R2R-format JSON file to write")
    parser.add_argument(
        "--data-dir", default=None, help="data folder (default: the one the speaker was trained with)"
    )
    parser.add_argument(
        "--features", default=None, help="view-feature store (default: the one the speaker was trained with)"
    )
    add_settings_arguments(parser, AugmentationSettings)
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    settings = settings_from_arguments(AugmentationSettings, args)
    entries = augment(args.speaker, args.out, args.count, settings, args.data_dir, args.features)
    instructions = sum(len(entry["instructions"]) for entry in entries)
    print(f"wrote {len(entries)} paths with {instructions} instructions to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
