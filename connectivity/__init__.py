"""Matterport3D navigation graphs: viewpoints, navigable edges and shortest paths."""

from connectivity.errors import (
    ClipnavError,
    ConnectivityFormatError,
    DataNotFoundError,
    UnknownScanError,
    UnknownViewpointError,
)
from connectivity.graph import NoPathError, ScanGraph
from connectivity.loader import Connectivity, load_scan_graph, parse_scan_graph, read_scan_list
from connectivity.paths import DATA_DIR_ENV, connectivity_dir, default_data_dir, resolve_data_dir

__all__ = [
    "DATA_DIR_ENV",
    "ClipnavError",
    "Connectivity",
    "ConnectivityFormatError",
    "DataNotFoundError",
    "NoPathError",
    "ScanGraph",
    "UnknownScanError",
    "UnknownViewpointError",
    "connectivity_dir",
    "default_data_dir",
    "load_scan_graph",
    "parse_scan_graph",
    "read_scan_list",
    "resolve_data_dir",
]
