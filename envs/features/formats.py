"""Feature file formats: detecting a path's format and opening it as a `FeatureStore`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from connectivity.errors import DataNotFoundError
from envs.features.base import MISSING_RAISE, FeatureFormatError, FeatureStore, check_missing_mode
from envs.features.clipnav_store import METADATA_FILE, ClipnavFeatureStore, is_clipnav_folder
from envs.features.hdf5 import HDF5_SIGNATURE, IMAGENET_LOGITS, Hdf5FeatureStore, open_hdf5
from envs.features.tsv import TsvFeatureStore
from envs.features.zeros import NoVisualFeatures

logger = logging.getLogger(__name__)

NO_FEATURES = "none"
FORMAT_TSV = "tsv"
FORMAT_HDF5 = "hdf5"
FORMAT_CLIPNAV = "clipnav"
FORMATS = (FORMAT_TSV, FORMAT_HDF5, FORMAT_CLIPNAV)
DEFAULT_ZEROS_DIM = 512

SUPPORTED = (
    "a TSV file (scanId, viewpointId, image_w, image_h, vfov, base64 float32 [36, D] per line), "
    "an HDF5 file with one [36, D] dataset per <scan>_<viewpoint>, "
    "a clipnav store folder (<name>.clipnav/ with features.npy, keys.json, metadata.json), "
    "or 'none' for zeros"
)


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return the format of a feature path: "tsv", "hdf5", "clipnav" or "none".

    HDF5 is recognised by its signature, a clipnav store by its folder, and TSV by the
    `.tsv` suffix or a first line of tab-separated fields. Raises `DataNotFoundError`
    for an absent path and `FeatureFormatError`, listing the formats, for anything else.
    """
    if str(path) == NO_FEATURES:
        return NO_FEATURES
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"feature store {path} not found; pass {SUPPORTED}")
    if path.is_dir():
        if is_clipnav_folder(path):
            return FORMAT_CLIPNAV
        raise FeatureFormatError(f"{path}: a folder that is not a clipnav store; pass {SUPPORTED}")
    if path.name == METADATA_FILE and is_clipnav_folder(path.parent):
        return FORMAT_CLIPNAV

    with path.open("rb") as file:
        head = file.read(512)
    if head.startswith(HDF5_SIGNATURE):
        return FORMAT_HDF5
    if path.suffix == ".tsv" or _looks_like_tsv(head):
        return FORMAT_TSV
    raise FeatureFormatError(f"{path}: unknown feature format; pass {SUPPORTED}")


def _looks_like_tsv(head: bytes) -> bool:
    # The five short fields before the base64 features fit in the first 512 bytes.
    fields = head.split(b"\t")
    if len(fields) < 6:
        return False
    try:
        int(fields[2])
        int(fields[3])
        float(fields[4])
    except ValueError:
        return False
    return True


def open_feature_store(
    path: str | os.PathLike[str] | None, dim: int | None = None, missing: str = MISSING_RAISE
) -> FeatureStore:
    """Open a feature store, detecting its format from the path; "none" or None gives zeros.

    `dim` sets the width of the zeros of "none" (default 512). For a file it is the
    width the caller expects: HDF5 datasets `dim` + 1000 wide lose their appended
    ImageNet logits, and any other width raises FeatureFormatError. Without `dim` a file
    keeps its own width. `missing="zeros"` returns zeros for absent viewpoints.
    """
    check_missing_mode(missing)
    if path is None or str(path) == NO_FEATURES:
        return NoVisualFeatures(dim if dim is not None else DEFAULT_ZEROS_DIM)

    kind = detect_format(path)
    if kind == FORMAT_TSV:
        store: FeatureStore = TsvFeatureStore(path, missing=missing)
    elif kind == FORMAT_HDF5:
        store = Hdf5FeatureStore(path, _hdf5_dim(Path(path), dim), missing=missing)
    else:
        store = ClipnavFeatureStore(path, missing=missing)
    if dim is not None and store.dim != dim:
        raise FeatureFormatError(
            f"{path} has feature dimension {store.dim}, expected {dim}; use features of dimension {dim} "
            "or leave the dimension unset to take the file's own"
        )
    return store


def _hdf5_dim(path: Path, dim: int | None) -> int | None:
    """Return `dim` if the file's first dataset is `dim` + 1000 wide, else None (the file's width)."""
    if dim is None:
        return None
    with open_hdf5(path) as file:
        for item in file.values():
            shape = getattr(item, "shape", None)
            if shape is not None and len(shape) == 2 and shape[1] == dim + IMAGENET_LOGITS:
                return dim
            break
    return None
