"""Navigation metrics of R2R-style tasks, on shortest-path distances in a scan's graph.

Every distance here is the shortest-path distance in metres between two viewpoints in
the scan's navigation graph (`ScanGraph.distances`), as in the official R2R scorer. The
eight metrics, each defined once below with its source:

- NE, navigation error: distance from the final viewpoint to the goal.
- SR, success: 1 when NE < the success distance (3 m in R2R), else 0.
- OSR, oracle success: 1 when some visited viewpoint is closer than the success distance
  to the goal, else 0.
- TL, trajectory length: summed distance between consecutive viewpoints.
- SPL: success weighted by path length. Its path length L is a setting (`spl_length`).
  "shortest", the default, is the shortest start-to-goal distance, as in the official
  R2R scorer. "reference" is the length of the reference path, as in later VLN code.
  The two differ on RxR, whose reference paths are longer than shortest paths.
- nDTW and SDTW: normalized dynamic time warping, and nDTW counted on success only.
- CLS: coverage weighted by length score.

A trajectory is the sequence of viewpoints an agent stood at, with its start first.
Consecutive repeats (turns in place) are collapsed before nDTW, SDTW and CLS, because
DTW would otherwise match every repeat again and charge its distance once more. Revisits
of a viewpoint later in the trajectory are kept. The reference path is collapsed the same
way. NE, SR, OSR, TL and SPL do not change with the collapse.

`episode_metrics` scores one episode (for environments at episode end) and
`batch_metrics` scores many with NumPy, padding the episodes of each scan into one
tensor of reference-to-trajectory distances.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from connectivity import ClipnavError, ScanGraph

DEFAULT_SUCCESS_DISTANCE = 3.0  # metres, the R2R threshold for success, nDTW, SDTW and CLS

SPL_LENGTHS = ("shortest", "reference")
"""Choices of SPL's path length L: the shortest start-to-goal distance, or the reference path's length."""
DEFAULT_SPL_LENGTH = "shortest"
SPL_LENGTH_DESCRIPTIONS = {
    "shortest": "the shortest start-to-goal distance",
    "reference": "the reference path's length",
}

# Field names of `EpisodeMetrics` with the abbreviations that papers print.
METRIC_LABELS = {
    "navigation_error": "NE",
    "success": "SR",
    "oracle_success": "OSR",
    "trajectory_length": "TL",
    "spl": "SPL",
    "ndtw": "nDTW",
    "sdtw": "SDTW",
    "cls": "CLS",
}
METRIC_NAMES = tuple(METRIC_LABELS)

# Stand-in, in metres, for the infinite distance between viewpoints that no path joins. It
# keeps DTW's prefix sums finite. Such an episode gets an nDTW of 0 and its NE stays inf.
UNREACHABLE_DISTANCE = 1e9

# Episodes per padded tensor: bounds memory at chunk * reference length * trajectory length.
_CHUNK_EPISODES = 1024

Item = TypeVar("Item", bound=Hashable)


class MetricInputError(ClipnavError, ValueError):
    """A trajectory, reference path or setting that the metrics cannot score."""


@dataclass(frozen=True)
class EpisodeMetrics:
    """The eight metrics of one episode."""

    navigation_error: float  # metres
    success: float  # 1.0 or 0.0
    oracle_success: float  # 1.0 or 0.0
    trajectory_length: float  # metres
    spl: float
    ndtw: float
    sdtw: float
    cls: float

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRIC_NAMES}


@dataclass(frozen=True)
class BatchMetrics:
    """The eight metrics of many episodes, one float64 array of shape [episodes] each."""

    navigation_error: np.ndarray
    success: np.ndarray
    oracle_success: np.ndarray
    trajectory_length: np.ndarray
    spl: np.ndarray
    ndtw: np.ndarray
    sdtw: np.ndarray
    cls: np.ndarray

    def __len__(self) -> int:
        return len(self.navigation_error)

    def episode(self, i: int) -> EpisodeMetrics:
        """Return the metrics of the `i`-th episode of the batch."""
        return EpisodeMetrics(**{name: float(getattr(self, name)[i]) for name in METRIC_NAMES})

    def means(self) -> dict[str, float]:
        """Return the mean of each metric over the batch (NaN for an empty batch)."""
        if len(self) == 0:
            return dict.fromkeys(METRIC_NAMES, float("nan"))
        return {name: float(getattr(self, name).mean()) for name in METRIC_NAMES}


def collapse_repeats(items: Sequence[Item]) -> list[Item]:
    """Return `items` without consecutive repeats: [a, a, b, a] becomes [a, b, a]."""
    return [item for item, _ in itertools.groupby(items)]


def episode_metrics(
    graph: ScanGraph,
    reference: Sequence[str],
    trajectory: Sequence[str],
    success_distance: float = DEFAULT_SUCCESS_DISTANCE,
    spl_length: str = DEFAULT_SPL_LENGTH,
) -> EpisodeMetrics:
    """Score one trajectory against its reference path, both as viewpoint ids of `graph`.

    The goal is the last viewpoint of `reference`. Raises UnknownViewpointError for a
    viewpoint that is not in the scan and MetricInputError for an empty path.
    """
    return batch_metrics([graph], [reference], [trajectory], success_distance, spl_length).episode(0)


def batch_metrics(
    graphs: Sequence[ScanGraph],
    references: Sequence[Sequence[str]],
    trajectories: Sequence[Sequence[str]],
    success_distance: float = DEFAULT_SUCCESS_DISTANCE,
    spl_length: str = DEFAULT_SPL_LENGTH,
) -> BatchMetrics:
    """Score many trajectories, episode `i` in `graphs[i]` against `references[i]`.

    Episodes that share a `ScanGraph` object are scored together in padded NumPy arrays.
    `spl_length` chooses SPL's path length: "shortest" or "reference" (see the module
    docstring). Raises UnknownViewpointError for a viewpoint that is not in its scan and
    MetricInputError for an empty path, a success distance that is not positive or an
    unknown `spl_length`.
    """
    count = len(graphs)
    if len(references) != count or len(trajectories) != count:
        raise MetricInputError(
            f"expected one reference path and one trajectory per graph, got {count} graphs, "
            f"{len(references)} reference paths and {len(trajectories)} trajectories"
        )
    if not success_distance > 0:
        raise MetricInputError(f"success distance must be positive metres, got {success_distance!r}")
    check_spl_length(spl_length)

    # Group the episodes by graph, keeping each episode's position in the batch.
    groups: dict[int, list[int]] = {}
    for i, graph in enumerate(graphs):
        groups.setdefault(id(graph), []).append(i)

    columns = {name: np.empty(count, dtype=np.float64) for name in METRIC_NAMES}
    for positions in groups.values():
        graph = graphs[positions[0]]
        for first in range(0, len(positions), _CHUNK_EPISODES):
            chunk = positions[first : first + _CHUNK_EPISODES]
            reference = _collapsed_indices(graph, [references[i] for i in chunk], "reference path", chunk)
            trajectory = _collapsed_indices(graph, [trajectories[i] for i in chunk], "trajectory", chunk)
            scores = _score_on_graph(graph.distances, reference, trajectory, success_distance, spl_length)
            for name in METRIC_NAMES:
                columns[name][chunk] = scores[name]
    return BatchMetrics(**columns)


def check_spl_length(spl_length: str) -> None:
    """Raise MetricInputError unless `spl_length` is one of `SPL_LENGTHS`."""
    if spl_length not in SPL_LENGTHS:
        raise MetricInputError(f"SPL path length must be one of {', '.join(SPL_LENGTHS)}, got {spl_length!r}")


def _collapsed_indices(
    graph: ScanGraph, paths: list[Sequence[str]], kind: str, positions: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Return the paths' viewpoint indices in `graph`, concatenated, with consecutive repeats collapsed.

    Returns the flat indices and the collapsed size of each path.
    """
    sizes = np.fromiter((len(path) for path in paths), dtype=np.int64, count=len(paths))
    if not sizes.all():
        empty = positions[int(np.argmin(sizes))]
        raise MetricInputError(
            f"the {kind} of episode {empty} in the batch is empty; it needs at least the start viewpoint"
        )

    index_of = graph.index_of
    try:
        flat = np.array([index_of[viewpoint] for viewpoint in itertools.chain.from_iterable(paths)])
    except KeyError:
        # Let the graph raise its error, which names the scan and close matches.
        for viewpoint in itertools.chain.from_iterable(paths):
            graph.index(viewpoint)
        raise

    # Keep the first viewpoint of each path and every viewpoint that differs from the one before.
    keep = np.ones(len(flat), dtype=bool)
    keep[1:] = flat[1:] != flat[:-1]
    keep[np.cumsum(sizes) - sizes] = True
    owner = np.repeat(np.arange(len(paths)), sizes)
    return flat[keep], np.bincount(owner[keep], minlength=len(paths))


def _pad_paths(flat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Stack concatenated index paths into [paths, longest] int64, repeating each path's last index.

    Repeating the last viewpoint adds zero-length steps, so path lengths, nearest
    distances and the final viewpoint (last column) need no mask.
    """
    offsets = np.cumsum(sizes) - sizes
    steps = np.arange(sizes.max())
    gather = offsets[:, None] + np.minimum(steps[None, :], sizes[:, None] - 1)
    return flat[gather]


def _score_on_graph(
    distances: np.ndarray,
    references: tuple[np.ndarray, np.ndarray],
    trajectories: tuple[np.ndarray, np.ndarray],
    success_distance: float,
    spl_length: str = DEFAULT_SPL_LENGTH,
) -> dict[str, np.ndarray]:
    """Compute every metric for episodes of one scan, given collapsed (flat indices, sizes) paths."""
    reference_sizes = references[1]  # [episodes]
    trajectory_sizes = trajectories[1]  # [episodes]
    reference_padded = _pad_paths(*references)  # [episodes, n]
    trajectory_padded = _pad_paths(*trajectories)  # [episodes, m]
    episodes = np.arange(len(reference_sizes))

    # costs[e, i, j]: distance from reference viewpoint i to trajectory viewpoint j.
    costs = distances[reference_padded[:, :, None], trajectory_padded[:, None, :]]  # [episodes, n, m]
    goal_costs = costs[episodes, reference_sizes - 1, :]  # [episodes, m], distance of each step to the goal
    starts = reference_padded[:, 0]
    goals = reference_padded[episodes, reference_sizes - 1]
    shortest_length = distances[starts, goals]
    reference_length = path_length(distances, reference_padded)

    scores: dict[str, np.ndarray] = {}
    scores["navigation_error"] = navigation_error(goal_costs)
    scores["success"] = success(scores["navigation_error"], success_distance)
    scores["oracle_success"] = oracle_success(goal_costs, success_distance)
    scores["trajectory_length"] = path_length(distances, trajectory_padded)
    spl_reference = shortest_length if spl_length == "shortest" else reference_length
    scores["spl"] = success_weighted_by_path_length(
        scores["success"], spl_reference, scores["trajectory_length"]
    )
    scores["ndtw"] = normalized_dtw(costs, reference_sizes, trajectory_sizes, success_distance)
    scores["sdtw"] = success_weighted_dtw(scores["success"], scores["ndtw"])
    scores["cls"] = coverage_weighted_by_length_score(
        costs, reference_sizes, reference_length, scores["trajectory_length"], success_distance
    )
    return scores


def navigation_error(goal_costs: np.ndarray) -> np.ndarray:
    """NE: distance in metres from the final viewpoint to the goal, per episode.

    Source: the official R2R scorer, `tasks/R2R/eval.py` in the Matterport3DSimulator
    repository, released with Anderson et al. 2018, "Vision-and-Language Navigation:
    Interpreting visually-grounded navigation instructions in real environments"
    (arXiv:1711.07280).

    `goal_costs` [episodes, steps] contains each trajectory viewpoint's distance to the goal,
    with the final viewpoint in the last column.
    """
    return goal_costs[:, -1].copy()


def success(navigation_error: np.ndarray, success_distance: float) -> np.ndarray:
    """SR: 1.0 where NE is strictly below the success distance, else 0.0.

    Source: the official R2R scorer (see `navigation_error`). Its comparison is strict,
    so an agent exactly 3 m from the goal fails.
    """
    return (navigation_error < success_distance).astype(np.float64)


def oracle_success(goal_costs: np.ndarray, success_distance: float) -> np.ndarray:
    """OSR: 1.0 where some visited viewpoint is strictly closer than the success distance to the goal.

    Source: the official R2R scorer (see `navigation_error`). It is the success an agent
    would have had if it had stopped at the visited viewpoint closest to the goal.
    """
    return (goal_costs.min(axis=1) < success_distance).astype(np.float64)


def path_length(distances: np.ndarray, padded_paths: np.ndarray) -> np.ndarray:
    """TL (and PL in CLS): summed distance in metres between consecutive viewpoints, per path.

    Source: the official R2R scorer (see `navigation_error`), which sums the shortest-path
    distance between consecutive trajectory viewpoints.

    `padded_paths` [paths, steps] are viewpoint indices, padded by repeating the last one.
    """
    return distances[padded_paths[:, :-1], padded_paths[:, 1:]].sum(axis=1)


def success_weighted_by_path_length(
    success: np.ndarray, shortest_length: np.ndarray, trajectory_length: np.ndarray
) -> np.ndarray:
    """SPL: success * L / max(L, TL), with L the shortest start-to-goal distance.

    Source: Anderson et al. 2018, "On Evaluation of Embodied Navigation Agents"
    (arXiv:1807.06757), in the form of the official R2R scorer. When L and TL are both 0
    (the start is the goal and the agent stayed), a success scores 1. With
    `spl_length="reference"`, callers pass the reference path's length as L.
    """
    longest = np.maximum(shortest_length, trajectory_length)
    ratio = np.divide(shortest_length, longest, out=np.ones_like(longest), where=longest > 0)
    return success * ratio


def dtw_distance(costs: np.ndarray, reference_sizes: np.ndarray, trajectory_sizes: np.ndarray) -> np.ndarray:
    """Return the dynamic time warping distance between each reference path and trajectory.

    `costs` [episodes, n, m] contains the distance from reference viewpoint i to trajectory
    viewpoint j. Cells beyond an episode's sizes are ignored, whatever they contain.

    The recurrence is DTW[i, j] = cost[i, j] + min(DTW[i-1, j-1], DTW[i-1, j], DTW[i, j-1]).
    The loop runs over reference viewpoints and solves each row at once: with
    above[j] = min(DTW[i-1, j-1], DTW[i-1, j]) and S the running sum of the row's costs,
    DTW[i, j] = S[j] + min over k <= j of (above[k] - S[k-1]).
    """
    costs = np.minimum(costs, UNREACHABLE_DISTANCE)
    episodes, rows, columns = costs.shape
    last_column = trajectory_sizes - 1
    every_episode = np.arange(episodes)

    previous = np.full((episodes, columns), np.inf)  # DTW[i-1, :], all inf before row 0
    at_last_column = np.empty((episodes, rows))  # DTW[i, m-1] for each row i
    for i in range(rows):
        above = np.empty((episodes, columns))
        # DTW[-1, -1] = 0 lets the alignment start at cell (0, 0).
        above[:, 0] = 0.0 if i == 0 else previous[:, 0]
        above[:, 1:] = np.minimum(previous[:, :-1], previous[:, 1:])

        running = np.cumsum(costs[:, i, :], axis=1)
        running_before = running - costs[:, i, :]
        row = running + np.minimum.accumulate(above - running_before, axis=1)

        at_last_column[:, i] = row[every_episode, last_column]
        previous = row
    return at_last_column[every_episode, reference_sizes - 1]


def normalized_dtw(
    costs: np.ndarray, reference_sizes: np.ndarray, trajectory_sizes: np.ndarray, success_distance: float
) -> np.ndarray:
    """nDTW: exp(-DTW(R, Q) / (|R| * success distance)), |R| the reference's viewpoint count.

    Source: Ilharco et al. 2019, "General Evaluation for Instruction Conditioned
    Navigation using Dynamic Time Warping" (arXiv:1907.05446), with the graph distance
    between viewpoints as the DTW cost.
    """
    distance = dtw_distance(costs, reference_sizes, trajectory_sizes)
    return np.exp(-distance / (reference_sizes * success_distance))


def success_weighted_dtw(success: np.ndarray, ndtw: np.ndarray) -> np.ndarray:
    """SDTW: SR * nDTW, the path fidelity of successful episodes only.

    Source: Ilharco et al. 2019 (arXiv:1907.05446).
    """
    return success * ndtw


def coverage_weighted_by_length_score(
    costs: np.ndarray,
    reference_sizes: np.ndarray,
    reference_length: np.ndarray,
    trajectory_length: np.ndarray,
    success_distance: float,
) -> np.ndarray:
    """CLS: PC * LS, coverage weighted by length score.

    Source: Jain et al. 2019, "Stay on the Path: Instruction Fidelity in
    Vision-and-Language Navigation" (ACL, arXiv:1905.12255). Path coverage PC is the mean
    over reference viewpoints r of exp(-d(r, P) / success distance), with d(r, P) the
    distance from r to the nearest trajectory viewpoint. The expected path length is
    EPL = PC * PL(R), and the length score is LS = EPL / (EPL + |EPL - PL(P)|). LS is 1
    when EPL and PL(P) are both 0.
    """
    rows = costs.shape[1]
    valid_rows = np.arange(rows)[None, :] < reference_sizes[:, None]  # [episodes, n]
    nearest = costs.min(axis=2)  # [episodes, n], each reference viewpoint to the trajectory
    weights = np.where(valid_rows, np.exp(-nearest / success_distance), 0.0)
    coverage = weights.sum(axis=1) / reference_sizes

    expected = coverage * reference_length
    denominator = expected + np.abs(expected - trajectory_length)
    length_score = np.divide(expected, denominator, out=np.ones_like(expected), where=denominator > 0)
    return coverage * length_score
