"""Benchmark: end-to-end CLIP feature extraction with ViT-B/32 on the CPU.

In a temporary folder it builds a skybox folder of N viewpoints (copies of one
viewpoint's skybox under new ids, identity poses) and a folder of N viewpoints of
rendered views (copies of the real 36 views). It extracts features from each with a
ViT-B/32 of random weights, which runs the real architecture and code path without a
model hub. It prints viewpoints per second and where the time goes: the forward pass, the time it
waits for views, and the background thread's loading (decoding or rendering) and
preprocessing, which overlap the forward pass.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from connectivity import DataNotFoundError, resolve_data_dir
from envs.clip_encoder import ClipViewEncoder, EncoderSpec
from envs.extraction import ExtractionStats, extract_features
from envs.view_sources import SkyboxSource, ViewFolderSource
from scripts.common import add_common_arguments, positive_int, run_cli, setup_logging

TARGET_SHARE_OUTSIDE_FORWARD = 0.10
SKYBOX_SCAN = "synthIdentity"
SKYBOX_VIEWPOINT = "0" * 32


def skybox_folder(data_dir: Path, work: Path, viewpoints: int) -> tuple[Path, Path]:
    """Copy the reference skybox strip under `viewpoints` ids; return (skybox root, connectivity dir)."""
    strip = (
        data_dir
        / "mattersim_reference"
        / "renders"
        / "skyboxes"
        / SKYBOX_SCAN
        / f"{SKYBOX_VIEWPOINT}_skybox_small.jpg"
    )
    if not strip.is_file():
        raise DataNotFoundError(
            f"skybox strip {strip} not found; pass --data-dir pointing to a data folder that contains "
            "the simulator reference data (mattersim_reference/renders/skyboxes/) and views/"
        )
    root = work / "skyboxes" / SKYBOX_SCAN / "matterport_skybox_images"
    root.mkdir(parents=True)
    entries = []
    for index in range(viewpoints):
        viewpoint = f"{index:032x}"
        shutil.copy(strip, root / f"{viewpoint}_skybox_small.jpg")
        pose = [1.0, 0, 0, float(index), 0, 1.0, 0, 0, 0, 0, 1.0, 1.5, 0, 0, 0, 1.0]
        entries.append({"image_id": viewpoint, "pose": pose, "included": True, "height": 1.5})
    for entry in entries:
        entry["unobstructed"] = [False] * viewpoints
    graphs = work / "connectivity"
    graphs.mkdir()
    (graphs / "scans.txt").write_text(f"{SKYBOX_SCAN}\n")
    (graphs / f"{SKYBOX_SCAN}_connectivity.json").write_text(json.dumps(entries))
    return work / "skyboxes", graphs


def view_folder(data_dir: Path, work: Path, viewpoints: int) -> Path:
    """Copy the real 36 views under `viewpoints` viewpoint ids."""
    source = data_dir / "views" / "17DRP5sb8fy" / "10c252c90fa24ef3b698c6f54d984c5c"
    if not source.is_dir():
        raise DataNotFoundError(
            f"real views {source} not found; pass --data-dir pointing to a data folder with views/"
        )
    root = work / "views"
    for index in range(viewpoints):
        shutil.copytree(source, root / "17DRP5sb8fy" / f"{index:032x}")
    return root


def report(name: str, stats: ExtractionStats) -> None:
    outside = stats.share_outside_forward
    print(
        f"{name}: {stats.viewpoints} viewpoints in {stats.seconds:.1f} s = {stats.viewpoints_per_second:.3f} "
        f"viewpoints/s ({36 * stats.viewpoints_per_second:.1f} views/s)"
    )
    print(
        f"  forward pass {stats.forward_seconds:.1f} s, waiting for views {stats.waiting_seconds:.1f} s "
        f"(of which {stats.first_batch_seconds:.1f} s for the first batch)"
    )
    print(
        f"  outside the forward pass: {100 * outside:.1f}% of the wall time, "
        f"{100 * stats.share_outside_forward_after_first_batch:.1f}% after the first batch "
        f"(target under {100 * TARGET_SHARE_OUTSIDE_FORWARD:.0f}%)"
    )
    print(
        f"  background thread: loading {stats.loading_seconds:.1f} s, "
        f"preprocessing {stats.preprocess_seconds:.1f} s"
    )


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--viewpoints", type=positive_int, default=8, help="viewpoints per source")
    parser.add_argument(
        "--batch-viewpoints", type=positive_int, default=4, help="viewpoints per forward pass"
    )
    parser.add_argument("--model", default="ViT-B-32")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    data_dir = resolve_data_dir(args.data_dir)

    encoder = ClipViewEncoder(EncoderSpec(args.model, pretrained=None), "cpu")
    print(f"{args.model}, random weights, CPU with {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        skyboxes, graphs = skybox_folder(data_dir, work, args.viewpoints)
        views = view_folder(data_dir, work, args.viewpoints)  # checks both inputs before any run
        _, stats = extract_features(
            SkyboxSource(skyboxes, graphs),
            encoder,
            work / "skybox.clipnav",
            args.batch_viewpoints,
            progress=False,
        )
        report("skyboxes (rendered)", stats)
        _, stats = extract_features(
            ViewFolderSource(views), encoder, work / "views.clipnav", args.batch_viewpoints, progress=False
        )
        report("view images (JPEG)", stats)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
