"""The interface of every view-feature store: 36 feature vectors per viewpoint."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from connectivity.errors import ClipnavError

logger = logging.getLogger(__name__)

VIEWS_PER_VIEWPOINT = 36

MISSING_RAISE = "raise"
MISSING_ZEROS = "zeros"
MISSING_MODES = (MISSING_RAISE, MISSING_ZEROS)


class FeatureFormatError(ClipnavError, ValueError):
    """A feature file is malformed: wrong dimension, view count, encoding or layout."""


class MissingViewpointError(ClipnavError, LookupError):
    """A feature store contains no features for a (scan, viewpoint)."""


class FeatureStoreExistsError(ClipnavError, FileExistsError):
    """The output path of a feature store already exists and overwriting was not requested."""


class FeatureMismatchError(ClipnavError, ValueError):
    """A feature store differs from the features an agent was trained on."""


def check_missing_mode(missing: str) -> str:
    """Return `missing` if it is a known policy for absent viewpoints, else raise ValueError."""
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {', '.join(map(repr, MISSING_MODES))}, got {missing!r}")
    return missing


def cast_features(array: np.ndarray, dtype: str | np.dtype, where: str) -> np.ndarray:
    """Return `array` as `dtype`; raise `FeatureFormatError` if finite values overflow it.

    The largest finite float16 is 65504, and larger features would become infinite.
    """
    array = np.asarray(array)
    with np.errstate(over="ignore"):
        cast = array.astype(dtype, copy=False)
    if cast.dtype.itemsize < array.dtype.itemsize and not np.isfinite(cast).all():
        overflow = ~np.isfinite(cast) & np.isfinite(array)
        if overflow.any():
            raise FeatureFormatError(
                f"{where}: value {array[overflow].flat[0]:g} exceeds the largest {cast.dtype} "
                f"({np.finfo(cast.dtype).max:g}); store these features as float32"
            )
    return cast


class FeatureStore(ABC):
    """View features of viewpoints: `get(scan, viewpoint)` returns float32 [36, dim].

    Rows 0..35 follow the view index: heading step + 12 * elevation row, row 0 looking
    30 degrees down. Stores also give each viewpoint a row number, so that environments
    look the number up once and then read many viewpoints with one `read_rows` call.

    With `missing="zeros"`, `lookup` of an absent viewpoint returns a zero row (the row
    number one past the stored rows) instead of raising, and `read_rows` returns zeros
    for it. The first such viewpoint logs a warning, and `missing_count` and `describe()`
    report how many distinct viewpoints were filled.
    """

    dim: int
    metadata: dict[str, Any]
    source: str = "feature store"
    missing: str = MISSING_RAISE
    _zero_row: int = -1
    _filled: set[tuple[str, str]] | None = None

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

    @property
    def missing_count(self) -> int:
        """Number of distinct absent viewpoints for which `lookup` returned the zero row so far."""
        return len(self._filled) if self._filled is not None else 0

    def describe(self) -> str:
        """Return a one-line summary for logs."""
        encoder = self.metadata.get("encoder", "unknown encoder")
        summary = f"{type(self).__name__}: {len(self)} viewpoints, dim {self.dim}, {encoder}"
        if self.missing == MISSING_ZEROS:
            summary += f", {self.missing_count} missing viewpoints filled with zeros"
        return summary

    # --- zero fill, shared by the stores that hold rows ---------------------------------

    def _init_missing(self, missing: str, stored_rows: int) -> None:
        """Set the policy for absent viewpoints; the zero row follows the `stored_rows` rows."""
        self.missing = check_missing_mode(missing)
        self._zero_row = stored_rows
        self._filled = set() if missing == MISSING_ZEROS else None

    def _missing_row(self, scan: str, viewpoint: str) -> int:
        """Raise `MissingViewpointError` for an absent viewpoint, or count it and return the zero row."""
        if self._filled is None:
            raise MissingViewpointError(
                f"{self.source} has no features for scan {scan!r}, viewpoint {viewpoint!r}; "
                "extract features for it, use a store that covers this split, "
                "or read missing viewpoints as zeros (missing='zeros', EnvSettings.missing_features)"
            )
        key = (scan, viewpoint)
        if key not in self._filled:
            self._filled.add(key)
            count = len(self._filled)
            if count == 1:
                logger.warning(
                    "%s has no features for scan %r, viewpoint %r; returning zeros of dim %d for it "
                    "and for every further missing viewpoint, counted in describe()",
                    self.source,
                    scan,
                    viewpoint,
                    self.dim,
                )
            else:
                logger.debug("%s: %d missing viewpoints filled with zeros so far", self.source, count)
        return self._zero_row

    def _read_rows_filled(self, rows: np.ndarray, gather: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Gather `rows` with `gather`, giving zeros where a row is the zero row."""
        rows = np.asarray(rows)
        zero = rows == self._zero_row
        if not zero.any():
            return gather(rows)
        out = gather(np.where(zero, 0, rows))  # [len(rows), 36, dim]
        out[zero] = 0.0
        return out


def check_compatible(
    expected: Mapping[str, Any], store_metadata: Mapping[str, Any], force: bool = False
) -> list[str]:
    """Check that a store's features match what an agent expects; return the differences.

    Compares `dim`, `encoder` and `pretrained` where `expected` gives them. A field that
    the store's metadata lacks cannot be checked and only logs a warning. Differences
    raise `FeatureMismatchError` naming both values, unless `force`, which logs them as a
    warning instead.
    """
    differences: list[str] = []
    unchecked: list[str] = []
    for field, label in (("dim", "dimension"), ("encoder", "encoder"), ("pretrained", "pretrained tag")):
        if expected.get(field) is None:
            continue
        if store_metadata.get(field) is None:
            unchecked.append(field)
            continue
        want, have = expected[field], store_metadata[field]
        if field == "dim":
            want, have = int(want), int(have)
        if want != have:
            differences.append(f"{label}: expected {want!r}, got {have!r}")

    if unchecked:
        logger.warning(
            "feature store metadata has no %s; cannot check it against the agent's features",
            " or ".join(unchecked),
        )
    if not differences:
        return differences
    message = "feature store does not match the agent's features: " + "; ".join(differences)
    if force:
        logger.warning("%s; continuing because force is set", message)
        return differences
    raise FeatureMismatchError(
        f"{message}. Use features made by the same encoder and weights as the agent's training "
        "features, or pass --force-features (force=True) to use them anyway"
    )
