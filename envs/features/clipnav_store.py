"""clipnav's own feature format: a memory-mapped array, opened in milliseconds and shared.

A store is a folder `<name>.clipnav/` holding three files:

- `features.npy`: a NumPy .npy array [viewpoints, 36, D], float16 or float32, C order,
  rows in view-index order (heading step + 12 * elevation row, row 0 looking 30 degrees
  down);
- `keys.json`: a JSON list of [scan, viewpoint] pairs, one per row, in row order;
- `metadata.json`: a JSON object with at least `format` ("clipnav"), `format_version`,
  `count`, `dim` and `dtype`, and usually the encoder, its weights and the camera (see
  `feature_metadata`).

Opening reads the two JSON files and the .npy header and maps the array without reading
it, so worker processes share one copy of the features through the page cache. A folder
`<name>.clipnav.partial/`, or any folder that still contains `progress.npy`, is a store
being written by `ClipnavStoreWriter` and is not opened.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from connectivity.errors import DataNotFoundError
from envs.features.base import (
    MISSING_RAISE,
    VIEWS_PER_VIEWPOINT,
    FeatureFormatError,
    FeatureStore,
)

logger = logging.getLogger(__name__)

FORMAT_NAME = "clipnav"
FORMAT_VERSION = 1
STORE_SUFFIX = ".clipnav"
PARTIAL_SUFFIX = ".partial"
FEATURES_FILE = "features.npy"
KEYS_FILE = "keys.json"
METADATA_FILE = "metadata.json"
PROGRESS_FILE = "progress.npy"
STORE_DTYPES = ("float16", "float32")
REQUIRED_FIELDS = ("format", "format_version", "count", "dim", "dtype")
VIEW_ORDER = (
    "view index = heading step + 12 * elevation row; 12 headings 30 degrees apart starting at "
    "heading 0, rows at elevation -30, 0 and +30 degrees"
)


def clipnav_version() -> str:
    """Return the installed clipnav version, or "unknown" when the package is not installed."""
    try:
        return importlib.metadata.version("clipnav")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 of a file as hex, reading it in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def utc_now() -> str:
    """Return the current time as ISO 8601 in UTC, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def feature_metadata(
    encoder: str,
    pretrained: str,
    checkpoint: str | os.PathLike[str] | None = None,
    image_w: int = 640,
    image_h: int = 480,
    vfov: float = 60.0,
    normalization: str = "none",
    source: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the metadata record of extracted features.

    `encoder` names the image encoder (such as "ViT-B/32"), `pretrained` its weights
    tag (such as "openai"), and `checkpoint` a local weights file whose SHA-256 is
    recorded. `vfov` is in degrees; `normalization` names the normalization applied
    to each feature vector ("none" or "l2", for example). `extra` fields are kept as given.
    """
    metadata: dict[str, Any] = {
        "encoder": encoder,
        "pretrained": pretrained,
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint is not None else None,
        "image_w": int(image_w),
        "image_h": int(image_h),
        "vfov": float(vfov),
        "view_order": VIEW_ORDER,
        "normalization": normalization,
        "created": utc_now(),
        "clipnav_version": clipnav_version(),
    }
    if source is not None:
        metadata["source"] = source
    return metadata | extra


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Return the folder in which a store is written before it is renamed to `path`."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def is_clipnav_folder(path: str | os.PathLike[str]) -> bool:
    """Return whether `path` is a folder that looks like a clipnav store, complete or not."""
    path = Path(path)
    if not path.is_dir():
        return False
    if path.name.endswith((STORE_SUFFIX, STORE_SUFFIX + PARTIAL_SUFFIX)):
        return True
    return any((path / name).exists() for name in (METADATA_FILE, FEATURES_FILE, KEYS_FILE))


def read_metadata(folder: Path) -> dict[str, Any]:
    """Read and check `metadata.json` of a store folder, complete or partial."""
    path = folder / METADATA_FILE
    if not path.is_file():
        raise FeatureFormatError(
            f"{folder}: {METADATA_FILE} is missing, so the store is incomplete or not a clipnav "
            "store; rebuild it with convert_features or rerun the extraction"
        )
    try:
        metadata = json.loads(path.read_text())
    except ValueError as error:
        raise FeatureFormatError(f"{path}: invalid JSON ({error}); rebuild the store") from None
    if not isinstance(metadata, dict):
        raise FeatureFormatError(f"{path}: expected a JSON object, got {type(metadata).__name__}")
    absent = [name for name in REQUIRED_FIELDS if name not in metadata]
    if absent:
        raise FeatureFormatError(
            f"{path}: missing field {', '.join(absent)}; a clipnav store records "
            f"{', '.join(REQUIRED_FIELDS)}; rebuild the store"
        )
    if metadata["format"] != FORMAT_NAME:
        raise FeatureFormatError(f"{path}: format is {metadata['format']!r}, expected {FORMAT_NAME!r}")
    if metadata["format_version"] != FORMAT_VERSION:
        raise FeatureFormatError(
            f"{path}: format_version {metadata['format_version']!r} is not supported, expected "
            f"{FORMAT_VERSION}; convert the store with the clipnav version that wrote it"
        )
    if metadata["dtype"] not in STORE_DTYPES:
        raise FeatureFormatError(
            f"{path}: dtype {metadata['dtype']!r} is not supported; expected one of {', '.join(STORE_DTYPES)}"
        )
    return metadata


def read_keys(folder: Path) -> list[tuple[str, str]]:
    """Read and check `keys.json`: distinct [scan, viewpoint] pairs of non-empty strings."""
    path = folder / KEYS_FILE
    if not path.is_file():
        raise FeatureFormatError(f"{folder}: {KEYS_FILE} is missing; rebuild the store")
    try:
        raw = json.loads(path.read_text())
    except ValueError as error:
        raise FeatureFormatError(f"{path}: invalid JSON ({error}); rebuild the store") from None
    if not isinstance(raw, list):
        raise FeatureFormatError(f"{path}: expected a JSON list of [scan, viewpoint] pairs")
    keys: list[tuple[str, str]] = []
    for position, pair in enumerate(raw):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(part, str) and part for part in pair)
        ):
            raise FeatureFormatError(
                f"{path}: entry {position} is {pair!r}; expected a [scan, viewpoint] pair of strings"
            )
        keys.append((pair[0], pair[1]))
    check_unique_keys(keys, str(path))
    return keys


def check_unique_keys(keys: Sequence[tuple[str, str]], where: str) -> None:
    """Raise `FeatureFormatError` naming the first (scan, viewpoint) that appears twice."""
    seen: set[tuple[str, str]] = set()
    for position, key in enumerate(keys):
        if key in seen:
            raise FeatureFormatError(
                f"{where}: scan {key[0]!r}, viewpoint {key[1]!r} appears twice (again at "
                f"position {position}); keep one entry per viewpoint"
            )
        seen.add(key)


def map_features(path: Path, mode: str, count: int, dim: int, dtype: str) -> np.memmap:
    """Map `features.npy` after checking its header and size against the expected array.

    Raises `FeatureFormatError` if the file is not a .npy array of shape [count, 36, dim]
    and dtype `dtype` in C order, or if its size differs from what the header promises.
    """
    if not path.is_file():
        raise FeatureFormatError(f"{path.parent}: {FEATURES_FILE} is missing; rebuild the store")
    with path.open("rb") as file:
        try:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran_order, stored_dtype = np.lib.format.read_array_header_1_0(file)
            else:
                shape, fortran_order, stored_dtype = np.lib.format.read_array_header_2_0(file)
        except ValueError as error:
            raise FeatureFormatError(f"{path}: not a valid .npy file ({error}); rebuild the store") from None
        offset = file.tell()

    expected_shape = (count, VIEWS_PER_VIEWPOINT, dim)
    if len(shape) == 3 and shape[0] == count and shape[2] == dim and shape[1] != VIEWS_PER_VIEWPOINT:
        raise FeatureFormatError(
            f"{path}: {shape[1]} views per viewpoint, expected 36 in view-index order; re-extract the features"
        )
    if tuple(shape) != expected_shape:
        raise FeatureFormatError(
            f"{path}: array shape {list(shape)} does not match {KEYS_FILE} and {METADATA_FILE}, "
            f"which give {list(expected_shape)}; rebuild the store"
        )
    if stored_dtype != np.dtype(dtype):
        raise FeatureFormatError(
            f"{path}: array dtype {stored_dtype}, but {METADATA_FILE} records {dtype}; rebuild the store"
        )
    if fortran_order:
        raise FeatureFormatError(f"{path}: array is in Fortran order, expected C order; rebuild the store")
    expected_size = offset + count * VIEWS_PER_VIEWPOINT * dim * np.dtype(dtype).itemsize
    actual_size = path.stat().st_size
    if actual_size != expected_size:
        raise FeatureFormatError(
            f"{path}: {actual_size} bytes, expected {expected_size} for {count} viewpoints x 36 views "
            f"x {dim} {dtype}; the file is truncated or corrupt, rebuild the store"
        )
    return np.memmap(path, dtype=dtype, mode=mode, shape=expected_shape, offset=offset)


class ClipnavFeatureStore(FeatureStore):
    """A clipnav store folder, memory-mapped: opening reads no features and costs little memory.

    `read_rows` gathers the requested rows from the mapped array and converts only those
    to float32. `dim`, if given, must equal the store's dimension. `missing="zeros"`
    returns zeros for absent viewpoints (see `FeatureStore`).
    """

    def __init__(self, path: str | os.PathLike[str], dim: int | None = None, missing: str = MISSING_RAISE):
        path = Path(path)
        if path.name == METADATA_FILE and path.is_file():
            path = path.parent
        self.path = path
        self.source = str(path)
        if not path.is_dir():
            raise DataNotFoundError(f"feature store {path} not found")
        if path.name.endswith(PARTIAL_SUFFIX) or (path / PROGRESS_FILE).exists():
            raise FeatureFormatError(
                f"{path}: incomplete store, still being written ({PROGRESS_FILE} present); resume "
                "its writer and call finish(), or delete the folder and write the store again"
            )

        metadata = read_metadata(path)
        keys = read_keys(path)
        if metadata["count"] != len(keys):
            raise FeatureFormatError(
                f"{path}: {METADATA_FILE} gives count {metadata['count']}, but {KEYS_FILE} contains "
                f"{len(keys)} keys; rebuild the store"
            )
        self.dim = int(metadata["dim"])
        if dim is not None and dim != self.dim:
            raise FeatureFormatError(f"{path}: expected feature dimension {dim}, got {self.dim}")
        self.dtype = np.dtype(metadata["dtype"])
        mapped = map_features(path / FEATURES_FILE, "r", len(keys), self.dim, metadata["dtype"])

        # A plain ndarray view of the mapping, so that fancy indexing returns plain arrays.
        self._array = mapped.view(np.ndarray)  # [viewpoints, 36, dim], stored dtype
        self._keys = keys
        self._rows = {key: row for row, key in enumerate(keys)}
        self.metadata = metadata | {"path": str(path)}
        self._init_missing(missing, len(keys))
        logger.debug("mapped %d viewpoints of dim %d (%s) from %s", len(keys), self.dim, self.dtype, path)

    def lookup(self, scan: str, viewpoint: str) -> int:
        row = self._rows.get((scan, viewpoint))
        if row is None:
            return self._missing_row(scan, viewpoint)
        return row

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        if self._filled:
            return self._read_rows_filled(rows, self._gather)
        return self._gather(rows)

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        return self._array[rows].astype(np.float32, copy=False)  # [len(rows), 36, dim]

    def read_stored(self, start: int, stop: int) -> np.ndarray:
        """Return rows start..stop-1 in the stored dtype, for copying without conversion."""
        return np.array(self._array[start:stop])

    def keys(self) -> Iterable[tuple[str, str]]:
        return self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and key in self._rows
