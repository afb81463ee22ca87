"""CLIP feature extraction: views of many viewpoints through an encoder into a feature store.

Extraction writes a clipnav store through its resumable writer. Every batch of
viewpoints is flushed and recorded before the next starts, so a killed run started
again with the same command continues where it stopped. The store appears at its final
path only when complete. `--shard i/n` runs take every n-th viewpoint and
`merge_stores` joins their stores.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from connectivity.errors import ClipnavError
from envs.clip_encoder import ClipViewEncoder
from envs.features import VIEWS_PER_VIEWPOINT, feature_metadata, open_store_writer, shard_keys
from envs.features.clipnav_store import is_clipnav_folder, partial_path, read_keys, read_metadata
from envs.view_sources import ViewSource

logger = logging.getLogger(__name__)

# Metadata fields that must agree between a partial store and the run resuming it.
PROVENANCE_FIELDS = (
    "encoder",
    "pretrained",
    "checkpoint_sha256",
    "normalization",
    "image_w",
    "image_h",
    "vfov",
    "source",
    "view_source",
)


class ExtractionMismatchError(ClipnavError, ValueError):
    """A partial store was started by another encoder or with other views."""


@dataclass
class ExtractionStats:
    """Time spent by an extraction, by kind of work."""

    viewpoints: int = 0
    seconds: float = 0.0
    forward_seconds: float = 0.0  # inside the encoder's forward pass
    waiting_seconds: float = 0.0  # the forward pass waiting for the next batch of views
    first_batch_seconds: float = 0.0  # of which waiting for the first batch, before any forward pass
    loading_seconds: float = 0.0  # reading or rendering views, in the background thread
    preprocess_seconds: float = 0.0  # resizing, cropping and normalising, in the background thread

    @property
    def viewpoints_per_second(self) -> float:
        return self.viewpoints / self.seconds if self.seconds else float("nan")

    @property
    def share_outside_forward(self) -> float:
        return 1.0 - self.forward_seconds / self.seconds if self.seconds else float("nan")

    @property
    def share_outside_forward_after_first_batch(self) -> float:
        """The share once the pipeline runs: without the wait for the first batch, which a
        run pays once (loading it, and compiling or loading the rendering kernel)."""
        running = self.seconds - self.first_batch_seconds
        return 1.0 - self.forward_seconds / running if running > 0 else float("nan")


def _check_provenance(stored: dict[str, Any], planned: dict[str, Any], path: Path) -> None:
    differences = [
        f"{name}: {stored.get(name)!r} in the partial store, {planned.get(name)!r} now"
        for name in PROVENANCE_FIELDS
        if stored.get(name) != planned.get(name)
    ]
    if differences:
        raise ExtractionMismatchError(
            f"{path}: the unfinished store was started with other settings ({'; '.join(differences)}); "
            "rerun with the original settings, or delete its .partial folder to start again"
        )


def _check_finished_store(
    path: Path, keys: list[tuple[str, str]], dim: int, dtype: str, planned: dict[str, Any]
) -> None:
    stored = read_metadata(path)
    differences = [
        f"{name}: {stored.get(name)!r} in the store, {planned.get(name)!r} now"
        for name in PROVENANCE_FIELDS
        if stored.get(name) != planned.get(name)
    ]
    if int(stored.get("dim", -1)) != dim:
        differences.append(f"dim: {stored.get('dim')} in the store, {dim} now")
    if str(stored.get("dtype")) != dtype:
        differences.append(f"dtype: {stored.get('dtype')} in the store, {dtype} now")
    if read_keys(path) != [(str(scan), str(viewpoint)) for scan, viewpoint in keys]:
        differences.append("the viewpoints differ")
    if differences:
        raise ExtractionMismatchError(
            f"{path} exists and was made with other settings ({'; '.join(differences)}); "
            "delete it or choose another output"
        )


def extract_features(
    source: ViewSource,
    encoder: ClipViewEncoder,
    output: str | os.PathLike[str],
    batch_viewpoints: int = 4,
    shard: tuple[int, int] | None = None,
    dtype: str = "float16",
    keys: Sequence[tuple[str, str]] | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> tuple[Path | None, ExtractionStats]:
    """Encode the 36 views of every viewpoint of `source` into the clipnav store `output`.

    `encoder` is a `ClipViewEncoder` or any object with its `spec`, `dim`, `metadata()`,
    `preprocess_batch(images)` and `forward(pixels)`.

    Returns the finished store's path (None when `limit` stopped the run early, leaving a
    resumable partial store) and timing figures. Views are loaded and preprocessed one
    batch ahead in a background thread, so that work overlaps the forward pass.
    """
    all_keys = list(keys) if keys is not None else source.keys()
    planned = shard_keys(all_keys, *shard) if shard else all_keys
    if not planned:
        raise ClipnavError(f"no viewpoints to extract from {source.metadata().get('source')}")
    view_metadata = source.metadata()
    encoder_metadata = encoder.metadata()
    metadata = feature_metadata(
        encoder=encoder_metadata["encoder"],
        pretrained=encoder_metadata["pretrained"],
        checkpoint=encoder.spec.checkpoint,
        image_w=view_metadata["image_w"],
        image_h=view_metadata["image_h"],
        vfov=view_metadata["vfov"],
        normalization=encoder_metadata["normalization"],
        source=view_metadata["source"],
        view_source=view_metadata["views"],
        random_weights=encoder_metadata["random_weights"],
        preprocess=encoder_metadata["preprocess"],
        library=encoder_metadata["library"],
        shard=f"{shard[0]}/{shard[1]}" if shard else None,
    )
    if is_clipnav_folder(output) and not partial_path(output).exists():
        # A finished store from an earlier run: keep it only if this run would make it again.
        _check_finished_store(Path(output), planned, encoder.dim, dtype, metadata)
        logger.info("%s is already complete with these settings; nothing to extract", output)
        return Path(output), ExtractionStats()
    writer = open_store_writer(output, planned, encoder.dim, dtype, metadata)
    _check_provenance(writer.metadata, metadata, Path(output))
    pending = writer.pending_keys()
    if limit is not None:
        pending = pending[:limit]
    logger.info(
        "extracting %d of %d viewpoints with %s (%s) into %s",
        len(pending),
        len(planned),
        encoder_metadata["encoder"],
        encoder_metadata["pretrained"],
        output,
    )

    stats = ExtractionStats()
    # The first batch contains one viewpoint, so the forward pass starts as early as possible.
    batches = [pending[:1]] if pending else []
    batches += [pending[i : i + batch_viewpoints] for i in range(1, len(pending), batch_viewpoints)]
    bar = tqdm(total=len(planned), initial=writer.done_count, desc="extract", unit="vp", disable=not progress)
    start = time.perf_counter()

    def load(batch: list[tuple[str, str]]) -> torch.Tensor:
        # Runs in the background thread: torch and Pillow release the GIL while they work.
        loaded = time.perf_counter()
        images = torch.cat([source.load(scan, viewpoint) for scan, viewpoint in batch])  # [n * 36, 3, H, W]
        preprocessed = time.perf_counter()
        pixels = encoder.preprocess_batch(images)  # [n * 36, 3, S, S]
        stats.loading_seconds += preprocessed - loaded
        stats.preprocess_seconds += time.perf_counter() - preprocessed
        return pixels

    with ThreadPoolExecutor(max_workers=1) as loader:
        upcoming = loader.submit(load, batches[0]) if batches else None
        for index, batch in enumerate(batches):
            waited = time.perf_counter()
            pixels = upcoming.result()
            stats.waiting_seconds += time.perf_counter() - waited
            if index == 0:
                stats.first_batch_seconds = stats.waiting_seconds
            if index + 1 < len(batches):
                upcoming = loader.submit(load, batches[index + 1])

            encoded = time.perf_counter()
            features = encoder.forward(pixels)  # [n * 36, D]
            stats.forward_seconds += time.perf_counter() - encoded

            writer.write(batch, features.reshape(len(batch), VIEWS_PER_VIEWPOINT, -1).astype(np.float32))
            stats.viewpoints += len(batch)
            bar.update(len(batch))
    bar.close()
    stats.seconds = time.perf_counter() - start

    finished = writer.finish() if writer.is_complete else None
    writer.close()
    logger.info(
        "%d viewpoints in %.1f s (%.2f viewpoints/s, %.1f%% of the time outside the encoder)",
        stats.viewpoints,
        stats.seconds,
        stats.viewpoints_per_second,
        100 * stats.share_outside_forward,
    )
    return finished, stats
