"""Benchmark: 640x480 views per second rendered from Matterport3D skyboxes by `CubeMapRenderer`.

The skybox is loaded and prepared (padded texels) before timing, as the C++ simulator's
figure assumes its texture already uploaded. Each timed call renders the 36 discretized
views of one viewpoint, or of a batch of viewpoints at once, with each backend:

- "numba", the compiled kernel (the CPU default), which needs nothing per viewpoint;
- "torch", the sparse product, with the viewpoints' sampling plans kept from an earlier
  call (the same viewpoints rendered again) and with the plans built in the call (a
  viewpoint seen for the first time).

The skybox comes from the simulator reference data, `mattersim_reference/renders/skyboxes/`
in the data folder. It is rendered with the real poses of the first viewpoints of scan
17DRP5sb8fy, so each viewpoint of a batch has its own rotation.

The C++ Matterport3D Simulator renders about 590 views per second with OSMesa at 640x480
on a 2-core machine of the kind these figures come from, with the skybox loaded.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numba
import numpy as np
import torch

from connectivity import DataNotFoundError, resolve_data_dir
from envs.rendering import (
    DISCRETIZED_VIEWS,
    CubeMapRenderer,
    RenderInputError,
    load_skybox,
    pose_rotation,
)
from scripts.benchmarking import best_time
from scripts.common import add_common_arguments, positive_int, run_cli, setup_logging

CPP_VIEWS_PER_SECOND = 590
SCAN = "17DRP5sb8fy"
VIEWPOINT = "10c252c90fa24ef3b698c6f54d984c5c"


def batch_rotations(connectivity_file: Path, count: int) -> np.ndarray:
    """Return the pose rotations of the first `count` viewpoints of a connectivity file: [count, 3, 3]."""
    entries = json.loads(connectivity_file.read_text())
    if len(entries) < count:
        raise RenderInputError(
            f"--batch {count} exceeds the {len(entries)} viewpoints of {connectivity_file}; pass a smaller --batch"
        )
    return np.stack([pose_rotation(entry["pose"]) for entry in entries[:count]])


def views_per_second(render: Callable[[], torch.Tensor], views: int, repeats: int) -> float:
    """Return `views` divided by the best wall time of `repeats` calls of `render`."""

    def render_and_wait() -> None:
        images = render()
        if images.is_cuda:
            # CUDA kernels run asynchronously, so wait for them before the clock stops.
            torch.cuda.synchronize(images.device)

    return views / best_time(render_and_wait, repeats)


def backend_rates(
    backend: str, device: torch.device, faces: torch.Tensor, rotations: np.ndarray, repeats: int
) -> list[tuple[str, float]]:
    """Time one backend on the first viewpoint alone, then on the whole batch; return (case, views/s) rows."""
    views, batch = DISCRETIZED_VIEWS, len(rotations)
    # Room for the plans of every view of the batch (9.8 MB per view) in the torch backend.
    renderer = CubeMapRenderer(device=device, cache_views=views * batch, backend=backend)
    cube_map = renderer.prepare(faces)
    cube_maps = [cube_map] * batch
    single_out = renderer.render_discretized(cube_map, rotations[0])
    batch_out = renderer.render_discretized(cube_maps, rotations)
    plans_note = ", plans kept" if backend == "torch" else ""

    rows = [
        (
            f"{backend}: 1 viewpoint{plans_note}, new output",
            views_per_second(lambda: renderer.render_discretized(cube_map, rotations[0]), views, repeats),
        ),
        (
            f"{backend}: 1 viewpoint{plans_note}, output reused",
            views_per_second(
                lambda: renderer.render_discretized(cube_map, rotations[0], out=single_out), views, repeats
            ),
        ),
        (
            f"{backend}: {batch} viewpoints per call{plans_note}, output reused",
            views_per_second(
                lambda: renderer.render_discretized(cube_maps, rotations, out=batch_out),
                views * batch,
                repeats,
            ),
        ),
    ]
    if backend == "torch":
        uncached = CubeMapRenderer(device=device, cache_views=0, backend=backend)
        rows.append(
            (
                f"{backend}: {batch} viewpoints per call, plans built in the call, output reused",
                views_per_second(
                    lambda: uncached.render_discretized(cube_maps, rotations, out=batch_out),
                    views * batch,
                    repeats,
                ),
            )
        )
    return rows


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--device", default="cpu", help="torch device to render on (cpu, cuda, ...)")
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="timed calls per figure; the best counts"
    )
    parser.add_argument("--batch", type=positive_int, default=4, help="viewpoints rendered in one call")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for both backends (default: torch's own choice)",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise RenderInputError(
            f"--device {args.device!r} is not a torch device ({error}); use cpu or cuda"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RenderInputError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    data_dir = resolve_data_dir(args.data_dir)
    skyboxes = data_dir / "mattersim_reference" / "renders" / "skyboxes"
    if not skyboxes.is_dir():
        raise DataNotFoundError(
            f"skybox folder {skyboxes} not found; pass --data-dir pointing to a data folder that "
            "contains the simulator reference data (mattersim_reference/renders/skyboxes/)"
        )
    connectivity_file = data_dir / "connectivity" / f"{SCAN}_connectivity.json"
    faces = load_skybox(skyboxes, SCAN, VIEWPOINT)
    rotations = batch_rotations(connectivity_file, args.batch)

    backends = ["numba", "torch"] if device.type == "cpu" else ["torch"]
    rows = [
        row for backend in backends for row in backend_rates(backend, device, faces, rotations, args.repeats)
    ]

    # The kernel takes as many threads as PyTorch, up to Numba's pool.
    kernel_threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    threads = (
        f"{torch.get_num_threads()} PyTorch threads, {kernel_threads} kernel threads"
        if device.type == "cpu"
        else str(device)
    )
    print(
        f"CubeMapRenderer, 640x480, 60 deg vertical field of view, {threads}, skybox faces of {faces.shape[-1]}"
    )
    for name, rate in rows:
        print(f"{name}: {rate:,.0f} views/s ({rate / CPP_VIEWS_PER_SECOND:.2f}x the C++ simulator)")
    print(f"C++ simulator with OSMesa, reference figure: about {CPP_VIEWS_PER_SECOND} views/s (2 cores)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
