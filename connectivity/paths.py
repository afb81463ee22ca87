"""Where clipnav looks for its data: the connectivity graphs, the R2R splits and features.

The data folder holds `connectivity/` (the Matterport3D Simulator's graphs) and `R2R/`
(the R2R JSON splits). It is chosen, first match wins, by an explicit argument (the
scripts' `--data-dir`), the environment variable `CLIPNAV_DATA_DIR`, or the folder
`../shared/data` beside the project checkout (beside the working directory when clipnav
is installed from a wheel rather than run from its checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

from connectivity.errors import DataNotFoundError

DATA_DIR_ENV = "CLIPNAV_DATA_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file()


def default_data_dir() -> Path:
    """Return the data folder named by `CLIPNAV_DATA_DIR`, else `../shared/data`."""
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    base = PROJECT_ROOT if IN_CHECKOUT else Path.cwd()
    return base.parent / "shared" / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return `data_dir` if given, else the default data folder, checking that it exists."""
    path = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if not path.is_dir():
        raise DataNotFoundError(
            f"data folder {path} does not exist; pass --data-dir or set {DATA_DIR_ENV} "
            "to a folder holding connectivity/ and R2R/"
        )
    return path


def connectivity_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the `connectivity/` folder inside the data folder."""
    path = resolve_data_dir(data_dir) / "connectivity"
    if not (path / "scans.txt").is_file():
        raise DataNotFoundError(
            f"{path / 'scans.txt'} not found; the data folder must hold the Matterport3D "
            "Simulator's connectivity/ folder (scans.txt and <scan>_connectivity.json)"
        )
    return path
