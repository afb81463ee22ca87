"""Extract CLIP view features of Matterport3D viewpoints with any open_clip model.

Views come from skyboxes (--skyboxes, rendered like the simulator: 36 views, 640x480,
60 degree vertical field of view) or from folders of rendered views (--views,
<root>/<scan>/<viewpoint>/<view index>.jpg). The output is a clipnav store, or a TSV or
HDF5 file converted from it at the end (by suffix or --format). A killed run resumes
when started again with the same command; --shard i/n splits the work between
processes, and clipnav-merge-features joins the shards.

CLIP-ViL's CLIP ViT-B/32 view features (not normalised) from the Matterport3D skyboxes:
    python -m scripts.extract_features --skyboxes <v1/scans> --model ViT-B-32 \\
        --pretrained openai --out clip_vit_b32.tsv
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from agent.run_record import choose_device
from connectivity import connectivity_dir
from envs.clip_encoder import ClipViewEncoder, EncoderSpec
from envs.extraction import extract_features
from envs.features import convert_features, parse_shard
from envs.view_sources import SkyboxSource, ViewFolderSource
from scripts.common import add_common_arguments, non_negative_int, positive_int, run_cli, setup_logging

logger = logging.getLogger("clipnav.extract_features")

OUTPUT_FORMATS = {".tsv": "tsv", ".h5": "hdf5", ".hdf5": "hdf5", ".clipnav": "clipnav"}


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--skyboxes", type=Path, help="folder of <scan>/ skybox images (Matterport3D layout)")
    source.add_argument("--views", type=Path, help="folder of <scan>/<viewpoint>/<view index>.jpg images")
    parser.add_argument("--out", type=Path, required=True, help="output store: .clipnav folder, .tsv or .h5")
    parser.add_argument("--format", choices=sorted(set(OUTPUT_FORMATS.values())), help="output format")
    parser.add_argument(
        "--model", default="ViT-B-32", help="open_clip model name (ViT-B-32, RN50x4, ViT-L-14-336)"
    )
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--pretrained", default="openai", help="open_clip pretrained tag (needs a model hub)"
    )
    weights.add_argument("--checkpoint", help="local checkpoint file of the model's weights")
    weights.add_argument(
        "--random-weights", action="store_true", help="random weights, for tests and benchmarks"
    )
    parser.add_argument("--normalize", action="store_true", help="L2-normalise each feature")
    parser.add_argument(
        "--batch-viewpoints", type=positive_int, default=4, help="viewpoints per forward pass"
    )
    parser.add_argument("--shard", help="work on shard i/n of the viewpoints (0-based i), e.g. 0/4")
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16", help="stored precision")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto; CUDA runs the model in float16")
    parser.add_argument("--scans", help="comma-separated scans to extract (default: all found)")
    parser.add_argument("--width", type=positive_int, default=640, help="view width in pixels")
    parser.add_argument("--height", type=positive_int, default=480, help="view height in pixels")
    parser.add_argument("--vfov", type=float, default=60.0, help="vertical field of view in degrees")
    parser.add_argument(
        "--skybox-size",
        type=non_negative_int,
        default=512,
        help="shrink larger skybox faces to this many pixels, as the simulator's downsizing script "
        "does for the 1024-pixel _sami.jpg faces; 0 renders them as they are (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    if args.format is None and args.out.suffix not in ("", *OUTPUT_FORMATS):
        parser.error(
            f"--out {args.out}: unknown suffix {args.out.suffix!r}; use .clipnav, .tsv, .h5 or .hdf5, "
            "or name the format with --format"
        )
    output_format = args.format or OUTPUT_FORMATS.get(args.out.suffix, "clipnav")
    shard = parse_shard(args.shard) if args.shard else None
    if shard and output_format != "clipnav":
        parser.error("shards are written as clipnav stores: merge them, then convert the merged store")
    device = choose_device(args.device)
    scans = args.scans.split(",") if args.scans else None

    if args.skyboxes is not None:
        views = SkyboxSource(
            args.skyboxes,
            connectivity_dir(args.data_dir),
            scans,
            args.width,
            args.height,
            args.vfov,
            device,
            face_size=args.skybox_size or None,
        )
    else:
        views = ViewFolderSource(args.views, args.width, args.height, args.vfov)
    keys = views.keys()
    if scans is not None:
        keys = [key for key in keys if key[0] in scans]

    pretrained = None if args.random_weights or args.checkpoint else args.pretrained
    encoder = ClipViewEncoder(EncoderSpec(args.model, pretrained, args.checkpoint, args.normalize), device)
    store = args.out if output_format == "clipnav" else args.out.with_name(args.out.name + ".clipnav")
    finished, stats = extract_features(views, encoder, store, args.batch_viewpoints, shard, args.dtype, keys)
    if stats.viewpoints:
        print(
            f"{stats.viewpoints} viewpoints in {stats.seconds:.1f} s: {stats.viewpoints_per_second:.2f} "
            f"viewpoints/s, {100 * stats.share_outside_forward:.1f}% of the time outside the encoder"
        )
    if finished is not None and output_format != "clipnav":
        convert_features(finished, args.out, format=output_format, progress=True)
        print(f"converted {finished} to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0, or 2 with a message for invalid input."""
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
