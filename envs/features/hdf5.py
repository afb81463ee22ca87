"""The HDF5 feature format of HAMT and DUET: one dataset per viewpoint.

Every viewpoint is a dataset at the file's root named `<scan>_<viewpoint>`, shape
[36, W], float32 or float64, rows in view-index order. Some published files append the
1000 ImageNet logits of the image classifier after the D features (W = D + 1000); open
them with `dim=D` to keep the features only. clipnav also writes its metadata record as
a JSON string in the root attribute `clipnav_metadata`; files from elsewhere lack it.

Reading loads every dataset into one float32 array on open, because h5py reads one
dataset in tens of microseconds, too slow for the environments' per-step gathers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from connectivity.errors import DataNotFoundError
from envs.features.base import MISSING_RAISE, VIEWS_PER_VIEWPOINT, FeatureFormatError, cast_features
from envs.features.memory import InMemoryFeatureStore

if TYPE_CHECKING:
    import h5py

logger = logging.getLogger(__name__)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
IMAGENET_LOGITS = 1000
METADATA_ATTRIBUTE = "clipnav_metadata"
HDF5_DTYPES = ("float16", "float32", "float64")

# Feature widths of common encoders (CLIP ViT-B/32 512, RN50x4 640, ViT-B 768, ResNet-152
# 2048). A file W wide with W - 1000 among them probably carries ImageNet logits.
COMMON_DIMS = (512, 640, 768, 1024, 2048)


def import_h5py() -> Any:
    """Return the h5py module, or raise ImportError saying how to install it."""
    try:
        import h5py
    except ImportError as error:
        raise ImportError("reading or writing HDF5 feature files needs h5py: pip install h5py") from error
    return h5py


def hdf5_key(scan: str, viewpoint: str) -> str:
    """Return the dataset name of a viewpoint, `<scan>_<viewpoint>`."""
    if not scan or not viewpoint or "_" in scan or "/" in scan or "/" in viewpoint:
        raise FeatureFormatError(
            f"cannot name an HDF5 dataset for scan {scan!r}, viewpoint {viewpoint!r}: the name "
            "<scan>_<viewpoint> needs a scan id without '_' or '/' and a viewpoint id without '/'"
        )
    return f"{scan}_{viewpoint}"


@dataclass
class Hdf5Layout:
    """The datasets of an HDF5 feature file, checked without reading their values."""

    path: Path
    names: list[str]  # dataset names, in the file's order
    keys: list[tuple[str, str]]  # (scan, viewpoint) of each dataset
    width: int  # stored values per view
    dim: int  # feature values kept per view: width, or width - 1000 without logits
    dtype: np.dtype  # stored dtype
    metadata: dict[str, Any] = field(default_factory=dict)


def read_hdf5_layout(file: h5py.File, path: Path, dim: int | None = None) -> Hdf5Layout:
    """Check every dataset's name, shape and dtype and return the file's layout.

    With `dim`, datasets may be `dim` or `dim` + 1000 wide; the logits of the latter are
    dropped with one warning. Without it, all datasets must have one width.
    """
    h5py = import_h5py()
    names: list[str] = []
    keys: list[tuple[str, str]] = []
    dtypes: set[np.dtype] = set()
    width: int | None = None
    for name, item in file.items():
        if not isinstance(item, h5py.Dataset):
            raise FeatureFormatError(
                f"{path}: {name!r} is a group, not a dataset; expected one [36, D] dataset per "
                "viewpoint named <scan>_<viewpoint> at the file's root"
            )
        scan, _, viewpoint = name.partition("_")
        if not scan or not viewpoint:
            raise FeatureFormatError(
                f"{path}: dataset {name!r} is not named <scan>_<viewpoint>; rename it or rewrite "
                "the file with write_hdf5_features"
            )
        if item.dtype.kind != "f":
            raise FeatureFormatError(
                f"{path}: dataset {name!r} has dtype {item.dtype}; expected float32 or float64 "
                "features; convert the file with floating-point features"
            )
        shape = item.shape
        if len(shape) != 2 or shape[0] != VIEWS_PER_VIEWPOINT:
            raise FeatureFormatError(
                f"{path}: dataset {name!r} has shape {list(shape)}; expected [36, D], one row per "
                "view in view-index order; re-extract this viewpoint's features"
            )
        _check_width(path, name, shape[1], dim, width)
        width = width or shape[1]
        names.append(name)
        keys.append((scan, viewpoint))
        dtypes.add(item.dtype)
    if width is None:
        raise FeatureFormatError(f"{path}: no datasets; expected one [36, D] dataset per viewpoint")

    feature_dim = dim if dim is not None else width
    if feature_dim != width:
        logger.warning(
            "%s: datasets are %d wide, %d features followed by %d ImageNet logits; dropping the logits",
            path,
            width,
            feature_dim,
            IMAGENET_LOGITS,
        )
    elif dim is None and width - IMAGENET_LOGITS in COMMON_DIMS:
        logger.warning(
            "%s: datasets are %d wide, which may be %d features followed by %d ImageNet logits; "
            "open it with dim=%d to drop them",
            path,
            width,
            width - IMAGENET_LOGITS,
            IMAGENET_LOGITS,
            width - IMAGENET_LOGITS,
        )
    dtype = np.result_type(*dtypes)
    metadata = _read_metadata(file, path)
    return Hdf5Layout(path, names, keys, width, feature_dim, dtype, metadata)


def _check_width(path: Path, name: str, width: int, dim: int | None, first_width: int | None) -> None:
    if dim is not None and width not in (dim, dim + IMAGENET_LOGITS):
        raise FeatureFormatError(
            f"{path}: dataset {name!r} is {width} wide; expected feature dimension {dim}, "
            f"or {dim + IMAGENET_LOGITS} with ImageNet logits appended; pass the file's dimension"
        )
    if first_width is not None and width != first_width:
        raise FeatureFormatError(
            f"{path}: dataset {name!r} is {width} wide, the datasets before it {first_width}; "
            "one file must hold one feature dimension"
        )


def _read_metadata(file: h5py.File, path: Path) -> dict[str, Any]:
    text = file.attrs.get(METADATA_ATTRIBUTE)
    if text is None:
        return {}
    try:
        metadata = json.loads(text)
    except (TypeError, ValueError) as error:
        raise FeatureFormatError(
            f"{path}: root attribute {METADATA_ATTRIBUTE!r} is not valid JSON ({error}); "
            "delete the attribute or rewrite the file"
        ) from None
    if not isinstance(metadata, dict):
        raise FeatureFormatError(f"{path}: root attribute {METADATA_ATTRIBUTE!r} must be a JSON object")
    return metadata


@contextlib.contextmanager
def open_hdf5(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """Open an HDF5 file for reading, raising `DataNotFoundError` or `FeatureFormatError` for bad paths."""
    h5py = import_h5py()
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"feature file {path} not found")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise FeatureFormatError(f"{path}: not a readable HDF5 file ({error})") from None
    with file:
        yield file


def iter_hdf5_records(
    path: str | os.PathLike[str], dim: int | None = None
) -> Iterator[tuple[str, str, np.ndarray]]:
    """Yield (scan, viewpoint, features [36, D] in the stored dtype) for each dataset, one at a time."""
    with open_hdf5(path) as file:
        layout = read_hdf5_layout(file, Path(path), dim)
        for name, (scan, viewpoint) in zip(layout.names, layout.keys):
            yield scan, viewpoint, file[name][:, : layout.dim]


class Hdf5FeatureStore(InMemoryFeatureStore):
    """All datasets of a HAMT/DUET HDF5 file, read on open into one float32 array [viewpoints, 36, D].

    float64 files are rounded to float32. `dim` drops appended ImageNet logits (see the
    module docstring), and `missing="zeros"` returns zeros for absent viewpoints.

    NOTE: the whole array lives in each process's memory (1.2 GB for 10,567 viewpoints
    at D = 768). Convert the file to the clipnav format when many workers share it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        dim: int | None = None,
        missing: str = MISSING_RAISE,
        progress: bool = False,
    ):
        self.path = Path(path)
        with open_hdf5(self.path) as file:
            layout = read_hdf5_layout(file, self.path, dim)
            features = np.empty((len(layout.names), VIEWS_PER_VIEWPOINT, layout.dim), dtype=np.float32)
            names = tqdm(
                layout.names, desc=f"reading {self.path.name}", unit="viewpoint", disable=not progress
            )
            for row, name in enumerate(names):
                # HDF5 converts float64 to float32 while it reads into the destination row.
                file[name].read_direct(features[row], source_sel=np.s_[:, : layout.dim])

        metadata = dict(layout.metadata)
        metadata |= {"format": "hdf5", "path": str(self.path), "dtype": str(layout.dtype), "dim": layout.dim}
        super().__init__(layout.keys, features, metadata, source=str(self.path), missing=missing)
        logger.info("read %d viewpoints of dim %d from %s", len(layout.keys), self.dim, self.path)


def write_hdf5_features(
    path: str | os.PathLike[str],
    records: Iterable[tuple[str, str, np.ndarray]],
    dtype: str = "float32",
    metadata: dict[str, Any] | None = None,
) -> int:
    """Write (scan, viewpoint, [36, D] features) records as an HDF5 file; return the count.

    The file is written beside `path` under a temporary name and renamed when complete,
    so `path` contains the old file or the whole new one. `metadata`, if given, is stored as
    JSON in the root attribute `clipnav_metadata`.
    """
    h5py = import_h5py()
    if dtype not in HDF5_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(HDF5_DTYPES)}, got {dtype!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    count = 0
    dim: int | None = None
    try:
        with h5py.File(temporary, "w") as file:
            for scan, viewpoint, features in records:
                name = hdf5_key(scan, viewpoint)
                array = _checked_array(scan, viewpoint, features, dtype, dim)
                dim = array.shape[1]
                if name in file:
                    raise FeatureFormatError(f"scan {scan!r}, viewpoint {viewpoint!r} appears twice")
                file.create_dataset(name, data=array)
                count += 1
            if metadata is not None:
                file.attrs[METADATA_ATTRIBUTE] = json.dumps(metadata)
        # mkstemp creates the file readable by its owner only; give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    logger.info("wrote %d viewpoints to %s", count, path)
    return count


def _checked_array(
    scan: str, viewpoint: str, features: np.ndarray, dtype: str, dim: int | None
) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[0] != VIEWS_PER_VIEWPOINT:
        raise FeatureFormatError(
            f"features of {scan}/{viewpoint}: expected shape [36, D], got {list(array.shape)}"
        )
    if dim is not None and array.shape[1] != dim:
        raise FeatureFormatError(
            f"features of {scan}/{viewpoint}: expected dimension {dim} like the first record, "
            f"got {array.shape[1]}; one file has one feature dimension"
        )
    return cast_features(array, dtype, f"features of {scan}/{viewpoint}")
