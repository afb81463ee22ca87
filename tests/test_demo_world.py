"""Tests of the generated demo world: formats, graphs, paths, instructions and features.

Expected values come from the written files (poses, flags, paths) and the floor plans,
recomputed here without the generator's helpers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from connectivity import Connectivity
from envs import demo_world
from envs.demo_world import (
    DEMO_DIR_ENV,
    DEMO_SCANS,
    SPLIT_SCANS,
    build_demo_world,
    demo_features_path,
    ensure_demo_world,
    generate_world,
)
from envs.features import TsvFeatureStore
from envs.r2r import R2R_SPLITS, load_r2r_split

FLOOR_HEIGHT_M = 3.0
TURN_PHRASE = re.compile(r"turn (left|right|around)|straight")


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_world(tmp_path_factory.mktemp("demo") / "world")


@pytest.fixture(scope="module")
def world() -> demo_world.DemoWorld:
    return generate_world()


@pytest.fixture(scope="module")
def entries(world_dir: Path) -> dict[str, list[dict]]:
    return {
        scan: json.loads((world_dir / "connectivity" / f"{scan}_connectivity.json").read_text())
        for scan in DEMO_SCANS
    }


@pytest.fixture(scope="module")
def splits(world_dir: Path) -> dict[str, list[dict]]:
    return {split: json.loads((world_dir / "R2R" / f"R2R_{split}.json").read_text()) for split in R2R_SPLITS}


def positions_of(scan_entries: list[dict]) -> dict[str, np.ndarray]:
    return {entry["image_id"]: np.array(entry["pose"])[[3, 7, 11]] for entry in scan_entries}


def floor_of(z: float) -> int:
    return int(z // FLOOR_HEIGHT_M)


def shortest_distances(scan_entries: list[dict]) -> np.ndarray:
    """All-pairs shortest distances by Floyd-Warshall over included, unobstructed pairs."""
    positions = np.array([np.array(entry["pose"])[[3, 7, 11]] for entry in scan_entries])
    included = np.array([entry["included"] for entry in scan_entries])
    unobstructed = np.array([entry["unobstructed"] for entry in scan_entries])
    edges = unobstructed & included[:, None] & included[None, :]
    lengths = np.linalg.norm(positions[:, None] - positions[None, :], axis=-1)
    distances = np.where(edges, lengths, np.inf)
    np.fill_diagonal(distances, 0.0)
    for k in range(len(scan_entries)):
        distances = np.minimum(distances, distances[:, k : k + 1] + distances[k : k + 1, :])
    return distances


def bearing_deg(start: np.ndarray, end: np.ndarray) -> float:
    return math.degrees(math.atan2(end[0] - start[0], end[1] - start[1])) % 360.0


def signed_deg(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def reference_items(splits: dict[str, list[dict]]) -> list[dict]:
    return [item for split in ("train", "val_seen", "val_unseen") for item in splits[split]]


def mentions(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text.lower()) is not None


def room_at(world: demo_world.DemoWorld, scan: str, position: np.ndarray) -> str:
    floor = floor_of(position[2])
    for room in world.scans[scan].plan.rooms:
        if room.floor == floor and room.x0 <= position[0] <= room.x1 and room.y0 <= position[1] <= room.y1:
            return room.name
    raise AssertionError(f"{position} lies in no room of {scan}")


# --- Files and formats ---------------------------------------------------------------------


def test_folder_has_every_file(world_dir: Path) -> None:
    expected = [world_dir / "connectivity" / "scans.txt", world_dir / "README.md"]
    expected += [world_dir / "connectivity" / f"{scan}_connectivity.json" for scan in DEMO_SCANS]
    expected += [world_dir / "R2R" / f"R2R_{split}.json" for split in R2R_SPLITS]
    expected += [world_dir / "features" / "demo_views.tsv"]
    for path in expected:
        assert path.is_file(), path


def test_scan_list_matches_constants(world_dir: Path) -> None:
    listed = (world_dir / "connectivity" / "scans.txt").read_text().split()
    assert listed == list(DEMO_SCANS)


def test_connectivity_loads(world_dir: Path) -> None:
    connectivity = Connectivity(world_dir / "connectivity")
    assert list(connectivity) == list(DEMO_SCANS)
    for scan in DEMO_SCANS:
        assert 8 <= len(connectivity[scan]) <= 20, scan


def test_entries_follow_format(entries: dict[str, list[dict]]) -> None:
    for scan, scan_entries in entries.items():
        for entry in scan_entries:
            assert re.fullmatch(r"[0-9a-f]{32}", entry["image_id"]), (scan, entry["image_id"])
            assert len(entry["pose"]) == 16, scan
            assert entry["pose"][12:] == [0.0, 0.0, 0.0, 1.0], scan
            assert len(entry["visible"]) == len(scan_entries), scan
            assert len(entry["unobstructed"]) == len(scan_entries), scan


def test_camera_height_matches_pose(entries: dict[str, list[dict]]) -> None:
    for scan, scan_entries in entries.items():
        for entry in scan_entries:
            z = entry["pose"][11]
            assert 1.4 <= entry["height"] <= 1.6, scan
            assert z - floor_of(z) * FLOOR_HEIGHT_M == pytest.approx(entry["height"], abs=1e-4), scan


def test_pose_rotation_orthonormal(entries: dict[str, list[dict]]) -> None:
    for scan, scan_entries in entries.items():
        for entry in scan_entries:
            rotation = np.array(entry["pose"]).reshape(4, 4)[:3, :3]
            assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5), scan


def test_viewpoints_spread_out(entries: dict[str, list[dict]]) -> None:
    for scan, scan_entries in entries.items():
        positions = np.array([np.array(entry["pose"])[[3, 7, 11]] for entry in scan_entries])
        gaps = np.linalg.norm(positions[:, None] - positions[None, :], axis=-1)
        np.fill_diagonal(gaps, np.inf)
        assert gaps.min() >= 0.5, scan


def test_unobstructed_symmetric(entries: dict[str, list[dict]]) -> None:
    for scan, scan_entries in entries.items():
        unobstructed = np.array([entry["unobstructed"] for entry in scan_entries])
        assert (unobstructed == unobstructed.T).all(), scan
        assert not unobstructed.diagonal().any(), scan


def test_edges_are_short(entries: dict[str, list[dict]]) -> None:
    for scan, scan_entries in entries.items():
        positions = np.array([np.array(entry["pose"])[[3, 7, 11]] for entry in scan_entries])
        for i, entry in enumerate(scan_entries):
            for j in np.flatnonzero(entry["unobstructed"]):
                same_floor = floor_of(positions[i, 2]) == floor_of(positions[j, 2])
                # Stairs join floors with one longer edge.
                limit = demo_world.MAX_EDGE_M if same_floor else 5.0
                assert np.linalg.norm(positions[i] - positions[j]) <= limit, (scan, i, j)


def test_graphs_connected(entries: dict[str, list[dict]]) -> None:
    for scan, scan_entries in entries.items():
        included = np.array([entry["included"] for entry in scan_entries])
        distances = shortest_distances(scan_entries)[np.ix_(included, included)]
        assert np.isfinite(distances).all(), scan


def test_excluded_viewpoint_has_no_edges(world_dir: Path, entries: dict[str, list[dict]]) -> None:
    connectivity = Connectivity(world_dir / "connectivity")
    excluded = [
        (scan, i)
        for scan, scan_entries in entries.items()
        for i, e in enumerate(scan_entries)
        if not e["included"]
    ]
    assert len(excluded) == 1
    scan, index = excluded[0]
    # The file keeps its unobstructed flags, as real files do, so the graph must drop its edges.
    assert any(entries[scan][index]["unobstructed"])
    assert not connectivity[scan].adjacency[index].any()
    assert not connectivity[scan].adjacency[:, index].any()


def test_excluded_viewpoint_in_no_path(entries: dict[str, list[dict]], splits: dict[str, list[dict]]) -> None:
    excluded = {e["image_id"] for scan_entries in entries.values() for e in scan_entries if not e["included"]}
    for split, items in splits.items():
        for item in items:
            assert not excluded & set(item["path"]), (split, item["path_id"])


def test_stairs_join_floors(entries: dict[str, list[dict]]) -> None:
    floors = {scan: {floor_of(e["pose"][11]) for e in scan_entries} for scan, scan_entries in entries.items()}
    assert floors["demoTerrace"] == {0, 1}
    assert floors["demoCottage"] == {0}


# --- R2R splits ----------------------------------------------------------------------------


def test_splits_load(world_dir: Path, splits: dict[str, list[dict]]) -> None:
    for split in R2R_SPLITS:
        loaded = load_r2r_split(split, data_dir=world_dir)
        assert len(loaded) == 3 * len(splits[split]), split
        assert loaded.episodes[0].has_reference == (split != "test"), split


def test_split_sizes(splits: dict[str, list[dict]]) -> None:
    instructions = {
        split: sum(len(item["instructions"]) for item in items) for split, items in splits.items()
    }
    assert instructions["train"] >= 300
    for split in ("val_seen", "val_unseen", "test"):
        assert 24 <= instructions[split] <= 100, split


def test_split_scans(splits: dict[str, list[dict]]) -> None:
    for split, items in splits.items():
        assert {item["scan"] for item in items} == set(SPLIT_SCANS[split]), split


def test_unseen_scans_absent_from_train(splits: dict[str, list[dict]]) -> None:
    seen = {item["scan"] for split in ("train", "val_seen") for item in splits[split]}
    for split in ("val_unseen", "test"):
        assert not seen & {item["scan"] for item in splits[split]}, split
    assert not {i["scan"] for i in splits["val_unseen"]} & {i["scan"] for i in splits["test"]}


def test_path_ids_unique(splits: dict[str, list[dict]]) -> None:
    path_ids = [item["path_id"] for items in splits.values() for item in items]
    assert all(isinstance(path_id, int) for path_id in path_ids)
    assert len(set(path_ids)) == len(path_ids)


def test_test_paths_hold_start_only(splits: dict[str, list[dict]]) -> None:
    for item in splits["test"]:
        assert len(item["path"]) == 1, item["path_id"]
        assert set(item) == {"scan", "path_id", "path", "heading", "instructions"}, item["path_id"]


def test_headings_in_range(splits: dict[str, list[dict]]) -> None:
    for items in splits.values():
        for item in items:
            assert 0.0 <= item["heading"] < 2.0 * math.pi, item["path_id"]


def test_paths_are_shortest(entries: dict[str, list[dict]], splits: dict[str, list[dict]]) -> None:
    distances = {scan: shortest_distances(scan_entries) for scan, scan_entries in entries.items()}
    for item in reference_items(splits):
        scan_entries = entries[item["scan"]]
        index = {entry["image_id"]: i for i, entry in enumerate(scan_entries)}
        positions = positions_of(scan_entries)
        path = item["path"]
        length = 0.0
        for a, b in zip(path, path[1:]):
            assert scan_entries[index[a]]["unobstructed"][index[b]], (item["path_id"], a, b)
            length += float(np.linalg.norm(positions[a] - positions[b]))
        shortest = distances[item["scan"]][index[path[0]], index[path[-1]]]
        assert length == pytest.approx(shortest, abs=1e-6), item["path_id"]
        assert item["distance"] == round(length, 2), item["path_id"]


def test_path_lengths(splits: dict[str, list[dict]]) -> None:
    for item in reference_items(splits):
        assert 3 <= len(item["path"]) <= 6, item["path_id"]
        assert 3.0 <= item["distance"] <= 20.0, item["path_id"]


# --- Instructions --------------------------------------------------------------------------


def test_three_distinct_instructions(splits: dict[str, list[dict]]) -> None:
    for items in splits.values():
        for item in items:
            assert len(item["instructions"]) == 3, item["path_id"]
            assert len(set(item["instructions"])) == 3, item["path_id"]


def test_instructions_name_goal_landmark(
    world: demo_world.DemoWorld, entries: dict[str, list[dict]], splits: dict[str, list[dict]]
) -> None:
    for item in reference_items(splits):
        goal = positions_of(entries[item["scan"]])[item["path"][-1]]
        landmarks = [
            lm for lm in world.scans[item["scan"]].landmarks if floor_of(lm.position[2]) == floor_of(goal[2])
        ]
        nearest = min(
            landmarks, key=lambda lm: math.hypot(lm.position[0] - goal[0], lm.position[1] - goal[1])
        )
        assert math.hypot(nearest.position[0] - goal[0], nearest.position[1] - goal[1]) <= 1.5, item[
            "path_id"
        ]
        for text in item["instructions"]:
            assert mentions(text, nearest.name), (item["path_id"], nearest.name, text)


def test_turn_words_match_geometry(entries: dict[str, list[dict]], splits: dict[str, list[dict]]) -> None:
    accepts = {
        "left": lambda turn: -150.0 < turn < -30.0,
        "right": lambda turn: 30.0 < turn < 150.0,
        "around": lambda turn: abs(turn) > 140.0,
        "straight": lambda turn: abs(turn) < 40.0,
    }
    checked = 0
    for item in reference_items(splits):
        positions = positions_of(entries[item["scan"]])
        points = [positions[v] for v in item["path"]]
        bearings = [bearing_deg(a, b) for a, b in zip(points, points[1:])]
        turns = [signed_deg(bearings[0] - math.degrees(item["heading"]))]
        turns += [signed_deg(after - before) for before, after in zip(bearings, bearings[1:])]
        for text in item["instructions"]:
            words = [match.group(1) or "straight" for match in TURN_PHRASE.finditer(text.lower())]
            # Each turn word must match a later turn of the path than the word before it.
            position = 0
            for word in words:
                while position < len(turns) and not accepts[word](turns[position]):
                    position += 1
                assert position < len(turns), (item["path_id"], text, [round(t) for t in turns])
                position += 1
                checked += 1
    assert checked >= 300


def test_side_words_match_geometry(
    world: demo_world.DemoWorld, entries: dict[str, list[dict]], splits: dict[str, list[dict]]
) -> None:
    checked = 0
    for item in reference_items(splits):
        positions = positions_of(entries[item["scan"]])
        points = [positions[v] for v in item["path"]]
        for landmark in world.scans[item["scan"]].landmarks:
            for text in item["instructions"]:
                for side in ("left", "right"):
                    if f"{landmark.name} on your {side}" not in text:
                        continue
                    # Walking a -> b into a viewpoint beside the landmark, cross > 0 means on the left.
                    crosses = [
                        (b[0] - a[0]) * (landmark.position[1] - b[1])
                        - (b[1] - a[1]) * (landmark.position[0] - b[0])
                        for a, b in zip(points, points[1:])
                        if math.hypot(landmark.position[0] - b[0], landmark.position[1] - b[1]) <= 1.5
                    ]
                    expected = [c > 0 if side == "left" else c < 0 for c in crosses]
                    assert any(expected), (item["path_id"], text)
                    checked += 1
    assert checked >= 20


def test_named_rooms_on_path(
    world: demo_world.DemoWorld, entries: dict[str, list[dict]], splits: dict[str, list[dict]]
) -> None:
    for item in reference_items(splits):
        positions = positions_of(entries[item["scan"]])
        visited = {room_at(world, item["scan"], positions[v]) for v in item["path"]}
        names = {room.name for room in world.scans[item["scan"]].plan.rooms}
        for text in item["instructions"]:
            named = {name for name in names if mentions(text, name)}
            assert named <= visited, (item["path_id"], text, visited)


def test_named_landmarks_near_path(
    world: demo_world.DemoWorld, entries: dict[str, list[dict]], splits: dict[str, list[dict]]
) -> None:
    for item in reference_items(splits):
        positions = positions_of(entries[item["scan"]])
        points = [positions[v] for v in item["path"]]
        for landmark in world.scans[item["scan"]].landmarks:
            if not any(mentions(text, landmark.name) for text in item["instructions"]):
                continue
            gaps = [
                math.hypot(landmark.position[0] - p[0], landmark.position[1] - p[1])
                for p in points
                if floor_of(p[2]) == floor_of(landmark.position[2])
            ]
            assert min(gaps) <= 1.5, (item["path_id"], landmark.name)


# --- Features ------------------------------------------------------------------------------


def test_features_cover_viewpoints(world_dir: Path, entries: dict[str, list[dict]]) -> None:
    store = TsvFeatureStore(demo_features_path(world_dir))
    expected = {(scan, e["image_id"]) for scan, scan_entries in entries.items() for e in scan_entries}
    assert set(store.keys()) == expected
    assert store.dim == demo_world.DEFAULT_FEATURE_DIM
    assert (store.metadata["image_w"], store.metadata["image_h"], store.metadata["vfov"]) == (640, 480, 60.0)


def test_features_face_landmarks(
    world: demo_world.DemoWorld, world_dir: Path, entries: dict[str, list[dict]]
) -> None:
    store = TsvFeatureStore(demo_features_path(world_dir))
    margins = []
    for scan, scan_entries in entries.items():
        plan = world.scans[scan].plan
        for entry in scan_entries:
            camera = np.array(entry["pose"])[[3, 7, 11]]
            features = store.get(scan, entry["image_id"])
            unit = features / np.linalg.norm(features, axis=1, keepdims=True)
            room = room_at(world, scan, camera)
            for landmark in world.scans[scan].landmarks:
                target = np.array(landmark.position)
                horizontal = math.hypot(target[0] - camera[0], target[1] - camera[1])
                # Same room: nothing blocks the view, because rooms are convex and empty.
                if room_at(world, scan, target) != room or not 0.5 <= horizontal <= 3.0:
                    continue
                assert plan.room(room).floor == floor_of(target[2])
                heading_step = round(bearing_deg(camera, target) / 30.0) % 12
                elevation = math.degrees(math.atan2(target[2] - camera[2], horizontal))
                row = min(max(round(elevation / 30.0) + 1, 0), 2)
                embedding = world.landmark_embedding(landmark.name)
                facing = float(unit[heading_step + 12 * row] @ embedding)
                away = float(unit[(heading_step + 6) % 12 + 12 * row] @ embedding)
                margins.append(facing - away)
                assert facing - away > 0.25, (scan, entry["image_id"], landmark.name, facing, away)
    assert len(margins) >= 50


def test_feature_dim_setting(tmp_path: Path) -> None:
    out = build_demo_world(tmp_path / "small", feature_dim=16)
    store = TsvFeatureStore(demo_features_path(out))
    assert store.dim == 16


# --- Determinism and building --------------------------------------------------------------


def read_all_files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_same_bytes(world_dir: Path, tmp_path: Path) -> None:
    again = build_demo_world(tmp_path / "again")
    assert read_all_files(again) == read_all_files(world_dir)


def test_other_seed_differs(world_dir: Path, tmp_path: Path) -> None:
    other = read_all_files(build_demo_world(tmp_path / "other", seed=1))
    reference = read_all_files(world_dir)
    assert other.keys() == reference.keys()
    for name in (
        "connectivity/demoCottage_connectivity.json",
        "R2R/R2R_train.json",
        "features/demo_views.tsv",
    ):
        assert other[name] != reference[name], name


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_other_seeds_generate(seed: int) -> None:
    generated = generate_world(seed=seed)
    for split in R2R_SPLITS:
        assert len(generated.splits[split]) >= 8, (seed, split)


def test_ensure_reuses_world(tmp_path: Path) -> None:
    out = ensure_demo_world(tmp_path / "world")
    features = demo_features_path(out)
    before = (out.stat().st_ino, features.stat().st_ino, features.stat().st_mtime_ns)
    assert ensure_demo_world(tmp_path / "world") == out
    assert (out.stat().st_ino, features.stat().st_ino, features.stat().st_mtime_ns) == before


def test_ensure_rebuilds_other_seed(tmp_path: Path) -> None:
    out = ensure_demo_world(tmp_path / "world")
    first = (out / "R2R" / "R2R_train.json").read_bytes()
    ensure_demo_world(tmp_path / "world", seed=1)
    assert (out / "R2R" / "R2R_train.json").read_bytes() != first


def test_ensure_rebuilds_incomplete(tmp_path: Path) -> None:
    out = ensure_demo_world(tmp_path / "world")
    (out / "R2R" / "R2R_test.json").unlink()
    ensure_demo_world(tmp_path / "world")
    assert (out / "R2R" / "R2R_test.json").is_file()


def test_ensure_reads_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEMO_DIR_ENV, str(tmp_path / "from_env"))
    assert ensure_demo_world() == tmp_path / "from_env"
    assert (tmp_path / "from_env" / "connectivity" / "scans.txt").is_file()


def test_build_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(demo_world, "write_tsv_features", fail)
    with pytest.raises(OSError, match="disk full"):
        build_demo_world(tmp_path / "world")
    assert list(tmp_path.iterdir()) == []


def test_failed_rebuild_keeps_old_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = build_demo_world(tmp_path / "world")
    before = read_all_files(out)

    def fail(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(demo_world, "write_tsv_features", fail)
    with pytest.raises(OSError, match="disk full"):
        build_demo_world(out, seed=1)
    assert read_all_files(out) == before
    assert [path.name for path in tmp_path.iterdir()] == ["world"]


def test_build_rejects_file(tmp_path: Path) -> None:
    (tmp_path / "world").write_text("not a folder")
    with pytest.raises(FileExistsError, match="is a file"):
        build_demo_world(tmp_path / "world")


def test_build_rejects_foreign_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo world"):
        build_demo_world(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_default_dir_under_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEMO_DIR_ENV, raising=False)
    from connectivity.paths import PROJECT_ROOT

    assert demo_world.default_demo_dir() == PROJECT_ROOT / ".cache" / "demo_world"
