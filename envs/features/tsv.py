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
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from connectivity.errors import DataNotFoundError
from envs.features.base import VIEWS_PER_VIEWPOINT, FeatureFormatError
from envs.features.memory import InMemoryFeatureStore
from envs.io import atomic_write

logger = logging.getLogger(__name__)

TSV_FIELDS = ("scanId", "viewpointId", "image_w", "image_h", "vfov", "features")


class TsvFeatureStore(InMemoryFeatureStore):
    """All features of a TSV file decoded into one in-memory float32 array [viewpoints, 36, D]."""

    def __init__(self, path: str | os.PathLike[str], dim: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataNotFoundError(f"feature file {self.path} not found")
        keys: list[tuple[str, str]] = []
        arrays: list[np.ndarray] = []
        camera: tuple[int, int, float] | None = None
        first_line: dict[tuple[str, str], int] = {}
        with self.path.open("rb") as lines:
            for line_number, raw in enumerate(lines, 1):
                try:
                    line = raw.decode("ascii")
                except UnicodeDecodeError as error:
                    raise FeatureFormatError(
                        f"{self.path}, line {line_number}: non-ASCII byte at column {error.start + 1}; "
                        "TSV feature files hold ASCII text only"
                    ) from None
                if not line.strip():
                    continue
                scan, viewpoint, image_w, image_h, vfov, features = _split_line(self.path, line_number, line)
                if (scan, viewpoint) in first_line:
                    raise FeatureFormatError(
                        f"{self.path}, line {line_number}: scan {scan!r}, viewpoint {viewpoint!r} already "
                        f"appeared on line {first_line[(scan, viewpoint)]}; keep one line per viewpoint"
                    )
                first_line[(scan, viewpoint)] = line_number
                line_camera = _parse_camera(self.path, line_number, image_w, image_h, vfov)
                array = _decode(self.path, line_number, features, dim)
                dim = array.shape[1]
                if camera is not None and line_camera != camera:
                    raise FeatureFormatError(
                        f"{self.path}, line {line_number}: image_w, image_h, vfov {line_camera} differ from "
                        f"{camera} on the first line; one file must hold views of one camera"
                    )
                camera = camera or line_camera
                keys.append((scan, viewpoint))
                arrays.append(array)
        if not arrays:
            raise FeatureFormatError(f"{self.path}: no feature lines")
        metadata = {"format": "tsv", "path": str(self.path), "image_w": camera[0], "image_h": camera[1]}
        metadata["vfov"] = camera[2]
        super().__init__(keys, np.stack(arrays), metadata, source=str(self.path))
        logger.info("read %d viewpoints of dim %d from %s", len(keys), self.dim, self.path)


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
            f"{path}, line {line_number}: {len(raw)} bytes of features is not 36 views of float32"
        )
    array = np.frombuffer(raw, dtype=np.float32).reshape(VIEWS_PER_VIEWPOINT, -1)
    if dim is not None and array.shape[1] != dim:
        raise FeatureFormatError(
            f"{path}, line {line_number}: expected feature dimension {dim}, got {array.shape[1]}"
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
    """
    count = 0
    with atomic_write(path, "w") as out:
        for scan, viewpoint, features in records:
            out.write(encode_tsv_line(scan, viewpoint, features, image_w, image_h, vfov))
            count += 1
    return count
