"""View-feature stores: one interface, several file formats.

Formats: TSV (Matterport3D Simulator, R2R-EnvDrop, CLIP-ViL; read into memory), HDF5
(HAMT, DUET; read into memory), clipnav stores (memory-mapped, opened in milliseconds
and shared by worker processes) and "none" (zeros). `open_feature_store` detects the
format, `convert_features` converts between formats, and `ClipnavStoreWriter` writes
clipnav stores resumably, batch by batch.
"""

from __future__ import annotations

from envs.features.base import (
    MISSING_MODES,
    VIEWS_PER_VIEWPOINT,
    FeatureFormatError,
    FeatureMismatchError,
    FeatureStore,
    FeatureStoreExistsError,
    MissingViewpointError,
    check_compatible,
)
from envs.features.clipnav_store import ClipnavFeatureStore, feature_metadata, file_sha256
from envs.features.clipnav_writer import (
    ClipnavStoreWriter,
    merge_stores,
    open_store_writer,
    parse_shard,
    shard_keys,
)
from envs.features.convert import convert_features
from envs.features.formats import FORMATS, NO_FEATURES, detect_format, open_feature_store
from envs.features.hdf5 import Hdf5FeatureStore, write_hdf5_features
from envs.features.memory import InMemoryFeatureStore
from envs.features.tsv import TsvFeatureStore, encode_tsv_line, write_tsv_features
from envs.features.zeros import NoVisualFeatures

__all__ = [
    "FORMATS",
    "MISSING_MODES",
    "NO_FEATURES",
    "VIEWS_PER_VIEWPOINT",
    "ClipnavFeatureStore",
    "ClipnavStoreWriter",
    "FeatureFormatError",
    "FeatureMismatchError",
    "FeatureStore",
    "FeatureStoreExistsError",
    "Hdf5FeatureStore",
    "InMemoryFeatureStore",
    "MissingViewpointError",
    "NoVisualFeatures",
    "TsvFeatureStore",
    "check_compatible",
    "convert_features",
    "detect_format",
    "encode_tsv_line",
    "feature_metadata",
    "file_sha256",
    "merge_stores",
    "open_feature_store",
    "open_store_writer",
    "parse_shard",
    "shard_keys",
    "write_hdf5_features",
    "write_tsv_features",
]
