"""A feature store without visual features: every view of every viewpoint is zeros."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from envs.features.base import MISSING_ZEROS, VIEWS_PER_VIEWPOINT, FeatureStore


class NoVisualFeatures(FeatureStore):
    """Zeros of a chosen dimension for any viewpoint, so every path runs without features.

    Agents then see only the angle features of their candidates. Every viewpoint counts
    as present, so the `missing` policy of other stores does not apply.
    """

    missing = MISSING_ZEROS

    def __init__(self, dim: int = 512):
        if dim < 1:
            raise ValueError(f"feature dimension must be at least 1, got {dim}")
        self.dim = dim
        self.source = "no visual features"
        self.metadata = {"format": "none", "encoder": "none (zeros)", "dim": dim, "dtype": "float32"}

    def lookup(self, scan: str, viewpoint: str) -> int:
        return 0

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        return np.zeros((len(rows), VIEWS_PER_VIEWPOINT, self.dim), dtype=np.float32)

    def keys(self) -> Iterable[tuple[str, str]]:
        return ()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2

    def describe(self) -> str:
        return f"NoVisualFeatures: zeros of dim {self.dim}"
