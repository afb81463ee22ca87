"""Shared fixtures: the real data folder, skipped with a reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectivity import DATA_DIR_ENV, Connectivity, default_data_dir


def _real_data_dir() -> Path | None:
    path = default_data_dir()
    complete = (path / "connectivity" / "scans.txt").is_file() and (path / "R2R").is_dir()
    return path if complete else None


REAL_DATA_DIR = _real_data_dir()
needs_real_data = pytest.mark.skipif(
    REAL_DATA_DIR is None,
    reason=(
        f"real data not found at {default_data_dir()}: set {DATA_DIR_ENV} to a folder holding "
        "connectivity/ and R2R/ from the Matterport3D Simulator and the R2R release"
    ),
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if REAL_DATA_DIR is None:
        pytest.skip(f"real data not found at {default_data_dir()}; set {DATA_DIR_ENV}")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def real_connectivity(data_dir: Path) -> Connectivity:
    return Connectivity(data_dir / "connectivity")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo world built once per test session; it needs no real data."""
    from envs.demo_world import build_demo_world

    return build_demo_world(tmp_path_factory.mktemp("demo") / "world", seed=0)


@pytest.fixture(scope="session")
def demo_world(demo_dir: Path):
    """A NavigationWorld over the demo data with its TSV view features."""
    from envs.world import EnvSettings, NavigationWorld

    features = next((demo_dir / "features").glob("*.tsv"))
    return NavigationWorld.from_settings(EnvSettings(data_dir=str(demo_dir), features=str(features)))
