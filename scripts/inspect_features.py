"""Describe a view-feature store and list the included viewpoints that it lacks.

Prints the format, viewpoint count, dimension, dtype and metadata of a TSV, HDF5 or
clipnav feature store. It then checks the store against a connectivity folder, by
default the data folder's connectivity/, and prints how many included viewpoints have no
features, per scan, and the first few of them.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from connectivity import Connectivity, DataNotFoundError, connectivity_dir
from envs.features import FeatureStore, detect_format, open_feature_store
from scripts.common import add_common_arguments, run_cli, setup_logging

logger = logging.getLogger(__name__)

MAX_LISTED = 10


def included_viewpoints(connectivity: Connectivity) -> dict[str, list[str]]:
    """Return the included viewpoints of every scan of a connectivity folder, in file order."""
    viewpoints: dict[str, list[str]] = {}
    for scan in connectivity:
        graph = connectivity[scan]
        viewpoints[scan] = [vp for vp, included in zip(graph.viewpoint_ids, graph.included) if included]
    return viewpoints


def missing_viewpoints(store: FeatureStore, viewpoints: dict[str, list[str]]) -> dict[str, list[str]]:
    """Return, per scan, the viewpoints of `viewpoints` that `store` has no features for."""
    stored = set(store.keys())
    missing = {
        scan: [vp for vp in scan_viewpoints if (scan, vp) not in stored]
        for scan, scan_viewpoints in viewpoints.items()
    }
    return {scan: vps for scan, vps in missing.items() if vps}


def print_summary(path: Path, kind: str, store: FeatureStore) -> None:
    print(f"path: {path}")
    print(f"format: {kind}")
    print(f"viewpoints: {len(store)}")
    print(f"dimension: {store.dim}")
    print(f"dtype: {store.metadata.get('dtype', 'unknown')}")
    print("metadata:")
    for name, value in store.metadata.items():
        text = value if isinstance(value, (str, int, float)) else json.dumps(value)
        print(f"  {name}: {text}")


def print_coverage(
    store: FeatureStore, viewpoints: dict[str, list[str]], root: Path, max_listed: int
) -> None:
    total = sum(len(vps) for vps in viewpoints.values())
    missing = missing_viewpoints(store, viewpoints)
    missing_count = sum(len(vps) for vps in missing.values())
    print(f"connectivity: {root} ({len(viewpoints)} scans, {total} included viewpoints)")
    print(f"missing: {missing_count} of {total} included viewpoints")
    if missing:
        print("missing per scan:")
        for scan, vps in missing.items():
            print(f"  {scan}: {len(vps)} of {len(viewpoints[scan])}")
        print(f"first missing (up to {max_listed}):")
        listed = [(scan, vp) for scan, vps in missing.items() for vp in vps][:max_listed]
        for scan, vp in listed:
            print(f"  {scan} {vp}")

    known = {(scan, vp) for scan, vps in viewpoints.items() for vp in vps}
    stored = store.keys()
    extra = [key for key in stored if key not in known]
    print(f"not included in the connectivity: {len(extra)}")
    for scan, vp in extra[:max_listed]:
        print(f"  {scan} {vp}")


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "path", type=Path, help="feature store: a .tsv file, an HDF5 file or a .clipnav folder"
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--dim",
        type=int,
        default=None,
        help="expected feature dimension; drops ImageNet logits of HDF5 files",
    )
    parser.add_argument("--show", type=int, default=MAX_LISTED, help="missing viewpoints listed at most")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    kind = detect_format(args.path)
    store = open_feature_store(args.path, args.dim)
    print_summary(args.path, kind, store)

    try:
        root = connectivity_dir(args.data_dir)
    except DataNotFoundError as error:
        if args.data_dir is not None:
            raise
        logger.warning("skipping the coverage check: %s", error)
        return 0
    connectivity = Connectivity(root)
    print_coverage(store, included_viewpoints(connectivity), root, args.show)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
