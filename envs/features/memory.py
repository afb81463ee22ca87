"""A feature store held in memory: one float32 array [viewpoints, 36, D] and an index."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from envs.features.base import (
    MISSING_RAISE,
    VIEWS_PER_VIEWPOINT,
    FeatureFormatError,
    FeatureStore,
)


class InMemoryFeatureStore(FeatureStore):
    """Features of the viewpoints `keys`, row i of `features` belonging to keys[i].

    `missing="zeros"` returns zeros for absent viewpoints instead of raising
    `MissingViewpointError` (see `FeatureStore`).
    """

    def __init__(
        self,
        keys: Sequence[tuple[str, str]],
        features: np.ndarray,
        metadata: dict[str, Any] | None = None,
        source: str = "memory",
        missing: str = MISSING_RAISE,
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
        self._init_missing(missing, len(self._rows))

    def lookup(self, scan: str, viewpoint: str) -> int:
        row = self._rows.get((scan, viewpoint))
        if row is None:
            return self._missing_row(scan, viewpoint)
        return row

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        if self._filled:
            return self._read_rows_filled(rows, self._features.__getitem__)
        return self._features[rows]

    def keys(self) -> Iterable[tuple[str, str]]:
        return self._rows.keys()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and key in self._rows
