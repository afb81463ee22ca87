"""Helpers shared by the command-line programs: logging and the data-folder flag."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from connectivity import DATA_DIR_ENV, ClipnavError, default_data_dir


def setup_logging(verbose: bool = False) -> None:
    """Send log records of all clipnav packages to stderr, with a time stamp."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def add_common_arguments(parser: argparse.ArgumentParser, checkpoint_run: bool = False) -> None:
    """Add --data-dir and --verbose. With `checkpoint_run`, the help names the checkpoint's run as the default."""
    default = f"${DATA_DIR_ENV} if set, else ../shared/data beside the checkout; now {default_data_dir()}"
    if checkpoint_run:
        default = f"with --checkpoint, the run's data folder; otherwise {default}"
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"folder holding connectivity/ and R2R/ (default: {default})",
    )
    parser.add_argument("--verbose", action="store_true", help="log debug messages")


def positive_int(text: str) -> int:
    """Parse a command-line integer that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """Parse a command-line integer that must be at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 0, got {value}")
    return value


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run `main`, turning input, settings and file-system errors into one message and exit code 2.

    Set the environment variable CLIPNAV_DEBUG to see the stack trace instead.
    """
    try:
        return main(argv)
    except (ClipnavError, OSError, ValueError) as error:
        # Bad input, an invalid setting or an unusable path is the user's to fix: one
        # message, no stack trace, unless CLIPNAV_DEBUG is set.
        if os.environ.get("CLIPNAV_DEBUG"):
            raise
        print(f"\nerror: {error}", file=sys.stderr)
        return 2


def train_from_command_line(
    argv: Sequence[str] | None,
    description: str,
    settings_class: type,
    model_settings_class: type,
    trainer_class: Callable[..., Any],
) -> dict[str, dict[str, float]]:
    """Parse a trainer's settings from the command line, train (or `--resume`) and return its best results.

    The options are the fields of `settings_class` and `model_settings_class`. The run's
    log also goes to `<output_dir>/train.log`.
    """
    from agent.settings import add_settings_arguments, settings_from_arguments

    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_settings_arguments(parser, settings_class)
    add_settings_arguments(parser, model_settings_class)
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from latest.pt")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    settings = settings_from_arguments(settings_class, args)
    model_settings = settings_from_arguments(model_settings_class, args)
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(settings.output_dir) / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)

    trainer = trainer_class(settings, model_settings, resume=args.resume)
    return trainer.train()


def print_best(best: dict[str, dict[str, float]]) -> None:
    """Print a navigation run's best result per validation split: SPL, nDTW and SR."""
    for split, record in best.items():
        ndtw = f", nDTW {record['ndtw']:.4f}" if "ndtw" in record else ""
        print(
            f"best on {split}: SPL {record['spl']:.4f}{ndtw}, SR {record['success']:.4f} "
            f"at iteration {record['iteration']}"
        )
