"""The TSV feature format of the Matterport3D Simulator, R2R-EnvDrop and CLIP-ViL.

One line per viewpoint, tab-separated, without a header: scanId, viewpointId, image_w,
image_h, vfov (degrees) and features, the base64 encoding of a float32 array of 36 x D
in view-index order (D = 2048 for ResNet-152, 512 for CLIP ViT-B/32, 640 for RN50x4).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from connectivity.errors import DataNotFoundError
from envs.features.base import MISSING_RAISE, VIEWS_PER_VIEWPOINT, FeatureFormatError
from envs.features.memory import InMemoryFeatureStore
from envs.io import atomic_write

logger = logging.getLogger(__name__)

TSV_FIELDS = ("scanId", "viewpointId", "image_w", "image_h", "vfov", "features")


class TsvRecord(NamedTuple):
    """One decoded line of a TSV feature file."""

    scan: str
    viewpoint: str
    features: np.ndarray  # [36, D] float32, read-only view of the decoded bytes
    camera: tuple[int, int, float]  # image_w, image_h, vfov in degrees
    line_number: int


class TsvFeatureStore(InMemoryFeatureStore):
    """All features of a TSV file decoded into one in-memory float32 array [viewpoints, 36, D].

    `dim` makes a file of another width an error. `missing="zeros"` returns zeros of
    the file's width for viewpoints absent from the file (see `FeatureStore`).
    """

    def __init__(self, path: str | os.PathLike[str], dim: int | None = None, missing: str = MISSING_RAISE):
        self.path = Path(path)
        keys: list[tuple[str, str]] = []
        features: np.ndarray | None = None  # [lines, 36, D], rows filled in file order
        camera: tuple[int, int, float] | None = None
        for record in iter_tsv_records(self.path, dim):
            if features is None:
                # Rows are decoded straight into one array sized by the line count, so that
                # loading needs no second copy of the features.
                shape = (_count_lines(self.path), VIEWS_PER_VIEWPOINT, record.features.shape[1])
                features = np.empty(shape, dtype=np.float32)
            features[len(keys)] = record.features
            keys.append((record.scan, record.viewpoint))
            camera = record.camera
        if features is None or camera is None:
            raise FeatureFormatError(f"{self.path}: no feature lines")

        metadata = {"format": "tsv", "path": str(self.path), "dtype": "float32"}
        metadata |= {"image_w": camera[0], "image_h": camera[1], "vfov": camera[2]}
        # Blank lines leave unused rows at the end; the slice keeps the array contiguous.
        super().__init__(keys, features[: len(keys)], metadata, source=str(self.path), missing=missing)
        logger.info("read %d viewpoints of dim %d from %s", len(keys), self.dim, self.path)


def iter_tsv_records(path: str | os.PathLike[str], dim: int | None = None) -> Iterator[TsvRecord]:
    """Decode a TSV feature file line by line, checking every line; yield one record per viewpoint.

    All lines must have the width of the first line (or `dim` when given) and the camera
    (image_w, image_h, vfov) of the first line, and no (scan, viewpoint) may repeat.
    Raises `DataNotFoundError` if the file is absent and `FeatureFormatError`, naming the
    file and line, for a malformed line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"feature file {path} not found")
    camera: tuple[int, int, float] | None = None
    first_line: dict[tuple[str, str], int] = {}
    with path.open("rb") as lines:
        for line_number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError as error:
                raise FeatureFormatError(
                    f"{path}, line {line_number}: non-ASCII byte at column {error.start + 1}; "
                    "TSV feature files hold ASCII text only"
                ) from None
            if not line.strip():
                continue
            scan, viewpoint, image_w, image_h, vfov, features = _split_line(path, line_number, line)
            if (scan, viewpoint) in first_line:
                raise FeatureFormatError(
                    f"{path}, line {line_number}: scan {scan!r}, viewpoint {viewpoint!r} already "
                    f"appeared on line {first_line[(scan, viewpoint)]}; keep one line per viewpoint"
                )
            first_line[(scan, viewpoint)] = line_number
            line_camera = _parse_camera(path, line_number, image_w, image_h, vfov)
            array = _decode(path, line_number, features, dim)
            dim = array.shape[1]
            if camera is not None and line_camera != camera:
                raise FeatureFormatError(
                    f"{path}, line {line_number}: image_w, image_h, vfov {line_camera} differ from "
                    f"{camera} on the first line; one file must hold views of one camera"
                )
            camera = camera or line_camera
            yield TsvRecord(scan, viewpoint, array, line_camera, line_number)


def _count_lines(path: Path) -> int:
    """Return the number of lines of a file, counting a last line without a newline."""
    count = 0
    last = b"\n"
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 24), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def read_tsv_keys(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Return the (scan, viewpoint) of every line of a TSV feature file without decoding features.

    Only the first two fields are read, so this is a quick first pass; the rest of each
    line is checked when `iter_tsv_records` decodes it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"feature file {path} not found")
    first_line: dict[tuple[str, str], int] = {}
    with path.open("rb") as lines:
        for line_number, raw in enumerate(lines, 1):
            fields = raw.split(b"\t", 2)
            if len(fields) < 3:
                if raw.strip():
                    _split_line(path, line_number, raw.decode("ascii", "replace"))
                continue
            key = (fields[0].decode("ascii", "replace"), fields[1].decode("ascii", "replace"))
            if key in first_line:
                raise FeatureFormatError(
                    f"{path}, line {line_number}: scan {key[0]!r}, viewpoint {key[1]!r} already "
                    f"appeared on line {first_line[key]}; keep one line per viewpoint"
                )
            first_line[key] = line_number
    return list(first_line)


def _split_line(path: Path, line_number: int, line: str) -> list[str]:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != len(TSV_FIELDS):
        raise FeatureFormatError(
            f"{path}, line {line_number}: expected {len(TSV_FIELDS)} tab-separated fields "
            f"({', '.join(TSV_FIELDS)}), got {len(fields)}; the line may be truncated"
        )
    return fields


def _parse_camera(
    path: Path, line_number: int, image_w: str, image_h: str, vfov: str
) -> tuple[int, int, float]:
    try:
        return int(image_w), int(image_h), float(vfov)
    except ValueError:
        raise FeatureFormatError(
            f"{path}, line {line_number}: image_w, image_h and vfov must be numbers, got "
            f"{image_w!r}, {image_h!r}, {vfov!r}"
        ) from None


def _decode(path: Path, line_number: int, text: str, dim: int | None) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise FeatureFormatError(
            f"{path}, line {line_number}: invalid base64 in features ({error})"
        ) from None
    if not raw or len(raw) % (4 * VIEWS_PER_VIEWPOINT):
        raise FeatureFormatError(
            f"{path}, line {line_number}: {len(raw)} bytes of features are not 36 views of float32 "
            f"(expected a multiple of 144 bytes, 36 x D x 4); the line may be truncated or hold another "
            "number of views"
        )
    array = np.frombuffer(raw, dtype=np.float32).reshape(VIEWS_PER_VIEWPOINT, -1)
    if dim is not None and array.shape[1] != dim:
        raise FeatureFormatError(
            f"{path}, line {line_number}: expected feature dimension {dim}, got {array.shape[1]}"
        )
    if not np.isfinite(array).all():
        raise FeatureFormatError(
            f"{path}, line {line_number}: the features hold NaN or infinite values; re-extract this viewpoint"
        )
    return array


def encode_tsv_line(
    scan: str, viewpoint: str, features: np.ndarray, image_w: int = 640, image_h: int = 480, vfov: float = 60
) -> str:
    """Return one TSV line (with its newline) for a viewpoint's [36, D] features."""
    array = np.ascontiguousarray(features, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != VIEWS_PER_VIEWPOINT:
        raise FeatureFormatError(
            f"features of {scan}/{viewpoint}: expected shape [36, D], got {list(array.shape)}"
        )
    encoded = base64.b64encode(array.tobytes()).decode("ascii")
    vfov_text = f"{vfov:g}"
    return f"{scan}\t{viewpoint}\t{image_w}\t{image_h}\t{vfov_text}\t{encoded}\n"


def write_tsv_features(
    path: str | os.PathLike[str],
    records: Iterable[tuple[str, str, np.ndarray]],
    image_w: int = 640,
    image_h: int = 480,
    vfov: float = 60,
) -> int:
    """Write (scan, viewpoint, [36, D] features) records as a TSV file; return the count.

    The file appears complete or not at all: it is written beside the target and renamed.
    Records of a width other than the first record's raise `FeatureFormatError`, because
    readers take the width of the first line for the whole file.
    """
    count = 0
    dim: int | None = None
    with atomic_write(path, "w") as out:
        for scan, viewpoint, features in records:
            line = encode_tsv_line(scan, viewpoint, features, image_w, image_h, vfov)
            width = np.shape(features)[1]
            if dim is not None and width != dim:
                raise FeatureFormatError(
                    f"features of {scan}/{viewpoint}: expected dimension {dim} like the first record, "
                    f"got {width}; one file has one feature dimension"
                )
            dim = width
            out.write(line)
            count += 1
    return count
