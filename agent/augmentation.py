"""Back-translation data: sampled paths in the training houses with speaker-written instructions.

`sample_paths` draws shortest paths of 4 to 6 hops (5 to 7 viewpoints, the length of all
but 17 of the 5,798 paths of R2R's train, val_seen and val_unseen files), at least 5 m
from start to goal like all of them, between included viewpoints of the given scans. `generate_instructions` has a trained speaker describe
them. `augment` does both and writes an R2R-format file, which
`FollowerTrainingSettings.augmented` reads.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from agent.speaker import Speaker, generated_tokens, path_batches
from agent.speaker_training import load_speaker
from connectivity import Connectivity, ScanGraph
from connectivity.errors import ClipnavError
from envs.episodes import Episode, Split
from envs.io import write_json_atomic
from envs.r2r import read_r2r_file
from envs.r2r_env import R2RVectorEnv
from envs.world import NavigationWorld

logger = logging.getLogger(__name__)

DECODINGS = ("greedy", "sample")
PATHS_SPLIT = "augmentation_paths"
"""Name of the in-memory split that contains the sampled paths while the speaker describes them."""


class AugmentationError(ClipnavError, ValueError):
    """Augmented paths cannot be sampled or numbered as requested."""


@dataclass(frozen=True)
class AugmentationSettings:
    """Settings of path sampling and of the speaker that describes the paths."""

    split: str = "train"
    """Split whose scans the paths are sampled in."""
    min_hops: int = 4
    """Minimum number of edges of a sampled path."""
    max_hops: int = 6
    """Most edges of a sampled path."""
    min_distance_m: float = 5.0
    """Shortest start-to-goal distance in metres of a kept path. Every path of R2R's train, val_seen and val_unseen files is at least 5 m long. 0 keeps every path of an allowed hop count."""
    seed: int = 0
    """Seed of the path sampling, the start headings and sampled decoding."""
    decoding: str = "greedy"
    """greedy (argmax words) or sample (words drawn from the speaker's softmax)."""
    instructions_per_path: int = 1
    """Instructions generated per path; more than 1 needs decoding=sample."""
    max_decode_length: int = 0
    """Words generated at most per instruction; 0 takes the speaker's training setting."""
    batch_size: int = 64
    """Paths described per batch."""
    path_id_offset: int = 1_000_000
    """path_id of the first augmented path; must exceed every path_id of the data folder's R2R files."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, or auto (CUDA when present)."""
    force_features: bool = False
    """Generate with features that differ from the speaker's training features."""

    def __post_init__(self) -> None:
        if self.min_hops < 1 or self.max_hops < self.min_hops:
            raise ValueError(
                f"expected 1 <= min_hops <= max_hops, got min_hops={self.min_hops}, max_hops={self.max_hops}"
            )
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, got {self.decoding!r}")
        if self.instructions_per_path < 1:
            raise ValueError(f"instructions_per_path must be at least 1, got {self.instructions_per_path}")
        if self.instructions_per_path > 1 and self.decoding != "sample":
            raise ValueError(
                f"instructions_per_path={self.instructions_per_path} needs decoding=sample: greedy "
                "decoding writes the same instruction every time"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_decode_length < 0:
            raise ValueError(f"max_decode_length must be at least 0, got {self.max_decode_length}")
        if not math.isfinite(self.min_distance_m) or self.min_distance_m < 0:
            raise ValueError(f"min_distance_m must be a finite number >= 0, got {self.min_distance_m}")


@dataclass(frozen=True)
class SampledPath:
    """One augmented path: the viewpoints of a shortest path and a start heading."""

    scan: str
    path: tuple[str, ...]
    heading: float  # radians in [0, 2 pi)
    distance: float  # metres along the path


def shortest_path_hops(graph: ScanGraph) -> np.ndarray:
    """Return `hops[goal, here]`, the edges on the shortest path from `here` to `goal`; -1 where unreachable.

    The paths are those of `graph.shortest_path`, so `len(graph.shortest_path(a, b)) - 1`
    equals `hops[index(b), index(a)]`.
    """
    next_hops = graph.next_hops
    size = len(graph)
    hops = np.full((size, size), -1, dtype=np.int64)
    np.fill_diagonal(hops, 0)
    reachable = next_hops >= 0
    # Each pass settles the viewpoints one hop further from each goal than the last pass.
    while True:
        goal, here = np.nonzero(reachable & (hops < 0))
        if len(goal) == 0:
            break
        following = next_hops[goal, here]
        settled = hops[goal, following] >= 0
        if not settled.any():
            raise RuntimeError(f"scan {graph.scan}: the shortest-path tree has a cycle")
        hops[goal[settled], here[settled]] = hops[goal[settled], following[settled]] + 1
    return hops


def _eligible_pairs(
    graph: ScanGraph, min_hops: int, max_hops: int, min_distance_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return (start, goal) viewpoint indices of the paths that `sample_paths` may draw in one scan."""
    hops = shortest_path_hops(graph).T  # [start, goal]
    included = graph.included[:, None] & graph.included[None, :]
    allowed = included & (hops >= min_hops) & (hops <= max_hops) & (graph.distances >= min_distance_m)
    starts, goals = np.nonzero(allowed)
    return starts, goals


def sample_paths(
    connectivity: Connectivity,
    scans: Sequence[str],
    count: int,
    seed: int = 0,
    min_hops: int = 4,
    max_hops: int = 6,
    min_distance_m: float = 5.0,
) -> list[SampledPath]:
    """Draw `count` distinct shortest paths of `min_hops` to `max_hops` edges in `scans`.

    Every ordered pair of included viewpoints (start, goal) whose shortest path has an
    allowed number of edges, and is at least `min_distance_m` long, is equally likely.
    No pair is drawn twice, so no path repeats. Each path gets a start heading drawn
    uniformly from [0, 2 pi). The same arguments give the same paths in the same order.
    Raises AugmentationError when fewer than `count` paths exist.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    ordered_scans = sorted(set(scans))
    scan_column, start_column, goal_column = [], [], []
    for position, scan in enumerate(ordered_scans):
        starts, goals = _eligible_pairs(connectivity[scan], min_hops, max_hops, min_distance_m)
        scan_column.append(np.full(len(starts), position, dtype=np.int64))
        start_column.append(starts)
        goal_column.append(goals)
    scan_index = np.concatenate(scan_column) if scan_column else np.zeros(0, dtype=np.int64)
    start_index = np.concatenate(start_column) if start_column else np.zeros(0, dtype=np.int64)
    goal_index = np.concatenate(goal_column) if goal_column else np.zeros(0, dtype=np.int64)
    available = len(scan_index)
    if available < count:
        raise AugmentationError(
            f"{len(ordered_scans)} scans hold {available} distinct shortest paths of {min_hops} to "
            f"{max_hops} hops (at least {min_distance_m} m), fewer than the {count} requested; "
            "request fewer paths or allow more hop counts"
        )
    logger.info("sampling %d of %d eligible paths in %d scans", count, available, len(ordered_scans))

    rng = np.random.default_rng(seed)
    chosen = rng.choice(available, size=count, replace=False)
    headings = rng.uniform(0.0, 2.0 * math.pi, size=count)
    paths = []
    for row, heading in zip(chosen, headings):
        graph = connectivity[ordered_scans[scan_index[row]]]
        start, goal = graph.viewpoint_ids[start_index[row]], graph.viewpoint_ids[goal_index[row]]
        paths.append(
            SampledPath(
                scan=graph.scan,
                path=tuple(graph.shortest_path(start, goal)),
                heading=float(heading),
                distance=graph.distance(start, goal),
            )
        )
    return paths


def path_episodes(paths: Sequence[SampledPath], path_id_offset: int) -> list[Episode]:
    """Return one episode per path, with path_id `path_id_offset + position` and no instruction yet."""
    return [
        Episode(
            instr_id=f"{path_id_offset + position}_0",
            scan=path.scan,
            path_id=path_id_offset + position,
            path=path.path,
            heading=path.heading,
            instruction="",
        )
        for position, path in enumerate(paths)
    ]


@torch.no_grad()
def generate_instructions(
    model: Speaker,
    world: NavigationWorld,
    paths: Sequence[SampledPath],
    max_length: int,
    batch_size: int = 64,
    decoding: str = "greedy",
    instructions_per_path: int = 1,
    seed: int = 0,
) -> list[list[str]]:
    """Have the speaker describe each path; return `instructions_per_path` instructions per path.

    The paths are walked by the shortest-path teacher in `world` (which needs features
    for their scans), as the split "augmentation_paths" that this adds to `world`. With decoding "sample", the words are drawn from a generator seeded
    with `seed`, so a rerun on the same device writes the same instructions.
    """
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    model.eval()
    device = next(model.parameters()).device
    episodes = path_episodes(paths, 0)
    world.add_split(Split(PATHS_SPLIT, episodes))
    generator = torch.Generator(device=device).manual_seed(seed)
    env = R2RVectorEnv(num_envs=batch_size, world=world, autoreset_mode=AutoresetMode.DISABLED)
    vocabulary = world.encoder.vocabulary

    instructions: list[list[str]] = []
    progress = tqdm(total=len(episodes), desc="describe paths", unit="path", dynamic_ncols=True)
    for batch in path_batches(env, PATHS_SPLIT, [e.instr_id for e in episodes], device):
        context = model.encode(batch)
        drafts: list[list[str]] = [[] for _ in range(len(batch))]
        for _ in range(instructions_per_path):
            ids = model.generate(batch, max_length, decoding == "sample", generator, context)
            for row, row_ids in enumerate(ids.tolist()):
                drafts[row].append(" ".join(generated_tokens(vocabulary, row_ids)))
        instructions.extend(drafts)
        progress.update(len(batch))
    progress.close()
    env.close()

    empty = sum(1 for texts in instructions for text in texts if not text)
    if empty:
        logger.warning("%d generated instructions are empty (the speaker emitted <eos> first)", empty)
    return instructions


def largest_path_id(data_dir: str | os.PathLike[str]) -> tuple[int, Path | None]:
    """Return the largest path_id in the data folder's R2R/*.json files and its file; (-1, None) without files."""
    largest, source = -1, None
    for path in sorted((Path(data_dir) / "R2R").glob("*.json")):
        for episode in read_r2r_file(path):
            if episode.path_id > largest:
                largest, source = episode.path_id, path
    return largest, source


def augmented_entries(
    paths: Sequence[SampledPath], instructions: Sequence[Sequence[str]], path_id_offset: int
) -> list[dict[str, Any]]:
    """Return the R2R-format entries of the paths with their instructions."""
    if len(paths) != len(instructions):
        raise ValueError(f"expected one instruction list per path, got {len(instructions)} for {len(paths)}")
    return [
        {
            "path_id": path_id_offset + position,
            "scan": path.scan,
            "path": list(path.path),
            "heading": path.heading,
            "distance": path.distance,
            "instructions": list(texts),
        }
        for position, (path, texts) in enumerate(zip(paths, instructions))
    ]


def augment(
    speaker_checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    count: int,
    settings: AugmentationSettings | None = None,
    data_dir: str | None = None,
    features: str | None = None,
) -> list[dict[str, Any]]:
    """Sample `count` paths in the scans of `settings.split`, describe them with a speaker, write `out`.

    `out` is an R2R-format JSON list (path_id, scan, path, heading, distance,
    instructions), written atomically. `data_dir` and `features` default to those the
    speaker was trained with. Returns the written entries.
    """
    settings = settings or AugmentationSettings()
    start = time.perf_counter()
    model, world, training = load_speaker(
        speaker_checkpoint, data_dir, features, settings.device, settings.force_features
    )
    largest, source = largest_path_id(world.data_dir)
    if settings.path_id_offset <= largest:
        raise AugmentationError(
            f"path_id_offset {settings.path_id_offset} would collide with path_id {largest} of {source}; "
            f"choose an offset above {largest}"
        )

    scans = world.split(settings.split).scans
    paths = sample_paths(
        world.connectivity,
        scans,
        count,
        settings.seed,
        settings.min_hops,
        settings.max_hops,
        settings.min_distance_m,
    )
    max_length = settings.max_decode_length or training.max_decode_length
    instructions = generate_instructions(
        model,
        world,
        paths,
        max_length,
        settings.batch_size,
        settings.decoding,
        settings.instructions_per_path,
        settings.seed,
    )
    entries = augmented_entries(paths, instructions, settings.path_id_offset)
    write_json_atomic(out, entries)
    logger.info(
        "wrote %d augmented paths (%d instructions) to %s in %.0f s",
        len(entries),
        sum(len(entry["instructions"]) for entry in entries),
        out,
        time.perf_counter() - start,
    )
    return entries
