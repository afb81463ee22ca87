"""Perspective views of Matterport3D skyboxes, computed as the Matterport3D Simulator renders them.

The simulator (C++, OpenGL) draws a cube around the camera and samples the viewpoint's
six skybox images as a cube map: bilinear (GL_LINEAR), no mipmaps, each face clamped at
its own edges. This module computes the same pixels without OpenGL: with a compiled
kernel on the CPU, with PyTorch on a GPU (see the backends below).

The geometry follows from the simulator's transforms (`renderScene` in its
src/lib/MatterSim.cpp): model matrix = the pose rotation R, view matrix =
RotX(elevation - 90 deg) * RotZ(180 deg + heading), OpenGL's perspective projection, and
`glReadPixels`, which stores the bottom row of the frame buffer first. Together they give:

- At heading h and elevation e the camera looks along world (sin h cos e, cos h cos e,
  sin e), so heading 0 looks along +y, heading 90 degrees along +x, and z is up. Image
  row 0 is the top of the view and column 0 its left side.
- The pixel whose world ray is p samples the cube map along -R^T p, with OpenGL's rules
  for picking the face and the coordinates within it.
- The cube-map faces +x, -x, +y, -y, +z, -z are the skybox images 2, 4, 0, 5, 1, 3. The
  numbering is Matterport's `skybox<k>`, which is also the order of the six faces in the
  simulator's `<viewpoint>_skybox_small.jpg` strip.

Each output pixel is a weighted sum of four texels of the cube map whose faces are padded
with one texel copied from their own edge, which is how clamping works here. Two backends
compute it:

- "numba" (the CPU default): a compiled kernel (`envs.cube_kernel`) that computes each
  pixel's ray, face and weights and blends the texels in one pass, on all of PyTorch's
  CPU threads.
- "torch" (any device, the default off the CPU): the indices and weights of a view's
  pixels form a sparse matrix with four entries per row, the view's sampling plan, and
  rendering the view is one sparse-dense matrix product. A plan depends on the pose, the
  heading and elevation, the image size and the face size. The renderer keeps recently
  used plans.

Both follow the same float32 arithmetic and agree within one colour level.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from connectivity.errors import (
    ClipnavError,
    ConnectivityFormatError,
    DataNotFoundError,
    UnknownViewpointError,
    close_matches,
)

logger = logging.getLogger(__name__)

SKYBOX_FACES = 6
DISCRETIZED_VIEWS = 36
HEADING_STEPS = 12
VIEW_STEP_RAD = math.pi / 6  # 30 degrees between discretized headings and between elevation rows

# Skybox image index of each cube-map face, in OpenGL's order +x, -x, +y, -y, +z, -z.
GL_FACE_TO_SKYBOX = (2, 4, 0, 5, 1, 3)

# OpenGL's cube-map face selection: for face +x, -x, +y, -y, +z, -z, the ray component
# (0 = x, 1 = y, 2 = z) and sign that give the texture coordinates s (columns) and t
# (rows, row 0 = first row of the image), each divided by the major component's magnitude.
_S_COMPONENT = (2, 2, 0, 0, 0, 0)
_S_SIGN = (-1.0, 1.0, 1.0, 1.0, 1.0, -1.0)
_T_COMPONENT = (1, 1, 2, 2, 1, 1)
_T_SIGN = (-1.0, -1.0, 1.0, -1.0, -1.0, -1.0)

# Pillow image modes with 8 bits per channel, which convert to RGB without loss of range.
EIGHT_BIT_MODES = ("RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr")

# Largest entry of |R R^T - I| accepted for a pose rotation.
ROTATION_TOLERANCE = 1e-3

SkyboxSource = Literal["auto", "strip", "faces"]
RenderBackend = Literal["auto", "numba", "torch"]


class SkyboxFormatError(ClipnavError, ValueError):
    """A skybox image is unreadable, or its faces are not squares of one size."""


class RenderInputError(ClipnavError, ValueError):
    """An invalid renderer setting or render input: a shape, a device or a non-finite value."""


# --- Reading skyboxes and poses -------------------------------------------------------------


def _skybox_dirs(folder: Path, scan: str) -> list[Path]:
    return [folder / scan / "matterport_skybox_images", folder / scan]


def _read_rgb(path: Path) -> np.ndarray:
    """Read an image by its content (the simulator's .jpg files may hold PNG data): uint8 [H, W, 3]."""
    try:
        with Image.open(path) as image:
            if image.mode not in EIGHT_BIT_MODES:
                raise SkyboxFormatError(
                    f"skybox image {path} has {image.mode} pixels; skyboxes are 8-bit colour images "
                    "(JPEG or PNG), so convert it to 8 bits per channel first"
                )
            return np.array(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise SkyboxFormatError(f"cannot read skybox image {path}: {error}") from None


def _strip_faces(path: Path) -> np.ndarray:
    pixels = _read_rgb(path)  # [S, 6 * S, 3]
    size = pixels.shape[0]
    if pixels.shape[1] != SKYBOX_FACES * size:
        raise SkyboxFormatError(
            f"{path} is {pixels.shape[1]}x{size} pixels, but a skybox strip contains six square faces "
            f"side by side, so its width must be 6 times its height ({SKYBOX_FACES * size})"
        )
    return pixels.reshape(size, SKYBOX_FACES, size, 3).transpose(1, 0, 2, 3)  # [6, S, S, 3]


def _separate_faces(paths: list[Path]) -> np.ndarray:
    faces = [_read_rgb(path) for path in paths]  # 6 x [S, S, 3]
    size = faces[0].shape[0]
    for path, face in zip(paths, faces):
        if face.shape[:2] != (size, size):
            raise SkyboxFormatError(
                f"{path} is {face.shape[1]}x{face.shape[0]} pixels, expected a {size}x{size} square "
                f"like {paths[0].name}"
            )
    return np.stack(faces)  # [6, S, S, 3]


def load_skybox(
    folder: str | os.PathLike[str],
    scan: str,
    viewpoint: str,
    source: SkyboxSource = "auto",
    face_size: int | None = None,
) -> torch.Tensor:
    """Read the six skybox faces of a viewpoint: uint8 [6, 3, S, S], in skybox0..5 order.

    `folder` contains one folder per scan, with the images either in
    `<scan>/matterport_skybox_images/` (the Matterport3D download) or in `<scan>/` itself.
    `source` picks the files: "strip" is the simulator's `<viewpoint>_skybox_small.jpg`
    (six faces side by side), "faces" the six `<viewpoint>_skybox<k>_sami.jpg`, and "auto"
    the strip where a folder has one (the simulator renders from it), else the six faces.
    Images are decoded by their content, whatever their file extension. With `face_size`,
    larger faces are shrunk to it by `downsize_faces` (512 gives the simulator's size).

    Raises:
        DataNotFoundError: neither folder contains the requested files.
        SkyboxFormatError: an image is unreadable or its faces are not squares of one size.
    """
    if source not in ("auto", "strip", "faces"):
        raise RenderInputError(f"source must be 'auto', 'strip' or 'faces', got {source!r}")
    dirs = _skybox_dirs(Path(folder), scan)
    strip_name = f"{viewpoint}_skybox_small.jpg"
    face_names = [f"{viewpoint}_skybox{k}_sami.jpg" for k in range(SKYBOX_FACES)]

    for directory in dirs:
        strip = directory / strip_name
        if source in ("auto", "strip") and strip.is_file():
            faces = _strip_faces(strip)
            break
        face_paths = [directory / name for name in face_names]
        if source in ("auto", "faces") and all(path.is_file() for path in face_paths):
            faces = _separate_faces(face_paths)
            break
    else:
        names = {"strip": strip_name, "faces": f"{viewpoint}_skybox0_sami.jpg .. skybox5_sami.jpg"}
        expected = names[source] if source != "auto" else f"{names['strip']} or {names['faces']}"
        raise DataNotFoundError(
            f"skybox of viewpoint {viewpoint} (scan {scan}) not found: looked for {expected} in "
            f"{' and '.join(str(d) for d in dirs)}; point `folder` to the Matterport3D scans folder "
            "(<scan>/matterport_skybox_images/) or to a folder of scan folders that contain the images"
        )

    logger.debug("read skybox of %s/%s: %d faces of %d pixels", scan, viewpoint, SKYBOX_FACES, faces.shape[1])
    faces = torch.from_numpy(np.ascontiguousarray(faces.transpose(0, 3, 1, 2)))  # [6, 3, S, S]
    if face_size is not None and faces.shape[-1] > face_size:
        faces = downsize_faces(faces, face_size)
    return faces


def downsize_faces(faces: torch.Tensor, face_size: int) -> torch.Tensor:
    """Shrink uint8 faces [6, 3, S, S] to [6, 3, face_size, face_size] by area averaging, rounded.

    The Matterport3D Simulator renders from skyboxes that its downsizing script shrank
    from the 1024-pixel `_sami.jpg` faces to 512 pixels with area interpolation. For a
    whole factor such as 2 this is the mean of each 2x2 block.
    """
    if face_size < 1:
        raise RenderInputError(f"face_size must be at least 1, got {face_size}")
    averaged = torch.nn.functional.interpolate(faces.float(), size=(face_size, face_size), mode="area")
    return averaged.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)


def pose_rotation(pose: Sequence[float]) -> np.ndarray:
    """Return the rotation of a viewpoint's pose as float64 [3, 3].

    `pose` is the 16-number row-major camera-to-world matrix of a connectivity file (or
    the same matrix as 4 rows of 4). The simulator drops its translation and orients the
    cube map with the rest.

    Raises:
        ConnectivityFormatError: `pose` is not 16 finite numbers, its last row is not
            (0, 0, 0, 1), or its upper-left block is not a rotation (orthonormal within
            1e-3, determinant +1).
    """
    try:
        matrix = np.asarray(pose, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConnectivityFormatError(f"pose must be 16 numbers, got {pose!r:.80}") from None
    if matrix.shape not in ((16,), (4, 4)):
        raise ConnectivityFormatError(
            f"pose must be 16 numbers or 4 rows of 4, got shape {list(matrix.shape)}"
        )
    if not np.isfinite(matrix).all():
        raise ConnectivityFormatError(f"pose must contain finite numbers, got {pose!r:.80}")
    matrix = matrix.reshape(4, 4)
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise ConnectivityFormatError(f"the last row of a pose must be 0, 0, 0, 1, got {matrix[3].tolist()}")

    rotation = matrix[:3, :3].copy()
    error = np.abs(rotation @ rotation.T - np.eye(3)).max()
    if error > ROTATION_TOLERANCE or np.linalg.det(rotation) < 0:
        raise ConnectivityFormatError(
            f"the upper-left 3x3 block of a pose must be a rotation; got {rotation.tolist()} "
            f"(R R^T differs from the identity by {error:.2g}, determinant {np.linalg.det(rotation):.3g})"
        )
    return rotation


def read_pose_rotation(connectivity_file: str | os.PathLike[str], viewpoint: str) -> np.ndarray:
    """Return the pose rotation [3, 3] of `viewpoint` from a `<scan>_connectivity.json` file.

    Raises:
        DataNotFoundError: the file does not exist.
        ConnectivityFormatError: the file is not a list of viewpoint entries, or the pose is malformed.
        UnknownViewpointError: no entry has `image_id` equal to `viewpoint`.
    """
    path = Path(connectivity_file)
    if not path.is_file():
        raise DataNotFoundError(f"connectivity file {path} not found")
    try:
        entries = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConnectivityFormatError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(entries, list):
        raise ConnectivityFormatError(f"{path}: expected a list of viewpoints, got {type(entries).__name__}")

    ids = []
    for entry in entries:
        if isinstance(entry, dict) and not isinstance(entry.get("image_id"), str):
            raise ConnectivityFormatError(
                f"{path}: every entry needs a string image_id, got {entry.get('image_id')!r}"
            )
        if isinstance(entry, dict) and entry["image_id"] == viewpoint:
            if "pose" not in entry:
                raise ConnectivityFormatError(f"{path}: viewpoint {viewpoint} has no pose")
            try:
                return pose_rotation(entry["pose"])
            except ConnectivityFormatError as error:
                raise ConnectivityFormatError(f"{path}: viewpoint {viewpoint}: {error}") from None
        if isinstance(entry, dict):
            ids.append(str(entry.get("image_id")))
    raise UnknownViewpointError(f"viewpoint {viewpoint!r} is not in {path}.{close_matches(viewpoint, ids)}")


# --- Cube maps and sampling plans ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CubeMap:
    """A skybox prepared for sampling: its six faces, padded, channels last.

    Each face (skybox0..5 order) gets a one-texel border copied from its own edge, so the
    four texels of any bilinear sample lie within the face, which is OpenGL's
    clamp-to-edge.
    """

    texels: torch.Tensor  # uint8 [6, S + 2, S + 2, 3], contiguous
    face_size: int  # S

    def __post_init__(self) -> None:
        # The compiled kernel indexes the texels without bounds checks, so their layout is
        # checked here, once.
        texels, size = self.texels, self.face_size
        if not isinstance(texels, torch.Tensor) or texels.dtype != torch.uint8 or not texels.is_contiguous():
            raise RenderInputError(
                f"CubeMap texels must be a contiguous uint8 tensor, got {_describe(texels)}"
            )
        if (
            not isinstance(size, int)
            or size < 1
            or tuple(texels.shape) != (SKYBOX_FACES, size + 2, size + 2, 3)
        ):
            raise RenderInputError(
                f"CubeMap texels must have shape [6, face_size + 2, face_size + 2, 3] with face_size >= 1; "
                f"got {list(texels.shape)} and face_size {size!r}. Build cube maps with CubeMap.from_faces"
            )

    @classmethod
    def from_faces(cls, faces: torch.Tensor, device: str | torch.device = "cpu") -> CubeMap:
        """Prepare uint8 faces [6, 3, S, S] (skybox0..5 order, as `load_skybox` returns them)."""
        if not isinstance(faces, torch.Tensor) or faces.dtype != torch.uint8:
            raise TypeError(f"faces must be a uint8 tensor [6, 3, S, S], got {_describe(faces)}")
        square = faces.dim() == 4 and faces.shape[2] == faces.shape[3] > 0
        if not square or faces.shape[:2] != (SKYBOX_FACES, 3):
            raise RenderInputError(f"faces must have shape [6, 3, S, S], got {list(faces.shape)}")
        faces = faces.to(device).permute(0, 2, 3, 1)  # [6, S, S, 3]
        # Edge padding by index: the rows, then the columns, of each face with its border.
        size = faces.shape[1]
        edge = torch.arange(-1, size + 1, device=faces.device).clamp_(0, size - 1)  # [S + 2]
        texels = faces.index_select(1, edge).index_select(2, edge).contiguous()  # [6, S + 2, S + 2, 3]
        return cls(texels=texels, face_size=size)

    @property
    def device(self) -> torch.device:
        """Device of the texels."""
        return self.texels.device


def camera_frames(headings: np.ndarray, elevations: np.ndarray) -> np.ndarray:
    """Return each camera's world axes as float64 [V, 3, 3]: rows forward, right, up.

    Angles are in radians; heading 0 looks along +y and grows towards +x, positive
    elevation looks up, z is up.
    """
    sin_h, cos_h = np.sin(headings), np.cos(headings)
    sin_e, cos_e = np.sin(elevations), np.cos(elevations)
    zero = np.zeros_like(sin_h)
    forward = np.stack([sin_h * cos_e, cos_h * cos_e, sin_e], axis=-1)
    right = np.stack([cos_h, -sin_h, zero], axis=-1)
    up = np.stack([-sin_e * sin_h, -sin_e * cos_h, cos_e], axis=-1)
    return np.stack([forward, right, up], axis=-2)


def discretized_angles() -> tuple[np.ndarray, np.ndarray]:
    """Return the heading and elevation in radians of views 0..35, each [36] float64.

    View index = heading step (30 degrees each) + 12 * elevation row, rows looking 30
    degrees down, level and 30 degrees up.
    """
    views = np.arange(DISCRETIZED_VIEWS)
    headings = (views % HEADING_STEPS) * VIEW_STEP_RAD
    elevations = (views // HEADING_STEPS - 1) * VIEW_STEP_RAD
    return headings, elevations


class CubeMapRenderer:
    """Renderer of perspective views of skybox cube maps, made to match the simulator's pixels.

    Output images match the Matterport3D Simulator's OpenGL renders within two colour
    levels, except for a few pixels on the seams between cube faces, where OpenGL picks
    either face.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        vfov_deg: vertical field of view in degrees; the horizontal one follows from the
            aspect ratio, as with OpenGL's perspective projection.
        device: where images are rendered ("cpu", "cuda", ...).
        backend: "numba" (CPU only), "torch" (any device), or "auto": "numba" on the CPU,
            "torch" elsewhere. See the module's documentation.
        cache_views: sampling plans the "torch" backend keeps, least recently used dropped
            first; 0 keeps none. A plan takes 32 bytes per pixel, 9.8 MB at 640x480.

    The "torch" backend keeps state (the plan cache), so use one renderer per thread.
    Calls of the "numba" backend from several threads run one after another.

    NOTE: only the CPU has been run. On CUDA the "torch" backend goes through PyTorch's
    sparse CSR product (cuSPARSE) and is untested against the simulator's renders.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        vfov_deg: float = 60.0,
        device: str | torch.device = "cpu",
        cache_views: int = 72,
        backend: RenderBackend = "auto",
    ) -> None:
        for name, value in (("width", width), ("height", height), ("cache_views", cache_views)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise RenderInputError(f"{name} must be an integer, got {value!r}")
        if width < 1 or height < 1:
            raise RenderInputError(f"image size must be positive, got {width}x{height}")
        if not isinstance(vfov_deg, numbers.Real) or not 0.0 < vfov_deg < 180.0:
            raise RenderInputError(f"vfov_deg must be a number in (0, 180) degrees, got {vfov_deg!r}")
        if cache_views < 0:
            raise RenderInputError(f"cache_views must be 0 or more, got {cache_views}")
        device = torch.device(device)
        if backend == "auto":
            backend = "numba" if device.type == "cpu" else "torch"
        elif backend not in ("numba", "torch"):
            raise RenderInputError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")
        if backend == "numba" and device.type != "cpu":
            raise RenderInputError(
                f"the numba backend renders on the CPU only, not on {device}; "
                "use backend='torch' (or 'auto') for other devices"
            )
        self.backend: Literal["numba", "torch"] = backend
        self.width, self.height, self.vfov_deg = int(width), int(height), float(vfov_deg)
        self.device = device
        self.cache_views = cache_views
        self._plans: OrderedDict[tuple, torch.Tensor] = OrderedDict()

        # Tangents of the angles between the optical axis and each pixel centre's ray:
        # right of the axis for columns, above it for rows (row 0 is the top).
        tan_half = math.tan(math.radians(self.vfov_deg) / 2.0)
        columns = (np.arange(self.width) + 0.5) / self.width * 2.0 - 1.0
        rows = 1.0 - (np.arange(self.height) + 0.5) / self.height * 2.0
        self._tan_right = columns * tan_half * self.width / self.height  # [W] float64
        self._tan_up = rows * tan_half  # [H] float64
        self._row_pointers: dict[int, torch.Tensor] = {}

    # --- public API ---

    def prepare(self, faces: torch.Tensor) -> CubeMap:
        """Prepare uint8 faces [6, 3, S, S] for repeated rendering on this renderer's device."""
        return CubeMap.from_faces(faces, self.device)

    def render(
        self,
        skybox: torch.Tensor | CubeMap | Sequence[CubeMap],
        rotation: np.ndarray | torch.Tensor,
        headings: float | Sequence[float] | np.ndarray,
        elevations: float | Sequence[float] | np.ndarray,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Render views of one or several skyboxes at any headings and elevations (radians).

        Args:
            skybox: uint8 faces [6, 3, S, S] (skybox0..5 order, see `load_skybox`) or a
                `CubeMap`; for a batch, uint8 [B, 6, 3, S, S] or a sequence of B `CubeMap`s.
            rotation: pose rotation [3, 3] (see `pose_rotation`), or [B, 3, 3] for a batch.
            headings: [V] radians, shared by the batch, or [B, V].
            elevations: [V] radians, shared by the batch, or [B, V].
            out: optional contiguous uint8 tensor of the result's shape on the renderer's
                device, written and returned. Reusing one saves allocating (and the
                operating system zeroing) a new image buffer per call.

        Returns:
            uint8 [V, 3, H, W] for one skybox, [B, V, 3, H, W] for a batch; RGB, row 0 at the top.
        """
        cube_maps, batched = self._cube_maps(skybox)
        batch = len(cube_maps)
        rotations = self._rotations(rotation, batch, batched)
        headings_rad = self._angles(headings, batch, "headings")
        elevations_rad = self._angles(elevations, batch, "elevations")
        if headings_rad.shape != elevations_rad.shape:
            raise RenderInputError(
                f"headings and elevations must have the same shape, got {list(headings_rad.shape)} "
                f"and {list(elevations_rad.shape)}"
            )

        views = headings_rad.shape[1]
        images = self._output(out, batch, views, batched)  # [B, V, 3, H, W]
        if self.backend == "numba":
            self._render_compiled(cube_maps, rotations, headings_rad, elevations_rad, images)
        else:
            self._render_sparse(cube_maps, rotations, headings_rad, elevations_rad, images)
        if out is not None:
            return out
        return images if batched else images[0]

    def render_discretized(
        self,
        skybox: torch.Tensor | CubeMap | Sequence[CubeMap],
        rotation: np.ndarray | torch.Tensor,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Render the simulator's 36 discretized views, in view-index order.

        Returns uint8 [36, 3, H, W] for one skybox, [B, 36, 3, H, W] for a batch (see `render`).
        """
        headings, elevations = discretized_angles()
        return self.render(skybox, rotation, headings, elevations, out=out)

    def clear_cache(self) -> None:
        """Drop all kept sampling plans."""
        self._plans.clear()

    # --- input checks ---

    def _cube_maps(self, skybox: torch.Tensor | CubeMap | Sequence[CubeMap]) -> tuple[list[CubeMap], bool]:
        if isinstance(skybox, CubeMap):
            cube_maps, batched = [skybox], False
        elif isinstance(skybox, torch.Tensor):
            if skybox.dim() == 4:
                cube_maps, batched = [self.prepare(skybox)], False
            elif skybox.dim() == 5:
                cube_maps, batched = [self.prepare(faces) for faces in skybox], True
            else:
                raise RenderInputError(
                    f"skybox must be uint8 [6, 3, S, S] or [B, 6, 3, S, S], got shape {list(skybox.shape)}"
                )
        elif isinstance(skybox, Sequence) and skybox and all(isinstance(c, CubeMap) for c in skybox):
            cube_maps, batched = list(skybox), True
        else:
            raise TypeError(
                f"skybox must be a uint8 tensor, a CubeMap or a sequence of CubeMaps, got {_describe(skybox)}"
            )
        for cube_map in cube_maps:
            if cube_map.device != self.device:
                raise RenderInputError(
                    f"cube map is on {cube_map.device} but the renderer on {self.device}; "
                    "prepare it with this renderer's `prepare`"
                )
        return cube_maps, batched

    def _output(self, out: torch.Tensor | None, batch: int, views: int, batched: bool) -> torch.Tensor:
        """Return the image buffer [B, V, 3, H, W]: `out` checked, or a new one."""
        shape = (batch, views, 3, self.height, self.width)
        if out is None:
            return torch.empty(shape, dtype=torch.uint8, device=self.device)
        expected = shape if batched else shape[1:]
        if not isinstance(out, torch.Tensor):
            raise RenderInputError(
                f"out must be a uint8 torch tensor {list(expected)} on {self.device}, got {_describe(out)}"
            )
        if out.shape != expected or out.dtype != torch.uint8 or out.device != self.device:
            raise RenderInputError(
                f"out must be uint8 {list(expected)} on {self.device}, got {out.dtype} {list(out.shape)} on {out.device}"
            )
        if not out.is_contiguous():
            raise RenderInputError("out must be contiguous")
        return out if batched else out.unsqueeze(0)

    @staticmethod
    def _rotations(rotation: np.ndarray | torch.Tensor, batch: int, batched: bool) -> np.ndarray:
        if isinstance(rotation, torch.Tensor):
            rotation = rotation.detach().cpu().numpy()
        rotations = np.asarray(rotation, dtype=np.float64)
        given_shape = rotations.shape
        if given_shape == (3, 3):
            rotations = np.broadcast_to(rotations, (batch, 3, 3))
        if rotations.shape != (batch, 3, 3) or (not batched and len(given_shape) != 2):
            expected = f"[{batch}, 3, 3] or [3, 3]" if batched else "[3, 3]"
            raise RenderInputError(f"rotation must have shape {expected}, got {list(given_shape)}")
        if not np.isfinite(rotations).all():
            raise RenderInputError(f"rotation must contain finite numbers, got {rotations.tolist()}")
        # A scaled, degenerate or mirrored matrix would sample the wrong texels, or none.
        error = np.abs(rotations @ rotations.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
        determinant = np.linalg.det(rotations)
        bad = np.flatnonzero((error > ROTATION_TOLERANCE) | (determinant < 0))
        if len(bad):
            b = int(bad[0])
            raise RenderInputError(
                f"rotation{f' {b}' if batched else ''} must be a rotation matrix (orthonormal within "
                f"{ROTATION_TOLERANCE}, determinant +1); got {rotations[b].tolist()}, whose R R^T differs from "
                f"the identity by {error[b]:.3g} and whose determinant is {determinant[b]:.3g}. "
                "Pass the pose's rotation as `pose_rotation` returns it"
            )
        return rotations

    @staticmethod
    def _angles(angles: float | Sequence[float] | np.ndarray, batch: int, name: str) -> np.ndarray:
        if isinstance(angles, torch.Tensor):
            angles = angles.detach().cpu().numpy()
        values = np.asarray(angles, dtype=np.float64)
        if values.ndim == 0:
            values = values.reshape(1)
        if values.ndim == 1:
            values = np.broadcast_to(values, (batch, values.shape[0]))
        if values.ndim != 2 or values.shape[0] != batch or values.shape[1] == 0:
            raise RenderInputError(
                f"{name} must have shape [V] or [{batch}, V] with V >= 1, got {list(np.shape(angles))}"
            )
        if not np.isfinite(values).all():
            raise RenderInputError(f"{name} must be finite radians")
        return values

    # --- backends ---

    def _render_compiled(
        self,
        cube_maps: list[CubeMap],
        rotations: np.ndarray,
        headings: np.ndarray,
        elevations: np.ndarray,
        images: torch.Tensor,
    ) -> None:
        """Render with the compiled kernel into images [B, V, 3, H, W] (CPU, contiguous)."""
        from envs.cube_kernel import render_views

        for b, cube_map in enumerate(cube_maps):
            along_row, along_column = self._ray_terms(rotations[b], headings[b], elevations[b])
            render_views(cube_map.texels.numpy(), along_row.numpy(), along_column.numpy(), images[b].numpy())

    def _render_sparse(
        self,
        cube_maps: list[CubeMap],
        rotations: np.ndarray,
        headings: np.ndarray,
        elevations: np.ndarray,
        images: torch.Tensor,
    ) -> None:
        """Render with sampling plans, one sparse-dense product per view, into images [B, V, 3, H, W]."""
        sampled = torch.empty((self.height * self.width, 3), device=self.device)  # [H * W, 3] float32
        pixels = torch.empty((self.height, self.width, 3), dtype=torch.uint8, device=self.device)  # [H, W, 3]
        for b, cube_map in enumerate(cube_maps):
            # Texel values carry +0.5, so truncating an interpolated value rounds it (the
            # four weights sum to 1).
            texels = cube_map.texels.reshape(-1, 3).to(torch.float32).add_(0.5)  # [6 * (S + 2) ** 2, 3]
            plans = self._plans_for(rotations[b], headings[b], elevations[b], cube_map.face_size)
            for v, plan in enumerate(plans):
                # addmm with beta=0 ignores the old contents of `sampled` and runs faster than
                # mm with out= (measured: about 20 % less CPU time with PyTorch 2.14).
                torch.addmm(sampled, plan, texels, beta=0.0, out=sampled)
                # Converting before the transpose moves a quarter of the bytes through the
                # strided copy.
                pixels.copy_(sampled.view(self.height, self.width, 3))
                images[b, v].copy_(pixels.permute(2, 0, 1))

    # --- sampling plans ---

    def _plans_for(
        self, rotation: np.ndarray, headings: np.ndarray, elevations: np.ndarray, face_size: int
    ) -> list[torch.Tensor]:
        """Return the plan of each view, taking kept ones and building the rest together."""
        rotation_key = rotation.tobytes()
        keys = [(rotation_key, float(h), float(e), face_size) for h, e in zip(headings, elevations)]
        plans: list[torch.Tensor | None] = [self._plans.get(key) for key in keys]
        missing = [i for i, plan in enumerate(plans) if plan is None]
        if missing:
            logger.debug("building %d sampling plans of %dx%d pixels", len(missing), self.width, self.height)
        # A few views at a time bound the memory: about 90 bytes per pixel and view while
        # building, of which the plan keeps 32.
        chunk = 4
        for start in range(0, len(missing), chunk):
            indices = missing[start : start + chunk]
            built = self._build_plans(rotation, headings[indices], elevations[indices], face_size)
            for i, plan in zip(indices, built):
                plans[i] = plan

        for key, plan in zip(keys, plans):
            if self.cache_views:
                self._plans[key] = plan
                self._plans.move_to_end(key)
        while len(self._plans) > self.cache_views:
            self._plans.popitem(last=False)
        return plans  # type: ignore[return-value]

    def _build_plans(
        self, rotation: np.ndarray, headings: np.ndarray, elevations: np.ndarray, face_size: int
    ) -> list[torch.Tensor]:
        """Build the sparse sampling matrices [H * W, 6 * (S + 2) ** 2] of a few views."""
        padded = face_size + 2
        if SKYBOX_FACES * padded * padded >= 2**31:
            # The plans index texels with int32.
            raise RenderInputError(
                f"faces of {face_size} pixels are too large for the torch backend (over 18,900); shrink "
                "them with downsize_faces or use the numba backend"
            )
        views, pixels = len(headings), self.height * self.width

        direction = self._cube_directions(rotation, headings, elevations)  # [3, V * H * W]
        first_texel, coordinates = self._face_coordinates(direction, face_size)  # [N], [2, N]
        first = coordinates.floor()  # [2, N]: column and row of the top-left texel

        # Rows of [1, column fraction, row fraction, their product]; the bilinear weights
        # of the four texels are linear in these.
        terms = torch.empty((4, views * pixels), device=self.device)  # [4, N]
        terms[0].fill_(1.0)
        torch.sub(coordinates, first, out=terms[1:3])
        torch.mul(terms[1], terms[2], out=terms[3])
        # Weights of the top-left, top-right, bottom-left and bottom-right texels.
        weights = terms.t() @ _bilinear_matrix(self.device)  # [N, 4]

        first = first.to(torch.int32)  # [2, N]
        top_left = first_texel.add_(first[1], alpha=padded).add_(first[0])  # [N] int32
        neighbours = torch.tensor([0, 1, padded, padded + 1], dtype=torch.int32, device=self.device)
        texel_index = top_left.unsqueeze(1) + neighbours  # [N, 4]

        texel_index = texel_index.view(views, pixels * 4)
        weights = weights.view(views, pixels * 4)
        size = (pixels, SKYBOX_FACES * padded * padded)
        row_pointers = self._row_pointer(pixels)
        with warnings.catch_warnings():
            # PyTorch flags its sparse CSR layout as beta; the operations used here are stable
            # and checked against the simulator's renders by the tests.
            warnings.filterwarnings(
                "ignore", message="Sparse CSR tensor support is in beta", category=UserWarning
            )
            # Each plan gets its own copy of its rows, so that a kept plan does not keep the
            # whole chunk alive.
            return [
                torch.sparse_csr_tensor(
                    row_pointers,
                    texel_index[v].clone(),
                    weights[v].clone(),
                    size=size,
                    check_invariants=False,
                )
                for v in range(views)
            ]

    def _ray_terms(
        self, rotation: np.ndarray, headings: np.ndarray, elevations: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the column and row terms of every pixel's cube-map direction.

        The direction of pixel (i, j) is -R^T (forward + tan_right[j] right + tan_up[i] up),
        so each of its components is a column term plus a row term: float32 [V, 3, W] and
        [V, 3, H], components x, y, z.
        """
        frames = camera_frames(headings, elevations)  # [V, 3, 3] float64
        coefficients = torch.from_numpy(-(frames @ rotation)).to(self.device, torch.float32)  # [V, term, xyz]
        tan_right = torch.from_numpy(self._tan_right).to(self.device, torch.float32)  # [W]
        tan_up = torch.from_numpy(self._tan_up).to(self.device, torch.float32)  # [H]
        along_row = coefficients[:, 0, :, None] + coefficients[:, 1, :, None] * tan_right  # [V, 3, W]
        along_column = coefficients[:, 2, :, None] * tan_up  # [V, 3, H]
        return along_row.contiguous(), along_column.contiguous()

    def _cube_directions(
        self, rotation: np.ndarray, headings: np.ndarray, elevations: np.ndarray
    ) -> torch.Tensor:
        """Return the cube-map direction of every pixel of the views: float32 [3, V * H * W]."""
        along_row, along_column = self._ray_terms(rotation, headings, elevations)
        views = along_row.shape[0]
        direction = torch.empty((3, views, self.height, self.width), device=self.device)  # [3, V, H, W]
        torch.add(
            along_row.permute(1, 0, 2)[:, :, None, :],
            along_column.permute(1, 0, 2)[:, :, :, None],
            out=direction,
        )
        return direction.view(3, -1)

    def _face_coordinates(self, direction: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick each direction's face and its texel coordinates, as OpenGL does.

        Returns the index of the face's first texel in the flattened `CubeMap.texels` (int32 [N]) and the
        (column, row) coordinates within the padded face (float32 [2, N]): OpenGL's s * S - 0.5
        and t * S - 0.5, plus one for the border, clamped to the face's own texels.
        """
        padded = size + 2

        # Major axis: the component of largest magnitude. On a tie (a cube edge) x wins over
        # y and y over z, a choice OpenGL leaves to the implementation.
        magnitude = direction.abs()  # [3, N]
        major = torch.maximum(torch.maximum(magnitude[0], magnitude[1]), magnitude[2])  # [N]
        not_x = (magnitude[0] != major).long()  # [N]
        not_y = (magnitude[1] != major).long()  # [N]
        axis = not_x.mul_(not_y.add_(1))  # [N] int64: 0 = x, 1 = y, 2 = z

        # The components that become s and t, and the signed major component; then the face
        # in OpenGL's order +x, -x, +y, -y, +z, -z.
        tables = _face_tables(self.device, padded)
        picked_component = torch.empty((3, direction.shape[1]), dtype=torch.int64, device=self.device)
        for row in range(3):
            torch.index_select(tables["component"][row], 0, axis, out=picked_component[row])
        picked = direction.gather(0, picked_component)  # [3, N]: s source, t source, signed major
        gl_face = axis.mul_(2).add_(picked[2] < 0)  # [N] int64, 0..5

        coordinates = picked[:2]  # [2, N]
        coordinates[0].mul_(tables["s_sign"].index_select(0, gl_face))
        coordinates[1].mul_(tables["t_sign"].index_select(0, gl_face))
        coordinates.mul_((size / 2.0) / major).add_((size + 1) / 2.0)
        coordinates.clamp_(0.5, size + 0.5)
        return tables["first_texel"].index_select(0, gl_face), coordinates

    def _row_pointer(self, pixels: int) -> torch.Tensor:
        pointers = self._row_pointers.get(pixels)
        if pointers is None:
            pointers = torch.arange(0, 4 * pixels + 1, 4, dtype=torch.int32, device=self.device)  # [H*W + 1]
            self._row_pointers[pixels] = pointers
        return pointers


def _face_tables(device: torch.device, padded: int) -> dict[str, torch.Tensor]:
    """Lookup tables of OpenGL's cube-map face selection.

    "component" (int64 [3, 3]) is indexed by the major axis (0 = x, 1 = y, 2 = z) and
    gives the ray components that become s and t, and the major axis itself. The other
    tables are indexed by the face (+x, -x, +y, -y, +z, -z): the signs of s and t, and
    the index of the face's first texel in the flattened `CubeMap.texels`.
    """
    component = [
        [_S_COMPONENT[2 * axis] for axis in range(3)],
        [_T_COMPONENT[2 * axis] for axis in range(3)],
        [0, 1, 2],
    ]
    first_texel = [face * padded * padded for face in GL_FACE_TO_SKYBOX]
    return {
        "component": torch.tensor(component, device=device),
        "s_sign": torch.tensor(_S_SIGN, dtype=torch.float32, device=device),
        "t_sign": torch.tensor(_T_SIGN, dtype=torch.float32, device=device),
        "first_texel": torch.tensor(first_texel, dtype=torch.int32, device=device),
    }


def _bilinear_matrix(device: torch.device) -> torch.Tensor:
    """Return the float32 [4, 4] matrix taking [1, fx, fy, fx * fy] to the bilinear weights of
    the top-left, top-right, bottom-left and bottom-right texels:
    (1 - fx)(1 - fy), fx (1 - fy), (1 - fx) fy, fx fy."""
    return torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [-1.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 1.0, 0.0], [1.0, -1.0, -1.0, 1.0]],
        device=device,
    )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {list(value.shape)}"
    return type(value).__name__
