"""Run records: the files every training run writes into its output folder besides checkpoints."""

from __future__ import annotations

import logging
import platform
import random
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from envs.io import write_json_atomic
from envs.world import NavigationWorld

logger = logging.getLogger(__name__)

RECORDED_PACKAGES = (
    "clipnav",
    "torch",
    "numpy",
    "scipy",
    "gymnasium",
    "open_clip_torch",
    "h5py",
    "tensorboard",
)


def library_versions() -> dict[str, str | None]:
    """Return the versions of Python, the platform, CUDA and the main libraries."""
    versions: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def json_ready(value: Any) -> Any:
    """Return `value` with paths and other non-JSON leaves turned into strings."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def choose_device(name: str) -> torch.device:
    """Return the device named `name`; "auto" means CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return device


def write_run_record(
    output_dir: Path, settings: dict[str, Any], seed: int, feature_metadata: dict[str, Any]
) -> None:
    """Write settings.json, versions.json and features.json into the run's folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / "settings.json", settings | {"seed": seed}, indent=2)
    write_json_atomic(output_dir / "versions.json", library_versions(), indent=2)
    write_json_atomic(output_dir / "features.json", json_ready(feature_metadata), indent=2)
    logger.info("run settings, library versions and feature metadata written to %s", output_dir)


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's global generators (environments seed their own)."""
    random.seed(seed)
    torch.manual_seed(seed)


def feature_signature(world: NavigationWorld) -> dict[str, Any]:
    """Return the feature facts a checkpoint records and later checks: dimension, encoder, weights."""
    metadata = world.features.metadata
    return {
        "dim": world.features.dim,
        "encoder": metadata.get("encoder"),
        "pretrained": metadata.get("pretrained"),
        "format": metadata.get("format"),
    }
