"""Converting view features between the TSV, HDF5 and clipnav formats, streaming.

Sources are read one viewpoint (TSV, HDF5) or one chunk of rows (clipnav) at a time,
so a conversion keeps about one batch of features in memory besides the keys. Every
output appears complete or not at all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from envs.features.base import FeatureFormatError, FeatureStoreExistsError, cast_features
from envs.features.clipnav_store import STORE_DTYPES, STORE_SUFFIX, ClipnavFeatureStore
from envs.features.clipnav_writer import ClipnavStoreWriter, open_store_writer
from envs.features.formats import (
    FORMAT_CLIPNAV,
    FORMAT_HDF5,
    FORMAT_TSV,
    FORMATS,
    NO_FEATURES,
    detect_format,
)
from envs.features.hdf5 import HDF5_DTYPES, open_hdf5, read_hdf5_layout, write_hdf5_features
from envs.features.tsv import iter_tsv_records, read_tsv_keys, write_tsv_features

logger = logging.getLogger(__name__)

Record = tuple[str, str, np.ndarray]  # scan, viewpoint, features [36, D] in the stored dtype

OUTPUT_SUFFIXES = {".tsv": FORMAT_TSV, ".h5": FORMAT_HDF5, ".hdf5": FORMAT_HDF5, STORE_SUFFIX: FORMAT_CLIPNAV}
TSV_CAMERA_FIELDS = ("image_w", "image_h", "vfov")
# Fields that describe one file rather than its features; the output records its own.
PER_FILE_FIELDS = ("format", "format_version", "path", "count", "dim", "dtype", "views", "completed")
WRITE_BATCH_ROWS = 256


class FeatureSource:
    """The viewpoints of a feature file, read one at a time: keys, dim, stored dtype, metadata."""

    format: str
    path: Path
    dim: int
    dtype: str
    metadata: dict[str, Any]

    def keys(self) -> list[tuple[str, str]]:
        """Return the (scan, viewpoint) pairs in the order `records` yields them."""
        raise NotImplementedError

    def records(self) -> Iterator[Record]:
        """Yield every viewpoint's features, one at a time."""
        raise NotImplementedError


class TsvSource(FeatureSource):
    """A TSV file: keys from a quick first pass, features decoded line by line."""

    format = FORMAT_TSV
    dtype = "float32"

    def __init__(self, path: Path, dim: int | None):
        self.path = path
        first = next(iter_tsv_records(path, dim), None)
        if first is None:
            raise FeatureFormatError(f"{path}: no feature lines")
        self.dim = first.features.shape[1]
        self.metadata = dict(zip(TSV_CAMERA_FIELDS, first.camera))
        self._keys: list[tuple[str, str]] | None = None

    def keys(self) -> list[tuple[str, str]]:
        if self._keys is None:
            self._keys = read_tsv_keys(self.path)
        return self._keys

    def records(self) -> Iterator[Record]:
        for record in iter_tsv_records(self.path, self.dim):
            yield record.scan, record.viewpoint, record.features


class Hdf5Source(FeatureSource):
    """An HDF5 file: datasets checked up front, then read one at a time."""

    format = FORMAT_HDF5

    def __init__(self, path: Path, dim: int | None):
        self.path = path
        with open_hdf5(path) as file:
            self.layout = read_hdf5_layout(file, path, dim)
        self.dim = self.layout.dim
        self.dtype = str(self.layout.dtype)
        self.metadata = dict(self.layout.metadata)

    def keys(self) -> list[tuple[str, str]]:
        return self.layout.keys

    def records(self) -> Iterator[Record]:
        with open_hdf5(self.path) as file:
            for name, (scan, viewpoint) in zip(self.layout.names, self.layout.keys):
                yield scan, viewpoint, file[name][:, : self.dim]


class ClipnavSource(FeatureSource):
    """A clipnav store, read from its memory map in chunks of rows."""

    format = FORMAT_CLIPNAV

    def __init__(self, path: Path, dim: int | None):
        self.store = ClipnavFeatureStore(path, dim)
        self.path = self.store.path
        self.dim = self.store.dim
        self.dtype = str(self.store.dtype)
        self.metadata = dict(self.store.metadata)

    def keys(self) -> list[tuple[str, str]]:
        return list(self.store.keys())

    def records(self) -> Iterator[Record]:
        keys = self.keys()
        for start in range(0, len(keys), WRITE_BATCH_ROWS):
            chunk = self.store.read_stored(start, start + WRITE_BATCH_ROWS)
            for offset, features in enumerate(chunk):
                scan, viewpoint = keys[start + offset]
                yield scan, viewpoint, features


def open_source(path: str | os.PathLike[str], dim: int | None = None) -> FeatureSource:
    """Open a feature file of any format for streaming; `dim` as in the store classes."""
    kind = detect_format(path)
    if kind == NO_FEATURES:
        raise FeatureFormatError("'none' contains no features to convert; pass a feature file")
    sources = {FORMAT_TSV: TsvSource, FORMAT_HDF5: Hdf5Source, FORMAT_CLIPNAV: ClipnavSource}
    return sources[kind](Path(path), dim)


def output_format(path: str | os.PathLike[str]) -> str:
    """Return the format that the name of an output path implies (.tsv, .h5/.hdf5, .clipnav)."""
    suffix = Path(path).suffix
    if suffix not in OUTPUT_SUFFIXES:
        raise FeatureFormatError(
            f"cannot tell the output format from {path}; name it *.tsv, *.h5, *.hdf5 or *{STORE_SUFFIX}, "
            f"or pass the format ({', '.join(FORMATS)})"
        )
    return OUTPUT_SUFFIXES[suffix]


def convert_features(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    format: str | None = None,
    dtype: str | None = None,
    dim: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Convert a feature file to another format, carrying its metadata over; return `dst`.

    `format` defaults to the one `dst`'s name implies. `dtype` is the output's dtype:
    TSV stores float32 only, HDF5 float16, float32 or float64, clipnav float16 or
    float32; by default the source's dtype where the output allows it, else float32.
    `dim` is the source's expected feature dimension; with HDF5 sources of width
    `dim` + 1000 it drops the appended ImageNet logits. An interrupted conversion to
    clipnav resumes where it stopped when run again with the same arguments.
    """
    src, dst = Path(src), Path(dst)
    kind = format or output_format(dst)
    if kind not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {kind!r}")
    if src.resolve() == dst.resolve():
        raise FeatureFormatError(f"{src}: source and output are the same path; choose another output")
    if dst.exists() and not overwrite:
        raise FeatureStoreExistsError(
            f"{dst} already exists; delete it, choose another output, or pass overwrite"
        )

    source = open_source(src, dim)
    out_dtype = _output_dtype(kind, source.dtype, dtype)
    metadata = _carried_metadata(source)
    logger.info(
        "converting %s (%s, dim %d, %s) to %s (%s, %s)",
        src,
        source.format,
        source.dim,
        source.dtype,
        dst,
        kind,
        out_dtype,
    )

    records = source.records()
    if progress:
        # Counting a TSV file's lines costs a pass over it, which only clipnav output needs anyway.
        known_count = kind == FORMAT_CLIPNAV or not isinstance(source, TsvSource)
        total = len(source.keys()) if known_count else None
        records = tqdm(records, total=total, desc=f"converting {src.name}", unit="viewpoint")
    if kind == FORMAT_TSV:
        _write_tsv(dst, records, metadata)
    elif kind == FORMAT_HDF5:
        records = (
            (scan, viewpoint, cast_features(features, out_dtype, f"{src}: {scan}/{viewpoint}"))
            for scan, viewpoint, features in records
        )
        write_hdf5_features(dst, records, out_dtype, metadata)
    else:
        _write_clipnav(dst, source, records, out_dtype, metadata, overwrite)
    logger.info("wrote %s", dst)
    return dst


def _output_dtype(kind: str, source_dtype: str, requested: str | None) -> str:
    allowed = {FORMAT_TSV: ("float32",), FORMAT_HDF5: HDF5_DTYPES, FORMAT_CLIPNAV: STORE_DTYPES}[kind]
    if requested is None:
        return source_dtype if source_dtype in allowed else "float32"
    if requested not in allowed:
        raise FeatureFormatError(
            f"the {kind} format stores {' or '.join(allowed)}, not {requested}; choose another dtype or format"
        )
    return requested


def _carried_metadata(source: FeatureSource) -> dict[str, Any]:
    metadata = {name: value for name, value in source.metadata.items() if name not in PER_FILE_FIELDS}
    metadata["converted_from"] = {"format": source.format, "path": str(source.path), "dtype": source.dtype}
    return metadata


def _write_tsv(dst: Path, records: Iterator[Record], metadata: dict[str, Any]) -> None:
    dropped = sorted(set(metadata) - {*TSV_CAMERA_FIELDS, "converted_from"})
    if dropped:
        logger.warning("TSV keeps only image_w, image_h and vfov; not written: %s", ", ".join(dropped))
    camera = {"image_w": 640, "image_h": 480, "vfov": 60.0}
    camera |= {name: metadata[name] for name in TSV_CAMERA_FIELDS if metadata.get(name) is not None}
    as_float32 = (
        (scan, viewpoint, np.asarray(features, dtype=np.float32)) for scan, viewpoint, features in records
    )
    write_tsv_features(dst, as_float32, int(camera["image_w"]), int(camera["image_h"]), float(camera["vfov"]))


def _write_clipnav(
    dst: Path,
    source: FeatureSource,
    records: Iterator[Record],
    dtype: str,
    metadata: dict[str, Any],
    overwrite: bool,
) -> None:
    keys = source.keys()
    with open_store_writer(dst, keys, source.dim, dtype, metadata, overwrite) as writer:
        started_from = writer.metadata.get("converted_from")
        if started_from is not None and started_from != metadata["converted_from"]:
            raise FeatureFormatError(
                f"{dst}: an unfinished conversion from {started_from.get('path')} is in the way of the "
                f"conversion from {source.path}; delete {dst}.partial, or rerun the first conversion"
            )
        start = 0
        batch: list[np.ndarray] = []
        for row, (scan, viewpoint, features) in enumerate(records):
            if (scan, viewpoint) != keys[row]:
                raise FeatureFormatError(
                    f"{source.path}: viewpoint {row} changed while converting ({keys[row]} became "
                    f"{(scan, viewpoint)}); was the file modified?"
                )
            batch.append(features)
            if len(batch) == WRITE_BATCH_ROWS:
                _write_batch(writer, start, batch)
                start, batch = start + len(batch), []
        if batch:
            _write_batch(writer, start, batch)
        writer.finish()


def _write_batch(writer: ClipnavStoreWriter, start: int, batch: list[np.ndarray]) -> None:
    rows = np.arange(start, start + len(batch))
    # A resumed conversion skips the batches that the interrupted run wrote.
    if not writer.is_written(rows).all():
        writer.write(rows, np.stack(batch))
