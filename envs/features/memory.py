"""A feature store held in memory: one float32 array [viewpoints, 36, D] and an index."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from envs.features.base import VIEWS_PER_VIEWPOINT, FeatureFormatError, FeatureStore, MissingViewpointError


class InMemoryFeatureStore(FeatureStore):
    """Features of the viewpoints `keys`, row i of `features` belonging to keys[i]."""

    def __init__(
        self,
        keys: Sequence[tuple[str, str]],
        features: np.ndarray,
        metadata: dict[str, Any] | None = None,
        source: str = "memory",
    ):
        if features.ndim != 3 or features.shape[1] != VIEWS_PER_VIEWPOINT:
            raise FeatureFormatError(
                f"{source}: expected features [viewpoints, 36, D], got {list(features.shape)}"
            )
        if len(keys) != len(features):
            raise FeatureFormatError(f"{source}: {len(keys)} keys for {len(features)} feature rows")
        self.source = source
        self._features = np.ascontiguousarray(features, dtype=np.float32)
        self._rows = {(str(scan), str(viewpoint)): row for row, (scan, viewpoint) in enumerate(keys)}
        if len(self._rows) != len(keys):
            raise FeatureFormatError(f"{source}: a (scan, viewpoint) appears twice")
        self.dim = int(features.shape[2])
        self.metadata = {"format": "memory", "dim": self.dim} | (metadata or {})

    def lookup(self, scan: str, viewpoint: str) -> int:
        try:
            return self._rows[(scan, viewpoint)]
        except KeyError:
            raise MissingViewpointError(
                f"{self.source} has no features for scan {scan!r}, viewpoint {viewpoint!r}; "
                "extract features for it or use a store that covers this split"
            ) from None

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._features[rows]

    def keys(self) -> Iterable[tuple[str, str]]:
        return self._rows.keys()

    def __len__(self) -> int:
        return len(self._rows)
