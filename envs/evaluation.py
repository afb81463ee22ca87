"""Scoring agent trajectories on a split: overall means, per-episode rows, a table and a JSON report.

The numbers match the official R2R scorer (`tasks/R2R/eval.py` of the Matterport3D
Simulator) for NE, SR, OSR, TL and SPL, and add nDTW, SDTW and CLS. `envs.metrics`
defines all eight. SPL's path length is a setting, the shortest start-to-goal distance
by default, and reports name it. Reports also give the means of each instruction
language, which RxR results are quoted by. Splits without reference paths (the R2R
test split) are validated only, and their report contains no metric.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from connectivity import ClipnavError, Connectivity
from envs.episodes import Split
from envs.io import write_json_atomic
from envs.metrics import (
    DEFAULT_SPL_LENGTH,
    DEFAULT_SUCCESS_DISTANCE,
    METRIC_LABELS,
    METRIC_NAMES,
    BatchMetrics,
    MetricInputError,
    batch_metrics,
    check_spl_length,
    collapse_repeats,
)
from envs.trajectories import Trajectory, read_trajectories, validate_trajectories

logger = logging.getLogger(__name__)

METRIC_DESCRIPTIONS = {
    "navigation_error": "navigation error (m)",
    "success": "success rate",
    "oracle_success": "oracle success rate",
    "trajectory_length": "trajectory length (m)",
    "spl": "success weighted by path length",
    "ndtw": "normalized dynamic time warping",
    "sdtw": "success weighted by nDTW",
    "cls": "coverage weighted by length score",
}


class ReportWriteError(ClipnavError, OSError):
    """An evaluation report cannot be written to the requested path."""


@dataclass(frozen=True)
class EvaluationReport:
    """The result of scoring one trajectory file on one split.

    Per-episode arrays follow the split's episode order. `metrics` is None when the
    split has no reference paths, in which case the trajectories were only validated.
    """

    split: str
    source: str  # where the trajectories came from, usually a file path
    success_distance: float  # metres
    allow_missing: bool
    instr_ids: tuple[str, ...]  # scored (or, without references, validated) episodes
    scans: tuple[str, ...]
    steps: np.ndarray  # [episodes] int, trajectory entries minus one, as the R2R scorer counts
    moves: np.ndarray  # [episodes] int, changes of viewpoint
    metrics: BatchMetrics | None
    missing: int  # episodes of the split without a trajectory, possible only with allow_missing
    spl_length: str = DEFAULT_SPL_LENGTH  # SPL's path length: "shortest" or "reference"
    languages: tuple[str, ...] = ()  # the instruction language of each episode, in instr_ids order

    @property
    def has_metrics(self) -> bool:
        return self.metrics is not None

    def means(self) -> dict[str, float] | None:
        """Return the mean of each metric over the scored episodes, or None without metrics."""
        return None if self.metrics is None else self.metrics.means()

    def means_by_language(self) -> dict[str, dict[str, float]] | None:
        """Return, for each instruction language (sorted), the mean of each metric over its episodes.

        Each language's means use only that language's episodes. None without metrics.
        """
        if self.metrics is None:
            return None
        languages = np.asarray(self.languages)
        by_language = {}
        for language in sorted(set(self.languages)):
            rows = languages == language
            by_language[language] = {
                name: float(getattr(self.metrics, name)[rows].mean()) for name in METRIC_NAMES
            }
        return by_language

    def rows(self) -> list[dict[str, Any]]:
        """Return one dict per episode: instr_id, scan, the eight metrics (if any), steps and moves."""
        columns: dict[str, list[Any]] = {"instr_id": list(self.instr_ids), "scan": list(self.scans)}
        if self.metrics is not None:
            for name in METRIC_NAMES:
                columns[name] = getattr(self.metrics, name).tolist()
        columns["steps"] = self.steps.tolist()
        columns["moves"] = self.moves.tolist()
        names = list(columns)
        return [dict(zip(names, values)) for values in zip(*columns.values())]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data: settings, counts, means and per-episode rows."""
        return {
            "split": self.split,
            "trajectories": self.source,
            "success_distance": self.success_distance,
            "spl_length": self.spl_length,
            "allow_missing": self.allow_missing,
            "episodes": len(self.instr_ids),
            "missing": self.missing,
            "metrics_computed": self.has_metrics,
            "means": self.means(),
            "means_by_language": self.means_by_language(),
            "per_episode": self.rows(),
        }

    def format_table(self) -> str:
        """Return the means as a table for the terminal."""
        count = len(self.instr_ids)
        if self.metrics is None:
            return (
                f"Split {self.split}: {count} trajectories validated. The split has no reference "
                "paths, so no metric is computed."
            )

        lines = [
            f"Split {self.split}: {count} episodes scored ({self.missing} missing), "
            f"success distance {self.success_distance:g} m"
        ]
        for name, value in self.metrics.means().items():
            description = METRIC_DESCRIPTIONS[name]
            if name == "spl":
                description += f" (L: {self.spl_length})"
            lines.append(f"  {METRIC_LABELS[name]:<5} {description:<46} {value:8.4f}")
        mean_steps = float(self.steps.mean()) if count else float("nan")
        lines.append(f"  {'':<5} {'steps per episode':<46} {mean_steps:8.2f}")

        by_language = self.means_by_language() or {}
        if len(by_language) > 1:
            lines.append("By language:")
            lines.append(
                f"  {'language':<9} {'episodes':>8} "
                + " ".join(f"{METRIC_LABELS[n]:>7}" for n in METRIC_NAMES)
            )
            counts = {language: self.languages.count(language) for language in by_language}
            for language, means in by_language.items():
                values = " ".join(f"{means[name]:7.4f}" for name in METRIC_NAMES)
                lines.append(f"  {language:<9} {counts[language]:>8} {values}")
        return "\n".join(lines)


def evaluate_trajectories(
    trajectories: Sequence[object] | Mapping[str, Sequence[Sequence[object]]],
    split: Split,
    connectivity: Connectivity,
    *,
    success_distance: float = DEFAULT_SUCCESS_DISTANCE,
    allow_missing: bool = False,
    source: str = "trajectories",
    spl_length: str = DEFAULT_SPL_LENGTH,
) -> EvaluationReport:
    """Validate trajectories against `split` and score them with the eight metrics.

    `trajectories` is a parsed leaderboard list or a mapping from instr_id to steps
    [viewpoint, heading, elevation]. `spl_length` is SPL's path length, "shortest" (the
    R2R scorer's) or "reference" (see `envs.metrics`). Raises TrajectoryValidationError
    listing every problem, and MetricInputError for a success distance that is not
    positive or an unknown `spl_length`.
    """
    if not (math.isfinite(success_distance) and success_distance > 0):
        raise MetricInputError(
            f"success distance must be a positive number of metres, got {success_distance!r}"
        )
    check_spl_length(spl_length)
    validated = validate_trajectories(
        trajectories, split, connectivity, allow_missing=allow_missing, source=source
    )
    return _score(validated, split, connectivity, success_distance, allow_missing, source, spl_length)


def evaluate_file(
    path: str | os.PathLike[str],
    split: Split,
    connectivity: Connectivity,
    *,
    success_distance: float = DEFAULT_SUCCESS_DISTANCE,
    allow_missing: bool = False,
    spl_length: str = DEFAULT_SPL_LENGTH,
) -> EvaluationReport:
    """Read a leaderboard-format trajectory file and evaluate it (see `evaluate_trajectories`)."""
    entries = read_trajectories(path)
    return evaluate_trajectories(
        entries,
        split,
        connectivity,
        success_distance=success_distance,
        allow_missing=allow_missing,
        source=str(path),
        spl_length=spl_length,
    )


def write_report(report: EvaluationReport, path: str | os.PathLike[str]) -> None:
    """Write `report.to_dict()` as indented JSON, atomically."""
    try:
        write_json_atomic(path, report.to_dict(), indent=2)
    except OSError as error:
        raise ReportWriteError(
            f"cannot write the evaluation report to {path} ({error}); choose a writable file path"
        ) from None
    logger.info("wrote the evaluation report to %s", path)


def _score(
    trajectories: Mapping[str, Trajectory],
    split: Split,
    connectivity: Connectivity,
    success_distance: float,
    allow_missing: bool,
    source: str,
    spl_length: str = DEFAULT_SPL_LENGTH,
) -> EvaluationReport:
    """Score validated trajectories, in the split's episode order."""
    episodes = [episode for episode in split if episode.instr_id in trajectories]
    if not episodes:
        raise MetricInputError(f"{source}: no trajectory of split {split.name} to score")
    viewpoints = [trajectories[episode.instr_id].viewpoints for episode in episodes]
    steps = np.array([len(path) - 1 for path in viewpoints], dtype=np.int64)
    moves = np.array([len(collapse_repeats(path)) - 1 for path in viewpoints], dtype=np.int64)

    metrics = None
    if split.has_reference:
        graphs = [connectivity[episode.scan] for episode in episodes]
        references = [episode.path for episode in episodes]
        metrics = batch_metrics(graphs, references, viewpoints, success_distance, spl_length)
        logger.info("scored %d episodes of split %s from %s", len(episodes), split.name, source)
    else:
        logger.info(
            "split %s has no reference paths: validated %d trajectories from %s, computed no metric",
            split.name,
            len(episodes),
            source,
        )

    return EvaluationReport(
        split=split.name,
        source=source,
        success_distance=success_distance,
        allow_missing=allow_missing,
        instr_ids=tuple(episode.instr_id for episode in episodes),
        scans=tuple(episode.scan for episode in episodes),
        steps=steps,
        moves=moves,
        metrics=metrics,
        missing=len(split) - len(episodes),
        spl_length=spl_length,
        languages=tuple(episode.language for episode in episodes),
    )
