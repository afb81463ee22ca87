"""View-feature stores: one interface, several file formats."""

from __future__ import annotations

import os
from pathlib import Path

from connectivity.errors import DataNotFoundError
from envs.features.base import (
    VIEWS_PER_VIEWPOINT,
    FeatureFormatError,
    FeatureStore,
    MissingViewpointError,
)
from envs.features.memory import InMemoryFeatureStore
from envs.features.tsv import TsvFeatureStore, encode_tsv_line, write_tsv_features
from envs.features.zeros import NoVisualFeatures

NO_FEATURES = "none"


def open_feature_store(path: str | os.PathLike[str] | None, dim: int = 512) -> FeatureStore:
    """Open a feature store by path, detecting its format from the file; "none" or None gives zeros of `dim`."""
    if path is None or str(path) == NO_FEATURES:
        return NoVisualFeatures(dim)
    path = Path(path)
    if path.suffix == ".tsv" or path.is_file():
        return TsvFeatureStore(path)
    raise DataNotFoundError(f"feature store {path} not found; pass a .tsv file or 'none'")


__all__ = [
    "NO_FEATURES",
    "VIEWS_PER_VIEWPOINT",
    "FeatureFormatError",
    "FeatureStore",
    "InMemoryFeatureStore",
    "MissingViewpointError",
    "NoVisualFeatures",
    "TsvFeatureStore",
    "encode_tsv_line",
    "open_feature_store",
    "write_tsv_features",
]
