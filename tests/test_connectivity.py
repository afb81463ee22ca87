"""Tests of the navigation graphs: parsing, loading, shortest paths and data folders."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import connectivity.paths
from connectivity import (
    DATA_DIR_ENV,
    ClipnavError,
    Connectivity,
    ConnectivityFormatError,
    DataNotFoundError,
    NoPathError,
    UnknownScanError,
    UnknownViewpointError,
    connectivity_dir,
    default_data_dir,
    load_scan_graph,
    parse_scan_graph,
    read_scan_list,
    resolve_data_dir,
)

# Real scans whose all-pairs distances are checked against networkx.
REAL_SCANS = ("17DRP5sb8fy", "2azQ1b91cZZ")


def pose(x: float, y: float, z: float) -> list[float]:
    """Row-major 4x4 camera-to-world matrix with translation (x, y, z)."""
    return [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1]


def entries_from(
    positions: dict[str, tuple[float, float, float]],
    edges: set[frozenset[str]],
    excluded: frozenset[str] = frozenset(),
) -> list[dict]:
    """Connectivity entries with symmetric unobstructed flags for `edges`."""
    names = list(positions)
    return [
        {
            "image_id": name,
            "pose": pose(*positions[name]),
            "included": name not in excluded,
            "unobstructed": [frozenset((name, other)) in edges for other in names],
            "height": 1.5,
        }
        for name in names
    ]


# A 3-4-5 triangle lifted by 12 m: a-b is 5 m, b-c 12 m, a-c 13 m but obstructed, so the
# shortest route from a to c goes through b (17 m). d is excluded although the file marks
# it unobstructed from a; e is included with no edge at all.
TOY_POSITIONS = {
    "a": (0.0, 0.0, 0.0),
    "b": (3.0, 4.0, 0.0),
    "c": (3.0, 4.0, 12.0),
    "d": (1.0, 0.0, 0.0),
    "e": (9.0, 9.0, 0.0),
}
TOY_EDGES = {frozenset("ab"), frozenset("bc"), frozenset("ad")}


@pytest.fixture
def toy_graph():
    return parse_scan_graph("toy", entries_from(TOY_POSITIONS, TOY_EDGES, excluded=frozenset("d")))


@pytest.fixture
def toy_folder(tmp_path: Path) -> Path:
    entries = entries_from(TOY_POSITIONS, TOY_EDGES, excluded=frozenset("d"))
    (tmp_path / "scans.txt").write_text("toy\n\n  other  \n")
    (tmp_path / "toy_connectivity.json").write_text(json.dumps(entries))
    return tmp_path


# --- parsing --------------------------------------------------------------------------


def test_parse_keeps_file_order(toy_graph) -> None:
    assert toy_graph.viewpoint_ids == ("a", "b", "c", "d", "e")


def test_parse_positions_from_pose(toy_graph) -> None:
    # Translation = pose elements 3, 7, 11.
    assert toy_graph.positions[2].tolist() == [3.0, 4.0, 12.0]


def test_parse_heights(toy_graph) -> None:
    assert toy_graph.heights.tolist() == [1.5] * 5


def test_parse_missing_height_is_nan() -> None:
    entries = entries_from({"a": (0, 0, 0)}, set())
    del entries[0]["height"]
    graph = parse_scan_graph("s", entries)
    assert math.isnan(graph.heights[0])


def test_parse_included_flags(toy_graph) -> None:
    assert toy_graph.included.tolist() == [True, True, True, False, True]


def test_parse_empty_list_rejected() -> None:
    with pytest.raises(ConnectivityFormatError, match="scan s"):
        parse_scan_graph("s", [])


def test_parse_not_a_list_rejected() -> None:
    with pytest.raises(ConnectivityFormatError):
        parse_scan_graph("s", {"image_id": "a"})


def test_parse_missing_key_names_entry() -> None:
    entries = entries_from({"a": (0, 0, 0), "b": (1, 0, 0)}, set())
    del entries[1]["pose"]
    with pytest.raises(ConnectivityFormatError) as raised:
        parse_scan_graph("s", entries)
    assert "entry 1" in str(raised.value)
    assert "viewpoint b" in str(raised.value)


def test_parse_long_unobstructed_rejected() -> None:
    entries = entries_from({"a": (0, 0, 0), "b": (1, 0, 0)}, set())
    entries[0]["unobstructed"] = [False, True, True]
    with pytest.raises(ConnectivityFormatError, match="entry 0"):
        parse_scan_graph("s", entries)


def test_parse_entry_not_object_rejected() -> None:
    entries = entries_from({"a": (0, 0, 0), "b": (1, 0, 0)}, set())
    entries[1] = "junk"
    with pytest.raises(ConnectivityFormatError, match="entry 1"):
        parse_scan_graph("s", entries)


def test_parse_duplicate_ids_rejected() -> None:
    entries = entries_from({"a": (0, 0, 0), "b": (1, 0, 0)}, set())
    entries[1]["image_id"] = "a"
    with pytest.raises(ConnectivityFormatError, match="unique"):
        parse_scan_graph("s", entries)


def test_parse_short_unobstructed_rejected() -> None:
    entries = entries_from({"a": (0, 0, 0), "b": (1, 0, 0), "c": (2, 0, 0)}, set())
    entries[0]["unobstructed"] = [True]
    with pytest.raises(ConnectivityFormatError, match="entry 0"):
        parse_scan_graph("s", entries)


def test_parse_short_pose_rejected() -> None:
    entries = entries_from({"a": (0, 0, 0), "b": (1, 0, 0)}, set())
    entries[0]["pose"] = [5.0]
    with pytest.raises(ConnectivityFormatError, match="entry 0"):
        parse_scan_graph("s", entries)


def test_parse_string_included_rejected() -> None:
    entries = entries_from({"a": (0, 0, 0)}, set())
    entries[0]["included"] = "false"
    with pytest.raises(ConnectivityFormatError, match="entry 0"):
        parse_scan_graph("s", entries)


# --- graph ----------------------------------------------------------------------------


def test_graph_len(toy_graph) -> None:
    assert len(toy_graph) == 5


def test_graph_contains(toy_graph) -> None:
    assert "c" in toy_graph
    assert "z" not in toy_graph


def test_graph_index(toy_graph) -> None:
    assert toy_graph.index("d") == 3


def test_graph_unknown_viewpoint_names_it(toy_graph) -> None:
    with pytest.raises(UnknownViewpointError) as raised:
        toy_graph.index("zz")
    assert "'zz'" in str(raised.value)
    assert "'toy'" in str(raised.value)


def test_graph_unknown_viewpoint_suggests() -> None:
    graph = parse_scan_graph("s", entries_from({"kitchen": (0, 0, 0), "hallway": (1, 0, 0)}, set()))
    with pytest.raises(UnknownViewpointError, match="Did you mean 'kitchen'"):
        graph.index("kitchn")


def test_graph_unknown_viewpoint_is_lookup_error(toy_graph) -> None:
    with pytest.raises(LookupError):
        toy_graph.index("zz")


def test_graph_excluded_viewpoint_has_no_edges(toy_graph) -> None:
    # d is unobstructed from a in the file, but excluded.
    assert toy_graph.neighbors("d") == []


def test_graph_neighbors_file_order(toy_graph) -> None:
    assert toy_graph.neighbors("b") == ["a", "c"]


def test_graph_neighbors_skip_excluded(toy_graph) -> None:
    assert toy_graph.neighbors("a") == ["b"]


def test_graph_adjacency_symmetric(toy_graph) -> None:
    adjacency = toy_graph.adjacency
    assert (adjacency == adjacency.T).all()


def test_graph_edge_length_euclidean(toy_graph) -> None:
    # a = (0, 0, 0), c = (3, 4, 12): sqrt(9 + 16 + 144) = 13.
    assert toy_graph.edge_lengths[0, 2] == pytest.approx(13.0)


def test_graph_distance_adjacent(toy_graph) -> None:
    assert toy_graph.distance("a", "b") == pytest.approx(5.0)


def test_graph_distance_around_obstruction(toy_graph) -> None:
    # a-c is obstructed, so the route is a-b (5 m) then b-c (12 m).
    assert toy_graph.distance("a", "c") == pytest.approx(17.0)


def test_graph_distance_to_self(toy_graph) -> None:
    assert toy_graph.distance("c", "c") == 0.0


def test_graph_distance_unreachable_is_inf(toy_graph) -> None:
    assert toy_graph.distance("a", "e") == math.inf


def test_graph_distance_to_excluded_is_inf(toy_graph) -> None:
    assert toy_graph.distance("a", "d") == math.inf


def test_graph_shortest_path_detour(toy_graph) -> None:
    assert toy_graph.shortest_path("a", "c") == ["a", "b", "c"]


def test_graph_shortest_path_reversed(toy_graph) -> None:
    assert toy_graph.shortest_path("c", "a") == ["c", "b", "a"]


def test_graph_shortest_path_to_self(toy_graph) -> None:
    assert toy_graph.shortest_path("b", "b") == ["b"]


def test_graph_shortest_path_unreachable(toy_graph) -> None:
    with pytest.raises(NoPathError) as raised:
        toy_graph.shortest_path("a", "e")
    assert "'a'" in str(raised.value)
    assert "'e'" in str(raised.value)


def test_graph_next_hops_diagonal(toy_graph) -> None:
    assert toy_graph.next_hops[1, 1] == -9999


def test_graph_next_hop_towards_goal(toy_graph) -> None:
    # From a (0) towards c (2) the first step is b (1).
    assert toy_graph.next_hops[2, 0] == 1


def test_graph_path_length_sums_distances(toy_graph) -> None:
    # a -> b is 5 m, b -> a 5 m, a -> c 17 m through b.
    assert toy_graph.path_length(["a", "b", "a", "c"]) == pytest.approx(27.0)


def test_graph_path_length_single(toy_graph) -> None:
    assert toy_graph.path_length(["a"]) == 0.0


def test_graph_path_length_empty(toy_graph) -> None:
    assert toy_graph.path_length([]) == 0.0


def test_graph_path_length_unknown(toy_graph) -> None:
    with pytest.raises(UnknownViewpointError):
        toy_graph.path_length(["a", "zz"])


def test_graph_distance_uses_one_way_edge() -> None:
    # The graph documents that an edge counts if either direction is unobstructed, like
    # the undirected graph of the R2R scorer.
    entries = entries_from({"a": (0, 0, 0), "b": (2, 0, 0)}, set())
    entries[0]["unobstructed"] = [False, True]
    graph = parse_scan_graph("s", entries)
    assert graph.distance("b", "a") == pytest.approx(2.0)


def networkx_graph(graph_entries: list[dict]) -> nx.Graph:
    """Build the navigation graph with networkx straight from the file entries."""
    reference = nx.Graph()
    for entry in graph_entries:
        reference.add_node(entry["image_id"])
    for i, j in itertools.permutations(range(len(graph_entries)), 2):
        first, second = graph_entries[i], graph_entries[j]
        if first["included"] and second["included"] and first["unobstructed"][j]:
            p = np.array(first["pose"])[[3, 7, 11]]
            q = np.array(second["pose"])[[3, 7, 11]]
            reference.add_edge(first["image_id"], second["image_id"], weight=float(np.linalg.norm(p - q)))
    return reference


def assert_distances_match_networkx(graph, graph_entries: list[dict]) -> None:
    reference = dict(nx.all_pairs_dijkstra_path_length(networkx_graph(graph_entries)))
    for i, start in enumerate(graph.viewpoint_ids):
        for j, goal in enumerate(graph.viewpoint_ids):
            expected = reference[start].get(goal, math.inf)
            assert graph.distances[i, j] == pytest.approx(expected, abs=1e-9), (start, goal)


@st.composite
def random_entries(draw) -> list[dict]:
    count = draw(st.integers(1, 7))
    coordinates = st.floats(-20, 20, allow_nan=False)
    positions = {f"v{i}": (draw(coordinates), draw(coordinates), draw(coordinates)) for i in range(count)}
    pairs = list(itertools.combinations(positions, 2))
    edges = {frozenset(pair) for pair in pairs if draw(st.booleans())}
    excluded = frozenset(name for name in positions if draw(st.integers(0, 4)) == 0)
    return entries_from(positions, edges, excluded)


@settings(max_examples=60, deadline=None)
@given(random_entries())
def test_graph_distances_match_networkx(graph_entries: list[dict]) -> None:
    graph = parse_scan_graph("random", graph_entries)
    assert_distances_match_networkx(graph, graph_entries)


@settings(max_examples=60, deadline=None)
@given(random_entries())
def test_graph_shortest_paths_valid(graph_entries: list[dict]) -> None:
    graph = parse_scan_graph("random", graph_entries)
    for start, goal in itertools.product(graph.viewpoint_ids, repeat=2):
        if not math.isfinite(graph.distance(start, goal)):
            continue
        path = graph.shortest_path(start, goal)
        assert path[0] == start
        assert path[-1] == goal
        for current, following in zip(path, path[1:]):
            assert following in graph.neighbors(current)
        steps = sum(graph.edge_lengths[graph.index(p), graph.index(q)] for p, q in zip(path, path[1:]))
        assert steps == pytest.approx(graph.distance(start, goal), abs=1e-9)


# --- loader ---------------------------------------------------------------------------


def test_scan_list_skips_blank_lines(toy_folder: Path) -> None:
    assert read_scan_list(toy_folder) == ["toy", "other"]


def test_scan_list_missing(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="scans.txt"):
        read_scan_list(tmp_path)


def test_load_scan_graph_source(toy_folder: Path) -> None:
    graph = load_scan_graph(toy_folder, "toy")
    assert graph.source == toy_folder / "toy_connectivity.json"


def test_load_scan_graph_missing_file(toy_folder: Path) -> None:
    with pytest.raises(DataNotFoundError, match="other_connectivity.json"):
        load_scan_graph(toy_folder, "other")


def test_load_scan_graph_invalid_json(toy_folder: Path) -> None:
    (toy_folder / "bad_connectivity.json").write_text("[{")
    with pytest.raises(ConnectivityFormatError, match="bad_connectivity.json"):
        load_scan_graph(toy_folder, "bad")


def test_load_scan_graph_format_error_names_file(toy_folder: Path) -> None:
    (toy_folder / "bad_connectivity.json").write_text("[]")
    with pytest.raises(ConnectivityFormatError, match="bad_connectivity.json"):
        load_scan_graph(toy_folder, "bad")


def test_connectivity_lists_scans(toy_folder: Path) -> None:
    assert list(Connectivity(toy_folder)) == ["toy", "other"]


def test_connectivity_len(toy_folder: Path) -> None:
    assert len(Connectivity(toy_folder)) == 2


def test_connectivity_contains(toy_folder: Path) -> None:
    folder = Connectivity(toy_folder)
    assert "toy" in folder
    assert "tyo" not in folder


def test_connectivity_reads_graph(toy_folder: Path) -> None:
    graph = Connectivity(toy_folder)["toy"]
    assert graph.viewpoint_ids == ("a", "b", "c", "d", "e")


def test_connectivity_keeps_graph(toy_folder: Path) -> None:
    folder = Connectivity(toy_folder)
    assert folder["toy"] is folder["toy"]


def test_connectivity_unknown_scan_suggests(toy_folder: Path) -> None:
    with pytest.raises(UnknownScanError) as raised:
        Connectivity(toy_folder)["toyy"]
    assert "'toyy'" in str(raised.value)
    assert "Did you mean 'toy'" in str(raised.value)


def test_connectivity_listed_scan_without_file(toy_folder: Path) -> None:
    with pytest.raises(DataNotFoundError, match="other"):
        Connectivity(toy_folder)["other"]


def test_connectivity_explicit_scans(toy_folder: Path) -> None:
    folder = Connectivity(toy_folder, scans=["toy"])
    assert list(folder) == ["toy"]


def test_connectivity_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        Connectivity(tmp_path / "absent")


def test_connectivity_load_all(toy_folder: Path) -> None:
    folder = Connectivity(toy_folder, scans=["toy"])
    folder.load_all()
    assert folder["toy"].distances.shape == (5, 5)


def test_errors_share_base_class() -> None:
    for error in (ConnectivityFormatError, DataNotFoundError, UnknownScanError, UnknownViewpointError):
        assert issubclass(error, ClipnavError)


# --- data folder paths ----------------------------------------------------------------


def test_default_data_dir_from_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert default_data_dir() == tmp_path


def test_default_data_dir_beside_checkout(monkeypatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    checkout = Path(connectivity.paths.__file__).resolve().parent.parent
    assert default_data_dir() == checkout.parent / "shared" / "data"


def test_default_data_dir_expands_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(DATA_DIR_ENV, "~/data")
    assert default_data_dir() == tmp_path / "data"


def test_resolve_data_dir_explicit(tmp_path: Path) -> None:
    assert resolve_data_dir(tmp_path) == tmp_path


def test_resolve_data_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent"):
        resolve_data_dir(tmp_path / "absent")


def test_connectivity_dir_found(tmp_path: Path) -> None:
    (tmp_path / "connectivity").mkdir()
    (tmp_path / "connectivity" / "scans.txt").write_text("toy\n")
    assert connectivity_dir(tmp_path) == tmp_path / "connectivity"


def test_connectivity_dir_without_scans(tmp_path: Path) -> None:
    (tmp_path / "connectivity").mkdir()
    with pytest.raises(DataNotFoundError, match="scans.txt"):
        connectivity_dir(tmp_path)


# --- real data ------------------------------------------------------------------------


def test_real_scan_count(real_connectivity: Connectivity) -> None:
    assert len(real_connectivity) == 90


def test_real_viewpoint_count(real_connectivity: Connectivity) -> None:
    assert sum(len(real_connectivity[scan]) for scan in real_connectivity) == 10_800


def test_real_included_count(real_connectivity: Connectivity) -> None:
    assert sum(int(real_connectivity[scan].included.sum()) for scan in real_connectivity) == 10_567


def test_real_unknown_scan_suggests(real_connectivity: Connectivity) -> None:
    with pytest.raises(UnknownScanError, match="Did you mean '17DRP5sb8fy'"):
        real_connectivity["17DRP5sb8fx"]


def test_real_unknown_viewpoint_suggests(real_connectivity: Connectivity) -> None:
    graph = real_connectivity["17DRP5sb8fy"]
    known = graph.viewpoint_ids[0]
    with pytest.raises(UnknownViewpointError, match=f"Did you mean '{known}'"):
        graph.index(known[:-1] + "x")


@pytest.mark.parametrize("scan", REAL_SCANS)
def test_real_distances_match_networkx(real_connectivity: Connectivity, data_dir: Path, scan: str) -> None:
    graph_entries = json.loads((data_dir / "connectivity" / f"{scan}_connectivity.json").read_text())
    assert_distances_match_networkx(real_connectivity[scan], graph_entries)


@pytest.mark.parametrize("scan", REAL_SCANS)
def test_real_shortest_paths_valid(real_connectivity: Connectivity, scan: str) -> None:
    graph = real_connectivity[scan]
    adjacency = graph.adjacency
    rng = np.random.default_rng(0)
    included = np.flatnonzero(graph.included)
    for start, goal in rng.choice(included, size=(200, 2)):
        start_id, goal_id = graph.viewpoint_ids[start], graph.viewpoint_ids[goal]
        if not math.isfinite(graph.distance(start_id, goal_id)):
            continue
        path = [graph.index(v) for v in graph.shortest_path(start_id, goal_id)]
        for current, following in zip(path, path[1:]):
            assert adjacency[current, following], (start_id, goal_id)
        length = sum(np.linalg.norm(graph.positions[p] - graph.positions[q]) for p, q in zip(path, path[1:]))
        assert length == pytest.approx(graph.distance(start_id, goal_id), abs=1e-6)
