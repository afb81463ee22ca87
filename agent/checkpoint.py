"""Checkpoints written atomically and read with `weights_only=True`, and random-state capture.

A checkpoint is a dict of tensors and plain Python values only, so `torch.load(...,
weights_only=True)` reads it without running arbitrary pickled code.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from connectivity.errors import ClipnavError, DataNotFoundError
from envs.io import atomic_write

logger = logging.getLogger(__name__)


class CheckpointError(ClipnavError, ValueError):
    """A checkpoint file is unreadable or does not belong to this kind of run."""


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write `state` with torch.save to a temporary file beside `path`, then rename it over `path`."""
    with atomic_write(path, "wb") as out:
        torch.save(state, out)
    logger.debug("wrote checkpoint %s", path)


def load_checkpoint(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; check its `kind` when given."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a clipnav checkpoint (expected a dict)")
    if kind is not None and state.get("kind") != kind:
        raise CheckpointError(f"{path} is a {state.get('kind')!r} checkpoint, expected {kind!r}")
    return state


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def capture_random_state() -> dict[str, Any]:
    """Return the states of Python's and torch's global random generators.

    clipnav draws NumPy randomness from explicit generators only (environments carry
    their own), so NumPy's global generator is not captured.
    """
    state: dict[str, Any] = {"python": list(random.getstate()), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any]) -> None:
    """Restore the generators captured by `capture_random_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, _tupled(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """Return a NumPy generator's state as plain values."""
    return dict(generator.bit_generator.state)


def set_generator_state(generator: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore a state returned by `generator_state`."""
    generator.bit_generator.state = state


def load_model_state(model: torch.nn.Module, state: dict[str, Any], source: str | os.PathLike[str]) -> None:
    """Load a checkpoint's network weights, explaining a mismatch of network sizes."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1:2] or [str(error)]
        raise CheckpointError(
            f"{source}: its network does not fit the one built from the settings ({first[0].strip()}); "
            f"use the checkpoint's network settings: {state.get('model_settings')}"
        ) from None
