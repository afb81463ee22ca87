"""Compiled CPU kernel that renders perspective views of a cube map in one pass.

`CubeMapRenderer` uses it on the CPU. For each output pixel the kernel computes the ray,
picks the cube-map face as OpenGL does, and blends four texels bilinearly, so nothing
per pixel is stored between views. Numba compiles it on first use (1 to 2 seconds) and
caches the machine code next to this file, or in its user cache when this folder is
read-only. Where neither is writable, each process compiles it again.

The arithmetic follows `CubeMapRenderer`'s sparse path step for step in float32, so the
two agree within one colour level.
"""

from __future__ import annotations

import logging
import os
import threading

import numba
import numpy as np
import torch

_F32 = np.float32

# Numba's own thread pool, unless the user picked one with NUMBA_THREADING_LAYER. The
# OpenMP pool that Numba would otherwise take shares GNU OpenMP with PyTorch: its first
# launch resets PyTorch's thread count, and a process forked after it (a DataLoader
# worker, say) is terminated when it renders. Numba's own pool renders about 15% slower
# on a 2-core machine.
# NOTE: the choice holds for the whole process. Other Numba code with parallel=True that
# runs in another thread while a view renders aborts the process under this pool; such
# programs should set NUMBA_THREADING_LAYER=omp (and then not fork after rendering).
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# That pool aborts the process when two threads launch parallel kernels at the same time.
# The kernel already uses every thread it is given, so calls take turns.
_launch_lock = threading.Lock()

# A fork waits for a running render, so that the child never inherits the lock taken or
# the pool in the middle of a kernel.
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(
        before=_launch_lock.acquire,
        after_in_parent=_launch_lock.release,
        after_in_child=_launch_lock.release,
    )

logger = logging.getLogger(__name__)


def _render_views_python(texels, along_row, along_column, out):  # pragma: no cover - compiled code
    """Fill out[v, c, i, j] for every view v, channel c, row i and column j.

    texels: uint8 [6, S + 2, S + 2, 3], skybox0..5 faces padded with their own edge.
    along_row: float32 [V, 3, W], the x, y, z of each column's term of the cube-map ray.
    along_column: float32 [V, 3, H], the same for each row; a pixel's ray is their sum.
    out: uint8 [V, 3, H, W].
    """
    views, width = along_row.shape[0], along_row.shape[2]
    height = along_column.shape[2]
    size = texels.shape[1] - 2
    half = _F32(size / 2.0)
    centre = _F32((size + 1) / 2.0)
    lowest = _F32(0.5)
    highest = _F32(size + 0.5)
    # One task per image row. Consecutive tasks run across the views, so that each thread
    # of the pool's equal shares gets a similar mix of upward, level and downward rows.
    for task in numba.prange(views * height):
        i = task // views
        v = task - i * views
        row_x = along_column[v, 0, i]
        row_y = along_column[v, 1, i]
        row_z = along_column[v, 2, i]
        for j in range(width):
            x = along_row[v, 0, j] + row_x
            y = along_row[v, 1, j] + row_y
            z = along_row[v, 2, j] + row_z
            abs_x, abs_y, abs_z = abs(x), abs(y), abs(z)
            major = max(max(abs_x, abs_y), abs_z)
            # OpenGL's face selection; on a tie x wins over y and y over z. Faces are
            # numbered as skybox images: +x = 2, -x = 4, +y = 0, -y = 5, +z = 1, -z = 3.
            if abs_x == major:
                t = -y
                if x >= 0:
                    face, s = 2, -z
                else:
                    face, s = 4, z
            elif abs_y == major:
                s = x
                if y >= 0:
                    face, t = 0, z
                else:
                    face, t = 5, -z
            else:
                t = -y
                if z >= 0:
                    face, s = 1, x
                else:
                    face, s = 3, -x
            scale = half / major
            column = s * scale + centre
            row = t * scale + centre
            # Clamp to the face's own texels; written so that NaN would clamp too.
            if not column >= lowest:
                column = lowest
            elif column > highest:
                column = highest
            if not row >= lowest:
                row = lowest
            elif row > highest:
                row = highest
            left = int(column)  # floor: the coordinates are positive
            top = int(row)
            fx = column - _F32(left)
            fy = row - _F32(top)
            w11 = fx * fy
            w01 = fx - w11
            w10 = fy - w11
            w00 = _F32(1.0) - fx - fy + w11
            for c in range(3):
                value = (
                    w00 * _F32(texels[face, top, left, c])
                    + w01 * _F32(texels[face, top, left + 1, c])
                    + w10 * _F32(texels[face, top + 1, left, c])
                    + w11 * _F32(texels[face, top + 1, left + 1, c])
                )
                out[v, c, i, j] = np.uint8(value + _F32(0.5))  # truncation rounds


_COMPILE_OPTIONS = {"parallel": True, "boundscheck": False, "nogil": True}
try:
    _render_views = numba.njit(cache=True, **_COMPILE_OPTIONS)(_render_views_python)
except RuntimeError as error:
    # Neither this folder nor Numba's user cache is writable (a read-only container, for
    # example): compile in every process instead.
    logger.warning("%s; the rendering kernel is compiled without a cache", error)
    _render_views = numba.njit(cache=False, **_COMPILE_OPTIONS)(_render_views_python)


def render_views(
    texels: np.ndarray, along_row: np.ndarray, along_column: np.ndarray, out: np.ndarray
) -> None:
    """Render views into `out` with as many threads as PyTorch uses.

    texels: uint8 [6, S + 2, S + 2, 3]; along_row: float32 [V, 3, W]; along_column:
    float32 [V, 3, H]; out: uint8 [V, 3, H, W]; all C-contiguous (see
    `_render_views_python`). Calls from several threads run one after another.

    Raises:
        ValueError: an array has another shape, dtype or layout.
    """
    _check_arrays(texels, along_row, along_column, out)
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    with _launch_lock:
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            _render_views(texels, along_row, along_column, out)
        finally:
            numba.set_num_threads(previous)


def _check_arrays(
    texels: np.ndarray, along_row: np.ndarray, along_column: np.ndarray, out: np.ndarray
) -> None:
    arrays = {"texels": (texels, np.uint8), "along_row": (along_row, np.float32)}
    arrays |= {"along_column": (along_column, np.float32), "out": (out, np.uint8)}
    for name, (array, dtype) in arrays.items():
        if not isinstance(array, np.ndarray) or array.dtype != dtype or not array.flags.c_contiguous:
            raise ValueError(
                f"{name} must be a C-contiguous {np.dtype(dtype).name} array, got {_describe(array)}"
            )
    padded = texels.shape[1] if texels.ndim == 4 else 0
    if texels.shape != (6, padded, padded, 3) or padded < 3:
        raise ValueError(f"texels must have shape [6, S + 2, S + 2, 3] with S >= 1, got {list(texels.shape)}")
    if along_row.ndim != 3 or along_column.ndim != 3:
        raise ValueError(
            f"along_row and along_column must be [V, 3, W] and [V, 3, H], got {list(along_row.shape)} "
            f"and {list(along_column.shape)}"
        )
    views, width, height = along_row.shape[0], along_row.shape[2], along_column.shape[2]
    shapes = {
        "along_row": (along_row, (views, 3, width)),
        "along_column": (along_column, (views, 3, height)),
        "out": (out, (views, 3, height, width)),
    }
    for name, (array, shape) in shapes.items():
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(array.shape)}")


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {list(value.shape)}"
    return type(value).__name__
