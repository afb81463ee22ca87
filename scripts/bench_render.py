"""Benchmark: 640x480 views per second rendered from Matterport3D skyboxes by `CubeMapRenderer`.

The skybox is loaded and prepared (converted to float texels) before timing, as the C++
simulator's figure assumes its texture already uploaded. Each timed call renders the 36
discretized views of one viewpoint, or of a batch of viewpoints at once. Two figures are
measured: with the viewpoints' sampling plans kept from an earlier call (rendering the
same viewpoints again), and with the plans built in the call (a viewpoint seen for the
first time).

The skybox comes from the simulator reference data, `mattersim_reference/renders/skyboxes/`
in the data folder. The batch renders it with the real poses of the first viewpoints of
scan 17DRP5sb8fy, so each viewpoint of the batch has its own plans.

The C++ Matterport3D Simulator renders about 590 views per second with OSMesa at 640x480
on a 2-core machine of the kind these figures come from, with the skybox loaded.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from connectivity import DataNotFoundError, resolve_data_dir
from envs.rendering import (
    DISCRETIZED_VIEWS,
    CubeMapRenderer,
    RenderInputError,
    load_skybox,
    pose_rotation,
    read_pose_rotation,
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
        help="CPU threads for torch (default: torch's own choice)",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    data_dir = resolve_data_dir(args.data_dir)
    skyboxes = data_dir / "mattersim_reference" / "renders" / "skyboxes"
    if not skyboxes.is_dir():
        raise DataNotFoundError(
            f"skybox folder {skyboxes} not found; pass --data-dir pointing to a data folder that "
            "contains the simulator reference data (mattersim_reference/renders/skyboxes/)"
        )
    connectivity_file = data_dir / "connectivity" / f"{SCAN}_connectivity.json"
    faces = load_skybox(skyboxes, SCAN, VIEWPOINT)
    rotation = read_pose_rotation(connectivity_file, VIEWPOINT)
    rotations = batch_rotations(connectivity_file, args.batch)
    views = DISCRETIZED_VIEWS

    # Plans kept: room for every view of the batch (9.8 MB per view). The images go to a
    # new tensor per call, or to one reused buffer.
    cached = CubeMapRenderer(device=args.device, cache_views=views * args.batch)
    cube_map = cached.prepare(faces)
    cube_maps = [cube_map] * args.batch
    single_out = cached.render_discretized(cube_map, rotation)
    batch_out = cached.render_discretized(cube_maps, rotations)
    single_cached = views_per_second(
        lambda: cached.render_discretized(cube_map, rotation), views, args.repeats
    )
    single_reused = views_per_second(
        lambda: cached.render_discretized(cube_map, rotation, out=single_out), views, args.repeats
    )
    batch_cached = views_per_second(
        lambda: cached.render_discretized(cube_maps, rotations), views * args.batch, args.repeats
    )
    batch_reused = views_per_second(
        lambda: cached.render_discretized(cube_maps, rotations, out=batch_out),
        views * args.batch,
        args.repeats,
    )

    # Plans built in every call.
    uncached = CubeMapRenderer(device=args.device, cache_views=0)
    single_built = views_per_second(
        lambda: uncached.render_discretized(cube_map, rotation), views, args.repeats
    )
    batch_built = views_per_second(
        lambda: uncached.render_discretized(cube_maps, rotations), views * args.batch, args.repeats
    )

    device = torch.device(args.device)
    threads = f"{torch.get_num_threads()} CPU threads" if device.type == "cpu" else str(device)
    print(
        f"CubeMapRenderer, 640x480, 60 deg vertical field of view, {threads}, skybox faces of {faces.shape[-1]}"
    )
    rows = [
        ("1 viewpoint, plans kept, new output", single_cached),
        ("1 viewpoint, plans kept, output reused", single_reused),
        (f"{args.batch} viewpoints per call, plans kept, new output", batch_cached),
        (f"{args.batch} viewpoints per call, plans kept, output reused", batch_reused),
        ("1 viewpoint, plans built in the call, new output", single_built),
        (f"{args.batch} viewpoints per call, plans built in the call, new output", batch_built),
    ]
    for name, rate in rows:
        print(f"{name}: {rate:,.0f} views/s ({rate / CPP_VIEWS_PER_SECOND:.2f}x the C++ simulator)")
    print(f"C++ simulator with OSMesa, reference figure: about {CPP_VIEWS_PER_SECOND} views/s (2 cores)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
