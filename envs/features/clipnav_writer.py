"""Writing clipnav stores batch by batch, resuming after a crash, and merging shards.

`ClipnavStoreWriter` writes into `<name>.clipnav.partial/`: the layout of a finished
store (see `envs.features.clipnav_store`) plus `progress.npy`, one flag per row that
is true once the row is written. After each batch the rows are flushed to disk first
and the flags are replaced atomically after that, so a killed process leaves flags only
for rows that are on disk. `finish()` checks that every row is written and renames the
folder to `<name>.clipnav`, so the final path never contains a partial store.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from tqdm import tqdm

from envs.features.base import (
    VIEWS_PER_VIEWPOINT,
    FeatureFormatError,
    FeatureStoreExistsError,
    MissingViewpointError,
    cast_features,
)
from envs.features.clipnav_store import (
    FEATURES_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    KEYS_FILE,
    METADATA_FILE,
    PROGRESS_FILE,
    STORE_DTYPES,
    VIEW_ORDER,
    ClipnavFeatureStore,
    check_unique_keys,
    clipnav_version,
    map_features,
    partial_path,
    read_keys,
    read_metadata,
    utc_now,
)
from envs.io import atomic_write, write_json_atomic

logger = logging.getLogger(__name__)

# Metadata fields that differ between the shards of one extraction.
SHARD_FIELDS = ("shard", "count", "created", "completed")
MERGE_CHUNK_ROWS = 1024


class ClipnavStoreWriter:
    """A clipnav store being written: create it with its planned keys, write batches, then finish.

    Use `create` for a new store, `resume` to continue the partial store of a killed
    run, or `open_store_writer` to do whichever applies.
    """

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False):
        """Open the partial folder of the store `path`; use `create` or `resume` instead."""
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.overwrite = overwrite
        self.metadata = read_metadata(self.partial)
        self.keys = read_keys(self.partial)
        self.dim = int(self.metadata["dim"])
        self.dtype = np.dtype(self.metadata["dtype"])
        mapped = map_features(self.partial / FEATURES_FILE, "r+", len(self.keys), self.dim, str(self.dtype))
        self._mapped: np.memmap | None = mapped
        self._rows = {key: row for row, key in enumerate(self.keys)}
        self._done = self._read_progress()

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        keys: Sequence[tuple[str, str]],
        dim: int,
        dtype: str = "float16",
        metadata: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> ClipnavStoreWriter:
        """Create the partial store of `path` for `keys` (row order), `dim` and `dtype`.

        `metadata` is kept as given, completed with the format fields and, when absent,
        the view order, creation time and clipnav version. Raises
        `FeatureStoreExistsError` if `path` exists (unless `overwrite`) or if a partial
        store from an earlier run exists.
        """
        path = Path(path)
        partial = partial_path(path)
        if path.exists() and not overwrite:
            raise FeatureStoreExistsError(
                f"{path} already exists; delete it, choose another output, or overwrite it (--overwrite where offered)"
            )
        if partial.exists():
            raise FeatureStoreExistsError(
                f"{partial} contains a partial store from an earlier run; resume it with "
                "ClipnavStoreWriter.resume or open_store_writer, or delete it to start again"
            )
        keys = _checked_keys(keys, str(path))
        if dim < 1:
            raise ValueError(f"feature dimension must be at least 1, got {dim}")
        if dtype not in STORE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(STORE_DTYPES)}, got {dtype!r}")

        format_fields = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "count": len(keys),
            "dim": int(dim),
            "dtype": dtype,
            "views": VIEWS_PER_VIEWPOINT,
        }
        defaults = {"view_order": VIEW_ORDER, "created": utc_now(), "clipnav_version": clipnav_version()}
        # The format fields come first for readers of the file and always win over `metadata`.
        record = format_fields | defaults | (metadata or {}) | format_fields
        record.pop("path", None)
        record.pop("completed", None)

        # Build the folder under a temporary name, so a crash here leaves no partial store.
        partial.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=partial.parent, prefix=f".{partial.name}."))
        try:
            write_json_atomic(staging / KEYS_FILE, [list(key) for key in keys])
            write_json_atomic(staging / METADATA_FILE, record, indent=2)
            shape = (len(keys), VIEWS_PER_VIEWPOINT, int(dim))
            features = np.lib.format.open_memmap(staging / FEATURES_FILE, mode="w+", dtype=dtype, shape=shape)
            del features
            _save_progress(staging, np.zeros(len(keys), dtype=bool))
            os.chmod(staging, 0o777 & ~_umask())
            os.rename(staging, partial)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("created %s for %d viewpoints of dim %d (%s)", partial, len(keys), dim, dtype)
        return cls(path, overwrite)

    @classmethod
    def resume(cls, path: str | os.PathLike[str], overwrite: bool = False) -> ClipnavStoreWriter:
        """Reopen the partial store of `path` left by an earlier run."""
        partial = partial_path(path)
        if not partial.is_dir():
            raise FeatureFormatError(f"{partial}: no partial store to resume; create one instead")
        writer = cls(path, overwrite)
        logger.info(
            "resuming %s: %d of %d viewpoints already written", partial, writer.done_count, len(writer.keys)
        )
        return writer

    def _read_progress(self) -> np.ndarray:
        path = self.partial / PROGRESS_FILE
        if not path.is_file():
            # finish() removes the flags only after recording completion in the metadata.
            if "completed" in self.metadata:
                return np.ones(len(self.keys), dtype=bool)
            raise FeatureFormatError(
                f"{self.partial}: {PROGRESS_FILE} is missing, so which rows are written is unknown; "
                "delete the folder and write the store again"
            )
        try:
            done = np.load(path)
        except ValueError as error:
            raise FeatureFormatError(
                f"{path}: unreadable ({error}); delete the folder and start again"
            ) from None
        if done.dtype != np.bool_ or done.shape != (len(self.keys),):
            raise FeatureFormatError(
                f"{path}: expected {len(self.keys)} boolean flags, got {done.dtype} {list(done.shape)}; "
                "delete the folder and start again"
            )
        return done.copy()

    # --- writing ------------------------------------------------------------------------

    def write(
        self, keys_or_rows: Sequence[tuple[str, str]] | Sequence[int] | np.ndarray, features: np.ndarray
    ) -> None:
        """Write a batch: features [n, 36, dim] of n planned keys or row numbers, then record them as done.

        Rows already written are overwritten. Values are cast to the store's dtype;
        float16 overflow raises `FeatureFormatError`.
        """
        array = self._array()
        rows = self._resolve_rows(keys_or_rows)
        features = np.asarray(features)
        expected = (len(rows), VIEWS_PER_VIEWPOINT, self.dim)
        if features.shape != expected:
            raise FeatureFormatError(
                f"{self.partial}: batch of {len(rows)} viewpoints needs features {list(expected)}, "
                f"got {list(features.shape)}"
            )
        data = cast_features(features, self.dtype, f"{self.partial}, batch of {len(rows)} viewpoints")

        array[rows] = data
        # The rows reach the disk before the flags that mark them as written.
        array.flush()
        self._done[rows] = True
        _save_progress(self.partial, self._done)

    def _array(self) -> np.memmap:
        if self._mapped is None:
            raise RuntimeError(f"writer of {self.path} is closed; resume it to write more")
        return self._mapped

    def _resolve_rows(
        self, keys_or_rows: Sequence[tuple[str, str]] | Sequence[int] | np.ndarray
    ) -> np.ndarray:
        items = list(keys_or_rows) if not isinstance(keys_or_rows, np.ndarray) else keys_or_rows
        if len(items) and isinstance(items[0], (tuple, list)):
            rows = np.empty(len(items), dtype=np.int64)
            for position, (scan, viewpoint) in enumerate(items):
                row = self._rows.get((scan, viewpoint))
                if row is None:
                    raise MissingViewpointError(
                        f"{self.partial}: scan {scan!r}, viewpoint {viewpoint!r} is not among the "
                        f"{len(self.keys)} viewpoints this store was created for"
                    )
                rows[position] = row
            return rows
        rows = np.asarray(items, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.keys)):
            raise IndexError(f"{self.partial}: row numbers must lie in 0..{len(self.keys) - 1}")
        return rows

    # --- progress -----------------------------------------------------------------------

    @property
    def done_count(self) -> int:
        """Rows written so far."""
        return int(self._done.sum())

    @property
    def is_complete(self) -> bool:
        """Whether every planned row is written."""
        return bool(self._done.all())

    def done_keys(self) -> list[tuple[str, str]]:
        """Return the keys whose rows are written, in row order."""
        return [self.keys[row] for row in np.flatnonzero(self._done)]

    def pending_keys(self) -> list[tuple[str, str]]:
        """Return the keys still to write, in row order."""
        return [self.keys[row] for row in np.flatnonzero(~self._done)]

    def is_written(self, rows: np.ndarray) -> np.ndarray:
        """Return one flag per row number: whether that row is written."""
        return self._done[rows]

    def pending_rows(self) -> np.ndarray:
        """Return the row numbers still to write, ascending."""
        return np.flatnonzero(~self._done)

    # --- finishing ----------------------------------------------------------------------

    def finish(self) -> Path:
        """Check that every row is written, then rename the partial folder to the store's path.

        Raises `FeatureFormatError` naming the first pending viewpoints if any are left.
        """
        pending = self.pending_keys()
        if pending:
            examples = ", ".join(f"{scan}/{viewpoint}" for scan, viewpoint in pending[:3])
            raise FeatureFormatError(
                f"{self.partial}: {len(pending)} of {len(self.keys)} viewpoints are not written yet "
                f"(first: {examples}); write them, then call finish() again"
            )
        if self.path.exists() and not self.overwrite:
            raise FeatureStoreExistsError(
                f"{self.path} already exists; delete it, or overwrite it (--overwrite where offered)"
            )
        self.close()

        # Completion is recorded before the flags go, so a crash in between stays resumable.
        self.metadata["completed"] = utc_now()
        write_json_atomic(self.partial / METADATA_FILE, self.metadata, indent=2)
        (self.partial / PROGRESS_FILE).unlink(missing_ok=True)
        _install(self.partial, self.path)
        logger.info(
            "finished %s: %d viewpoints of dim %d (%s)", self.path, len(self.keys), self.dim, self.dtype
        )
        return self.path

    def close(self) -> None:
        """Flush and unmap the array; the partial store stays on disk for `resume`."""
        if self._mapped is not None:
            self._mapped.flush()
            self._mapped = None

    def __enter__(self) -> ClipnavStoreWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_store_writer(
    path: str | os.PathLike[str],
    keys: Sequence[tuple[str, str]],
    dim: int,
    dtype: str = "float16",
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ClipnavStoreWriter:
    """Resume the partial store of `path` if there is one, else create it.

    A partial store is resumed only if it plans the same keys in the same order, `dim`
    and `dtype`; otherwise `FeatureFormatError` names what differs. Its metadata is kept.
    """
    if not partial_path(path).exists():
        return ClipnavStoreWriter.create(path, keys, dim, dtype, metadata, overwrite)
    writer = ClipnavStoreWriter.resume(path, overwrite)
    differences = []
    if writer.keys != [(str(scan), str(viewpoint)) for scan, viewpoint in keys]:
        differences.append(f"keys ({len(writer.keys)} planned there, {len(keys)} now)")
    if writer.dim != dim:
        differences.append(f"dim ({writer.dim} there, {dim} now)")
    if str(writer.dtype) != dtype:
        differences.append(f"dtype ({writer.dtype} there, {dtype} now)")
    if differences:
        writer.close()
        raise FeatureFormatError(
            f"{writer.partial}: the partial store differs from this run in {', '.join(differences)}; "
            "rerun with the earlier settings or delete the folder to start again"
        )
    return writer


def shard_keys(keys: Sequence[tuple[str, str]], index: int, count: int) -> list[tuple[str, str]]:
    """Return shard `index` of `count`: every count-th key, starting at position `index`."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must satisfy 0 <= index < count, got index {index}, count {count}")
    return list(keys[index::count])


def parse_shard(text: str) -> tuple[int, int]:
    """Parse a shard written "i/n" (0-based index i of n shards) into (i, n)."""
    index, slash, count = text.partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        shard = (-1, 0)
    if not slash or shard[1] < 1 or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be written i/n with 0 <= i < n, such as 0/4, got {text!r}")
    return shard


def merge_stores(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Combine clipnav stores, such as the shards of one extraction, into one store.

    All inputs must have the same dim, dtype and metadata apart from the shard fields
    (`shard`, `count`, `created`, `completed`), and no (scan, viewpoint) may appear in
    two inputs. When the inputs are shards 0/n..n-1/n of one key list, the output has
    that list's order again; otherwise the inputs' rows follow each other. The output is
    written through `ClipnavStoreWriter`, so it appears complete or not at all.
    """
    if not inputs:
        raise ValueError("merge_stores needs at least one input store")
    stores = [ClipnavFeatureStore(path) for path in inputs]
    _check_mergeable(stores)
    targets = _merge_rows(stores)
    keys: list[tuple[str, str]] = [("", "")] * sum(len(store) for store in stores)
    owner: dict[tuple[str, str], str] = {}
    for store, rows in zip(stores, targets):
        for key, row in zip(store.keys(), rows):
            if key in owner:
                raise FeatureFormatError(
                    f"scan {key[0]!r}, viewpoint {key[1]!r} is in both {owner[key]} and {store.path}; "
                    "shards must not overlap"
                )
            owner[key] = str(store.path)
            keys[row] = key

    first = stores[0]
    metadata = {name: value for name, value in first.metadata.items() if name not in (*SHARD_FIELDS, "path")}
    metadata["merged_from"] = [str(store.path) for store in stores]
    writer = open_store_writer(output, keys, first.dim, str(first.dtype), metadata, overwrite)
    with writer:
        for store, rows in zip(stores, targets):
            chunks = range(0, len(store), MERGE_CHUNK_ROWS)
            for start in tqdm(chunks, desc=f"merging {store.path.name}", unit="chunk", disable=not progress):
                stop = min(start + MERGE_CHUNK_ROWS, len(store))
                if writer.is_written(rows[start:stop]).all():
                    continue
                writer.write(rows[start:stop], store.read_stored(start, stop))
        return writer.finish()


def _check_mergeable(stores: Sequence[ClipnavFeatureStore]) -> None:
    first = stores[0]
    for store in stores[1:]:
        for field in ("dim", "dtype"):
            if store.metadata[field] != first.metadata[field]:
                raise FeatureFormatError(
                    f"cannot merge {store.path} into {first.path}: {field} {store.metadata[field]!r} "
                    f"differs from {first.metadata[field]!r}"
                )
        names = (set(first.metadata) | set(store.metadata)) - {*SHARD_FIELDS, "path"}
        differing = sorted(name for name in names if first.metadata.get(name) != store.metadata.get(name))
        if differing:
            details = "; ".join(
                f"{name}: {first.metadata.get(name)!r} vs {store.metadata.get(name)!r}" for name in differing
            )
            raise FeatureFormatError(
                f"cannot merge {store.path} into {first.path}: metadata differs ({details}); "
                "merge only shards of one extraction"
            )


def _merge_rows(stores: Sequence[ClipnavFeatureStore]) -> list[np.ndarray]:
    """Return, for each store, the output row of each of its rows."""
    total = sum(len(store) for store in stores)
    try:
        shards = [parse_shard(str(store.metadata.get("shard"))) for store in stores]
    except ValueError:
        shards = []
    count = shards[0][1] if shards else 0
    # Shard i of n contains keys i, i + n, i + 2n, ... of the extraction's list.
    if (
        shards
        and sorted(index for index, _ in shards) == list(range(count))
        and all(
            shard_count == count and len(store) == len(range(index, total, count))
            for (index, shard_count), store in zip(shards, stores)
        )
    ):
        return [np.arange(index, total, count) for index, _ in shards]
    offsets = np.cumsum([0] + [len(store) for store in stores])
    return [np.arange(offsets[i], offsets[i + 1]) for i in range(len(stores))]


def _checked_keys(keys: Sequence[tuple[str, str]], where: str) -> list[tuple[str, str]]:
    checked: list[tuple[str, str]] = []
    for position, key in enumerate(keys):
        if len(key) != 2 or not all(isinstance(part, str) and part.strip() == part and part for part in key):
            raise FeatureFormatError(
                f"{where}: key {position} is {key!r}; expected a (scan, viewpoint) pair of non-empty strings"
            )
        if any(character in part for part in key for character in "\t\n\r"):
            raise FeatureFormatError(f"{where}: key {position} {key!r} contains a tab or line break")
        checked.append((key[0], key[1]))
    if not checked:
        raise FeatureFormatError(f"{where}: a store needs at least one (scan, viewpoint)")
    check_unique_keys(checked, where)
    return checked


def _save_progress(folder: Path, done: np.ndarray) -> None:
    with atomic_write(folder / PROGRESS_FILE, "wb") as out:
        np.save(out, done)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _install(partial: Path, path: Path) -> None:
    """Rename the finished folder `partial` to `path`, replacing a store already there."""
    if not path.exists():
        os.rename(partial, path)
        return
    # NOTE: a folder cannot replace a non-empty folder in one rename. Between the two
    # renames `path` is absent, and a crash there leaves the old store under `retired`.
    retired = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
    os.rename(path, retired / path.name)
    os.rename(partial, path)
    shutil.rmtree(retired, ignore_errors=True)
