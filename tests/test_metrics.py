"""Navigation metrics: hand-computed cases on a toy graph, invariants, and a plain reference version."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_graph import toy_entries

from connectivity import Connectivity, ScanGraph, UnknownViewpointError, parse_scan_graph
from envs.metrics import (
    METRIC_NAMES,
    EpisodeMetrics,
    MetricInputError,
    batch_metrics,
    collapse_repeats,
    episode_metrics,
)
from envs.r2r import load_r2r_split

# The toy scan, positions in metres on the floor (z = 0):
#
#   f(0,4)      d(3,4) --3-- e(6,4)
#     :           |           |
#     :           4           4
#     :           |           |
#   a(0,0) --3-- b(3,0) --3-- c(6,0)
#
# f is excluded, so its unobstructed link to a is no edge. Shortest-path distances:
# a-b 3, a-c 6, a-d 7, a-e 10, b-c 3, b-d 4, b-e 7, c-d 7, c-e 4, d-e 3.
REFERENCE = ("a", "b", "c")  # goal c, shortest start-goal distance 6 m


@pytest.fixture(scope="module")
def toy() -> ScanGraph:
    return parse_scan_graph("toy", toy_entries())


def test_toy_distances(toy: ScanGraph) -> None:
    # Guards the hand-computed distances the cases below rely on.
    assert toy.distance("a", "e") == 10.0
    assert toy.distance("c", "d") == 7.0
    assert not toy.adjacency[toy.index("a"), toy.index("f")]


def test_detour_with_revisit_and_turns(toy: ScanGraph) -> None:
    # Turns at a and d, detour b -> d -> b, then on to the goal c. Collapsed: a b d b c.
    metrics = episode_metrics(toy, REFERENCE, ["a", "a", "b", "d", "d", "b", "c"])

    assert metrics.navigation_error == 0.0
    assert metrics.success == 1.0
    assert metrics.oracle_success == 1.0
    # TL = 3 (a-b) + 4 (b-d) + 4 (d-b) + 3 (b-c) = 14; SPL = 6 / max(6, 14) = 3/7.
    assert metrics.trajectory_length == pytest.approx(14.0)
    assert metrics.spl == pytest.approx(3 / 7)
    # Costs d(r, q), rows a b c, columns a b d b c:
    #   a: 0 3 7 3 6    DTW rows: 0 3 10 13 19
    #   b: 3 0 4 0 3              3 0  4  4  7
    #   c: 6 3 7 3 0              9 3  7  7  4
    # DTW = 4, nDTW = exp(-4 / (3 * 3)).
    assert metrics.ndtw == pytest.approx(math.exp(-4 / 9))
    assert metrics.sdtw == pytest.approx(math.exp(-4 / 9))
    # Every reference viewpoint is visited: PC = 1, EPL = 6, LS = 6 / (6 + |6 - 14|) = 3/7.
    assert metrics.cls == pytest.approx(3 / 7)


def test_stop_exactly_at_threshold_fails(toy: ScanGraph) -> None:
    # Stops at d, 7 m from the goal. The closest visited viewpoint, b, is exactly 3 m away,
    # and success needs strictly less than 3 m.
    metrics = episode_metrics(toy, REFERENCE, ["a", "b", "d"])

    assert metrics.navigation_error == 7.0
    assert metrics.success == 0.0
    assert metrics.oracle_success == 0.0
    assert metrics.trajectory_length == pytest.approx(7.0)
    assert metrics.spl == 0.0
    # Costs rows a b c, columns a b d: a 0 3 7, b 3 0 4, c 6 3 7.
    # DTW rows: 0 3 10, 3 0 4, 9 3 7, so DTW = 7.
    assert metrics.ndtw == pytest.approx(math.exp(-7 / 9))
    assert metrics.sdtw == 0.0
    # Nearest trajectory distance of a, b, c: 0, 0, 3. PL(R) = 6, PL(P) = 7.
    coverage = (1 + 1 + math.exp(-1)) / 3
    expected_length = coverage * 6
    length_score = expected_length / (expected_length + abs(expected_length - 7))
    assert metrics.cls == pytest.approx(coverage * length_score)


def test_success_distance_is_a_setting(toy: ScanGraph) -> None:
    metrics = episode_metrics(toy, REFERENCE, ["a", "b", "d"], success_distance=3.5)

    assert metrics.success == 0.0
    assert metrics.oracle_success == 1.0
    assert metrics.ndtw == pytest.approx(math.exp(-7 / (3 * 3.5)))


def test_stop_at_start(toy: ScanGraph) -> None:
    metrics = episode_metrics(toy, REFERENCE, ["a"])

    assert metrics.navigation_error == 6.0
    assert metrics.trajectory_length == 0.0
    assert metrics.spl == 0.0
    # The single trajectory viewpoint a is matched to a, b and c: DTW = 0 + 3 + 6 = 9.
    assert metrics.ndtw == pytest.approx(math.exp(-1))
    # PC = (1 + e^-1 + e^-2) / 3; PL(P) = 0, so LS = EPL / (EPL + EPL) = 1/2.
    assert metrics.cls == pytest.approx((1 + math.exp(-1) + math.exp(-2)) / 3 / 2)


def test_revisits_are_kept(toy: ScanGraph) -> None:
    # a b a b c: going back to a is a revisit, not a turn in place, and costs distance.
    metrics = episode_metrics(toy, REFERENCE, ["a", "b", "a", "b", "c"])

    assert metrics.trajectory_length == pytest.approx(12.0)
    assert metrics.spl == pytest.approx(0.5)
    # Costs rows a b c, columns a b a b c: a 0 3 0 3 6, b 3 0 3 0 3, c 6 3 6 3 0.
    # DTW rows: 0 3 3 6 12, 3 0 3 3 6, 9 3 6 6 3, so DTW = 3.
    assert metrics.ndtw == pytest.approx(math.exp(-3 / 9))
    # PC = 1, EPL = 6, LS = 6 / (6 + |6 - 12|) = 1/2.
    assert metrics.cls == pytest.approx(0.5)


def test_turns_in_place_change_nothing(toy: ScanGraph) -> None:
    turning = episode_metrics(toy, REFERENCE, ["a", "a", "a", "b", "b", "c", "c"])
    straight = episode_metrics(toy, REFERENCE, ["a", "b", "c"])

    assert turning == straight


def test_reference_path_scores_one(toy: ScanGraph) -> None:
    metrics = episode_metrics(toy, REFERENCE, ["a", "b", "c"])

    assert metrics == EpisodeMetrics(0.0, 1.0, 1.0, 6.0, 1.0, 1.0, 1.0, 1.0)


def test_start_at_goal_scores_one(toy: ScanGraph) -> None:
    # L = TL = 0, where SPL and the length score fall back to 1.
    metrics = episode_metrics(toy, ["b"], ["b", "b"])

    assert metrics.spl == 1.0
    assert metrics.ndtw == 1.0
    assert metrics.cls == 1.0


def test_unknown_viewpoint_raises(toy: ScanGraph) -> None:
    with pytest.raises(UnknownViewpointError, match="'bb'"):
        episode_metrics(toy, REFERENCE, ["a", "bb"])


def test_empty_trajectory_raises(toy: ScanGraph) -> None:
    with pytest.raises(MetricInputError, match="trajectory of episode 0"):
        episode_metrics(toy, REFERENCE, [])


def test_nonpositive_success_distance_raises(toy: ScanGraph) -> None:
    with pytest.raises(MetricInputError, match="positive"):
        episode_metrics(toy, REFERENCE, ["a"], success_distance=0.0)


def test_batch_length_mismatch_raises(toy: ScanGraph) -> None:
    with pytest.raises(MetricInputError, match="2 reference paths"):
        batch_metrics([toy], [REFERENCE, REFERENCE], [["a"]])


def test_collapse_repeats() -> None:
    assert collapse_repeats(["a", "a", "b", "a", "a"]) == ["a", "b", "a"]


# A plain implementation of every definition, one episode at a time, for comparison.


def plain_collapse(path: list[str]) -> list[str]:
    kept = [path[0]]
    for viewpoint in path[1:]:
        if viewpoint != kept[-1]:
            kept.append(viewpoint)
    return kept


def plain_metrics(graph: ScanGraph, reference: list[str], trajectory: list[str], threshold: float) -> dict:
    def distance(first: str, second: str) -> float:
        return float(graph.distances[graph.index_of[first], graph.index_of[second]])

    def length(path: list[str]) -> float:
        return sum(distance(here, there) for here, there in zip(path[:-1], path[1:]))

    goal = reference[-1]
    error = distance(trajectory[-1], goal)
    success = 1.0 if error < threshold else 0.0
    oracle = 1.0 if min(distance(v, goal) for v in trajectory) < threshold else 0.0
    travelled = length(trajectory)
    shortest = distance(reference[0], goal)
    longest = max(shortest, travelled)
    spl = success * shortest / longest if longest > 0 else success

    ref, query = plain_collapse(reference), plain_collapse(trajectory)
    table = [[math.inf] * (len(query) + 1) for _ in range(len(ref) + 1)]
    table[0][0] = 0.0
    for i in range(1, len(ref) + 1):
        for j in range(1, len(query) + 1):
            best = min(table[i - 1][j - 1], table[i - 1][j], table[i][j - 1])
            table[i][j] = distance(ref[i - 1], query[j - 1]) + best
    ndtw = math.exp(-table[len(ref)][len(query)] / (len(ref) * threshold))

    coverage = sum(math.exp(-min(distance(r, q) for q in query) / threshold) for r in ref) / len(ref)
    expected = coverage * length(ref)
    denominator = expected + abs(expected - travelled)
    length_score = expected / denominator if denominator > 0 else 1.0
    return {
        "navigation_error": error,
        "success": success,
        "oracle_success": oracle,
        "trajectory_length": travelled,
        "spl": spl,
        "ndtw": ndtw,
        "sdtw": success * ndtw,
        "cls": coverage * length_score,
    }


def random_walk(graph: ScanGraph, start: str, choices: list[int]) -> list[str]:
    """Walk from `start`: choice 0 turns in place, k > 0 moves to neighbour k modulo their count."""
    path = [start]
    for choice in choices:
        neighbours = graph.neighbors(path[-1])
        if choice == 0 or not neighbours:
            path.append(path[-1])
        else:
            path.append(neighbours[choice % len(neighbours)])
    return path


TOY_VIEWPOINTS = ["a", "b", "c", "d", "e"]
walks = st.tuples(st.sampled_from(TOY_VIEWPOINTS), st.lists(st.integers(0, 5), max_size=12))


@settings(max_examples=150, deadline=None)
@given(reference_walk=walks, trajectory_walk=walks, threshold=st.sampled_from([1.0, 3.0, 5.0]))
def test_invariants_hold(toy: ScanGraph, reference_walk, trajectory_walk, threshold: float) -> None:
    reference = random_walk(toy, *reference_walk)
    trajectory = random_walk(toy, reference[0], trajectory_walk[1])
    metrics = episode_metrics(toy, reference, trajectory, success_distance=threshold)

    assert metrics.spl <= metrics.success
    assert metrics.oracle_success >= metrics.success
    assert metrics.sdtw <= metrics.ndtw
    for name in ("success", "oracle_success", "spl", "ndtw", "sdtw", "cls"):
        assert 0.0 <= getattr(metrics, name) <= 1.0, name
    assert metrics.navigation_error >= 0.0
    assert metrics.trajectory_length >= 0.0


@settings(max_examples=100, deadline=None)
@given(reference_walk=walks, trajectory_walk=walks)
def test_toy_matches_plain_version(toy: ScanGraph, reference_walk, trajectory_walk) -> None:
    reference = random_walk(toy, *reference_walk)
    trajectory = random_walk(toy, reference[0], trajectory_walk[1])
    expected = plain_metrics(toy, reference, trajectory, 3.0)

    assert episode_metrics(toy, reference, trajectory).as_dict() == pytest.approx(
        expected, rel=1e-9, abs=1e-12
    )


def test_batch_matches_per_episode(toy: ScanGraph) -> None:
    # Two graphs in one batch, interleaved: the second is the toy scan at twice the size.
    large = parse_scan_graph("toy_large", toy_entries(scale=2.0))
    graphs = [toy, large, toy, large]
    trajectories = [["a", "b", "d"], ["a", "b", "d"], ["a", "b", "c"], ["a"]]
    batch = batch_metrics(graphs, [REFERENCE] * 4, trajectories)

    for i, graph in enumerate(graphs):
        assert batch.episode(i) == episode_metrics(graph, REFERENCE, trajectories[i]), i


def test_batch_means(toy: ScanGraph) -> None:
    batch = batch_metrics([toy, toy], [REFERENCE, REFERENCE], [["a", "b", "c"], ["a"]])

    # NE 0 and 6; SR 1 and 0.
    assert batch.means()["navigation_error"] == pytest.approx(3.0)
    assert batch.means()["success"] == pytest.approx(0.5)


def test_real_scans_match_plain_version(data_dir, real_connectivity: Connectivity) -> None:
    # Random walks with turns and revisits from real val_unseen episodes, over several scans.
    split = load_r2r_split("val_unseen", data_dir)
    rng = np.random.default_rng(7)
    chosen = [split.episodes[i] for i in rng.choice(len(split), size=300, replace=False)]
    graphs = [real_connectivity[episode.scan] for episode in chosen]
    trajectories = [
        random_walk(graph, episode.start, rng.integers(0, 6, size=rng.integers(0, 30)).tolist())
        for graph, episode in zip(graphs, chosen)
    ]
    batch = batch_metrics(graphs, [episode.path for episode in chosen], trajectories)

    assert len({episode.scan for episode in chosen}) > 1
    for i, episode in enumerate(chosen):
        expected = plain_metrics(graphs[i], list(episode.path), trajectories[i], 3.0)
        assert batch.episode(i).as_dict() == pytest.approx(expected, rel=1e-9, abs=1e-12), episode.instr_id


def test_metric_names_match_record() -> None:
    assert tuple(EpisodeMetrics.__dataclass_fields__) == METRIC_NAMES
