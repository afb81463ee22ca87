"""The interface of every view-feature store: 36 feature vectors per viewpoint."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from connectivity.errors import ClipnavError

VIEWS_PER_VIEWPOINT = 36


class FeatureFormatError(ClipnavError, ValueError):
    """A feature file is malformed: wrong dimension, view count, encoding or layout."""


class MissingViewpointError(ClipnavError, LookupError):
    """A feature store contains no features for a (scan, viewpoint)."""


class FeatureStore(ABC):
    """View features of viewpoints: `get(scan, viewpoint)` returns float32 [36, dim].

    Rows 0..35 follow the view index: heading step + 12 * elevation row, row 0 looking
    30 degrees down. Stores also give each viewpoint a row number, so that environments
    look the number up once and then read many viewpoints with one `read_rows` call.
    """

    dim: int
    metadata: dict[str, Any]

    @abstractmethod
    def lookup(self, scan: str, viewpoint: str) -> int:
        """Return the row number of (scan, viewpoint); raise `MissingViewpointError` if absent."""

    @abstractmethod
    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Return the features of the given row numbers: float32 [len(rows), 36, dim]."""

    @abstractmethod
    def keys(self) -> Iterable[tuple[str, str]]:
        """Return the (scan, viewpoint) pairs that the store contains."""

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        try:
            self.lookup(*key)
        except MissingViewpointError:
            return False
        return True

    def get(self, scan: str, viewpoint: str) -> np.ndarray:
        """Return the 36 view features of a viewpoint: float32 [36, dim]."""
        return self.read_rows(np.array([self.lookup(scan, viewpoint)]))[0]

    def lookup_many(self, keys: Sequence[tuple[str, str]]) -> np.ndarray:
        """Return the row numbers of several (scan, viewpoint) pairs as an int64 array."""
        return np.array([self.lookup(scan, viewpoint) for scan, viewpoint in keys], dtype=np.int64)

    def describe(self) -> str:
        """Return a one-line summary for logs."""
        encoder = self.metadata.get("encoder", "unknown encoder")
        return f"{type(self).__name__}: {len(self)} viewpoints, dim {self.dim}, {encoder}"
