"""Where the 36 views of a viewpoint come from: image folders or rendered skyboxes.

A view source lists the (scan, viewpoint) pairs it can provide and loads the 36 views
of one as a uint8 tensor [36, 3, H, W] in view-index order (heading step + 12 *
elevation row, row 0 looking 30 degrees down).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from connectivity.errors import ClipnavError, DataNotFoundError
from envs.features.base import VIEWS_PER_VIEWPOINT

logger = logging.getLogger(__name__)

# Face size of the simulator's downsized skyboxes (`<viewpoint>_skybox_small.jpg`).
SIMULATOR_FACE_SIZE = 512

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class ViewImageError(ClipnavError, ValueError):
    """A view image is unreadable or has the wrong size."""


class ViewSource(Protocol):
    """Anything that provides the 36 views of viewpoints."""

    def keys(self) -> list[tuple[str, str]]:
        """Return the (scan, viewpoint) pairs this source can provide, sorted."""
        ...

    def load(self, scan: str, viewpoint: str) -> torch.Tensor:
        """Return the 36 views of a viewpoint: uint8 [36, 3, H, W]."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Return how the views are made: kind, image size, vertical field of view."""
        ...


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file (any format Pillow reads, whatever its extension) as uint8 [H, W, 3]."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ViewImageError(f"cannot read image {path}: {error}") from None


class ViewFolderSource:
    """Views already rendered as images: `<root>/<scan>/<viewpoint>/<view index>.jpg`.

    This is the layout in which CLIP-ViL distributes rendered views; .png works too.
    Every viewpoint folder must hold all 36 views, of one size.
    """

    def __init__(
        self, root: str | os.PathLike[str], width: int = 640, height: int = 480, vfov_deg: float = 60
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataNotFoundError(
                f"view folder {self.root} not found; expected <root>/<scan>/<viewpoint>/<0..35>.jpg"
            )
        self.width, self.height, self.vfov_deg = width, height, vfov_deg

    def keys(self) -> list[tuple[str, str]]:
        found = []
        for scan_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for viewpoint_dir in sorted(p for p in scan_dir.iterdir() if p.is_dir()):
                found.append((scan_dir.name, viewpoint_dir.name))
        return found

    def _view_path(self, folder: Path, view: int) -> Path:
        for suffix in IMAGE_SUFFIXES:
            path = folder / f"{view}{suffix}"
            if path.is_file():
                return path
        raise DataNotFoundError(
            f"view {view} of {folder} not found (looked for {view}.jpg, .jpeg, .png); "
            "each viewpoint folder needs views 0..35"
        )

    def load(self, scan: str, viewpoint: str) -> torch.Tensor:
        folder = self.root / scan / viewpoint
        views = []
        for view in range(VIEWS_PER_VIEWPOINT):
            path = self._view_path(folder, view)
            pixels = read_rgb(path)
            if pixels.shape[:2] != (self.height, self.width):
                raise ViewImageError(
                    f"{path} is {pixels.shape[1]}x{pixels.shape[0]}, expected {self.width}x{self.height}; "
                    "pass the views' real size to the source"
                )
            views.append(torch.from_numpy(pixels).permute(2, 0, 1))
        return torch.stack(views)  # [36, 3, H, W]

    def metadata(self) -> dict[str, Any]:
        return {
            "views": "image folder",
            "source": str(self.root.resolve()),
            "image_w": self.width,
            "image_h": self.height,
            "vfov": self.vfov_deg,
            "view_order": "view index = heading step (30 deg) + 12 * elevation row (-30, 0, +30 deg)",
        }


class SkyboxSource:
    """Views rendered from Matterport3D skyboxes with the cube-map renderer.

    `root` contains one folder per scan with the skybox images (the Matterport3D download's
    `<scan>/matterport_skybox_images/` or the images directly in `<scan>/`); the
    connectivity folder gives each viewpoint's pose. Viewpoints are those included in the
    navigation graphs whose skybox files exist. Faces larger than `face_size` (the
    download's 1024-pixel `_sami.jpg` faces) are shrunk to it as the simulator's
    downsizing script does; None renders them as they are.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        connectivity_dir: str | os.PathLike[str],
        scans: list[str] | None = None,
        width: int = 640,
        height: int = 480,
        vfov_deg: float = 60,
        device: str | torch.device = "cpu",
        face_size: int | None = SIMULATOR_FACE_SIZE,
    ):
        from connectivity import Connectivity
        from envs.rendering import CubeMapRenderer

        self.root = Path(root)
        if not self.root.is_dir():
            raise DataNotFoundError(
                f"skybox folder {self.root} not found; expected <root>/<scan>/... skybox images"
            )
        self.connectivity_dir = Path(connectivity_dir)
        self.graphs = Connectivity(self.connectivity_dir)
        self.scans = (
            scans if scans is not None else [s for s in self.graphs.scans if (self.root / s).is_dir()]
        )
        self.renderer = CubeMapRenderer(width, height, vfov_deg, device=device)
        self.width, self.height, self.vfov_deg = width, height, vfov_deg
        self.face_size = face_size

    def _has_skybox(self, scan: str, viewpoint: str) -> bool:
        for folder in (self.root / scan / "matterport_skybox_images", self.root / scan):
            if (folder / f"{viewpoint}_skybox_small.jpg").is_file():
                return True
            if all((folder / f"{viewpoint}_skybox{k}_sami.jpg").is_file() for k in range(6)):
                return True
        return False

    def keys(self) -> list[tuple[str, str]]:
        found, missing = [], []
        for scan in sorted(self.scans):
            graph = self.graphs[scan]
            for index, viewpoint in enumerate(graph.viewpoint_ids):
                if not graph.included[index]:
                    continue
                if self._has_skybox(scan, viewpoint):
                    found.append((scan, viewpoint))
                else:
                    missing.append((scan, viewpoint))
        if missing:
            scan, viewpoint = missing[0]
            logger.warning(
                "%d of the %d included viewpoints of %d scans have no skybox in %s and are skipped, "
                "for example %s/%s",
                len(missing),
                len(found) + len(missing),
                len(self.scans),
                self.root,
                scan,
                viewpoint,
            )
        return sorted(found)

    def load(self, scan: str, viewpoint: str) -> torch.Tensor:
        from envs.rendering import load_skybox, read_pose_rotation

        faces = load_skybox(self.root, scan, viewpoint, face_size=self.face_size)
        rotation = read_pose_rotation(self.connectivity_dir / f"{scan}_connectivity.json", viewpoint)
        return self.renderer.render_discretized(faces, rotation).cpu()  # [36, 3, H, W]

    def metadata(self) -> dict[str, Any]:
        return {
            "views": "rendered from skyboxes (cube-map projection, bilinear)"
            + (f", faces shrunk to at most {self.face_size} pixels" if self.face_size else ""),
            "source": str(self.root.resolve()),
            "image_w": self.width,
            "image_h": self.height,
            "vfov": self.vfov_deg,
        }
