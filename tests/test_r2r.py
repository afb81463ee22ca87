"""Tests of the R2R loader and the episode records, on small files and on the real splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectivity import Connectivity, DataNotFoundError
from envs.episodes import DatasetFormatError, Episode, Split, UnknownEpisodeError
from envs.r2r import R2R_SPLITS, load_r2r_split, r2r_split_path, read_r2r_file

# (instructions, paths) of the published R2R release.
REAL_SIZES = {
    "train": (14_039, 4_675),
    "val_seen": (1_021, 340),
    "val_unseen": (2_349, 783),
    "test": (4_173, 1_391),
}


def path_item(
    path_id: int, instructions: list[str], scan: str = "scanA", path: list[str] | None = None
) -> dict:
    return {
        "path_id": path_id,
        "scan": scan,
        "path": path if path is not None else ["v0", "v1", "v2"],
        "heading": 1.25,
        "distance": 4.0,
        "instructions": instructions,
    }


SMALL = [
    path_item(17, ["Walk to the sofa.", "Go to the sofa.", "Stop by the sofa."]),
    path_item(
        4, ["Turn left.", "Go left.", "Left, then stop.", "Head left."], scan="scanB", path=["w0", "w1"]
    ),
]


def write_split(folder: Path, name: str, items: object) -> Path:
    path = folder / f"R2R_{name}.json"
    path.write_text(json.dumps(items))
    return path


@pytest.fixture
def small(tmp_path: Path) -> Split:
    return read_r2r_file(write_split(tmp_path, "small", SMALL))


# --- reading a file -------------------------------------------------------------------


def test_read_one_episode_per_instruction(small: Split) -> None:
    assert len(small) == 7


def test_read_instr_ids(small: Split) -> None:
    expected = ["17_0", "17_1", "17_2", "4_0", "4_1", "4_2", "4_3"]
    assert [episode.instr_id for episode in small] == expected


def test_read_instruction_text(small: Split) -> None:
    assert small["4_3"].instruction == "Head left."


def test_read_fields(small: Split) -> None:
    episode = small["17_1"]
    assert episode.scan == "scanA"
    assert episode.path_id == 17
    assert episode.path == ("v0", "v1", "v2")
    assert episode.heading == 1.25


def test_read_start_and_goal(small: Split) -> None:
    assert (small["4_0"].start, small["4_0"].goal) == ("w0", "w1")


def test_read_name_from_file(small: Split) -> None:
    assert small.name == "small"


def test_read_source(tmp_path: Path) -> None:
    path = write_split(tmp_path, "small", SMALL)
    assert read_r2r_file(path).source == path


def test_read_has_reference(small: Split) -> None:
    assert small.has_reference


def test_read_test_name_without_reference(tmp_path: Path) -> None:
    split = read_r2r_file(write_split(tmp_path, "test", [path_item(1, ["Go."], path=["v0"])]))
    assert not split.has_reference


def test_read_explicit_reference_flag(tmp_path: Path) -> None:
    split = read_r2r_file(write_split(tmp_path, "small", SMALL), has_reference=False)
    assert not split["17_0"].has_reference


def test_read_scans(small: Split) -> None:
    assert small.scans == ["scanA", "scanB"]


def test_read_contains(small: Split) -> None:
    assert "4_3" in small
    assert "4_4" not in small


def test_read_path_id_from_string(tmp_path: Path) -> None:
    item = path_item(9, ["Go."]) | {"path_id": "9"}
    split = read_r2r_file(write_split(tmp_path, "small", [item]))
    assert split["9_0"].path_id == 9


# --- malformed files ------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="R2R_absent.json"):
        read_r2r_file(tmp_path / "R2R_absent.json")


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "R2R_bad.json"
    path.write_text("[{")
    with pytest.raises(DatasetFormatError, match="R2R_bad.json"):
        read_r2r_file(path)


def test_not_a_list(tmp_path: Path) -> None:
    path = write_split(tmp_path, "bad", {"path_id": 1})
    with pytest.raises(DatasetFormatError, match="expected a JSON list"):
        read_r2r_file(path)


def test_missing_key_names_file_and_path(tmp_path: Path) -> None:
    item = path_item(31, ["Go."])
    del item["scan"]
    path = write_split(tmp_path, "bad", [path_item(30, ["Go."]), item])
    with pytest.raises(DatasetFormatError) as raised:
        read_r2r_file(path)
    assert str(path) in str(raised.value)
    assert "path_id 31" in str(raised.value)
    assert "entry 1" in str(raised.value)


def test_bad_path_id(tmp_path: Path) -> None:
    path = write_split(tmp_path, "bad", [path_item(1, ["Go."]) | {"path_id": "seven"}])
    with pytest.raises(DatasetFormatError, match="path_id seven"):
        read_r2r_file(path)


def test_bad_heading(tmp_path: Path) -> None:
    path = write_split(tmp_path, "bad", [path_item(12, ["Go."]) | {"heading": None}])
    with pytest.raises(DatasetFormatError, match="path_id 12"):
        read_r2r_file(path)


def test_entry_not_object(tmp_path: Path) -> None:
    path = write_split(tmp_path, "bad", [["not", "an", "object"]])
    with pytest.raises(DatasetFormatError, match="entry 0"):
        read_r2r_file(path)


def test_empty_path(tmp_path: Path) -> None:
    path = write_split(tmp_path, "bad", [path_item(44, ["Go."], path=[])])
    with pytest.raises(DatasetFormatError) as raised:
        read_r2r_file(path)
    assert str(path) in str(raised.value)
    assert "path_id 44" in str(raised.value)


def test_repeated_path_id(tmp_path: Path) -> None:
    path = write_split(tmp_path, "bad", [path_item(5, ["Go."]), path_item(5, ["Stop."])])
    with pytest.raises(DatasetFormatError, match="5_0"):
        read_r2r_file(path)


def test_instructions_string_rejected(tmp_path: Path) -> None:
    path = write_split(tmp_path, "bad", [path_item(8, ["Go."]) | {"instructions": "Go left."}])
    with pytest.raises(DatasetFormatError, match="path_id 8"):
        read_r2r_file(path)


def test_path_string_rejected(tmp_path: Path) -> None:
    path = write_split(tmp_path, "bad", [path_item(8, ["Go."]) | {"path": "v0"}])
    with pytest.raises(DatasetFormatError, match="path_id 8"):
        read_r2r_file(path)


# --- split lookup ---------------------------------------------------------------------


def test_unknown_instr_id_suggests(small: Split) -> None:
    with pytest.raises(UnknownEpisodeError) as raised:
        small["17_5"]
    assert "'17_5'" in str(raised.value)
    assert "Did you mean" in str(raised.value)
    assert "'17_0'" in str(raised.value)


def test_unknown_instr_id_names_split(small: Split) -> None:
    with pytest.raises(UnknownEpisodeError, match="'small'"):
        small["999_0"]


def test_unknown_instr_id_is_lookup_error(small: Split) -> None:
    with pytest.raises(LookupError):
        small["999_0"]


def test_subset_order(small: Split) -> None:
    subset = small.subset(["4_2", "17_0"])
    assert [episode.instr_id for episode in subset] == ["4_2", "17_0"]


def test_subset_unknown(small: Split) -> None:
    with pytest.raises(UnknownEpisodeError):
        small.subset(["4_9"])


def test_split_duplicate_instr_id() -> None:
    episode = Episode("1_0", "scanA", 1, ("v0", "v1"), 0.0, "Go.")
    with pytest.raises(DatasetFormatError, match="1_0"):
        Split("custom", [episode, episode])


def test_split_mixed_reference() -> None:
    with_goal = Episode("1_0", "scanA", 1, ("v0", "v1"), 0.0, "Go.")
    without = Episode("2_0", "scanA", 2, ("v0",), 0.0, "Go.", has_reference=False)
    assert not Split("custom", [with_goal, without]).has_reference


# --- episodes -------------------------------------------------------------------------


def test_episode_start() -> None:
    assert Episode("1_0", "scanA", 1, ("v0", "v1"), 0.0, "Go.").start == "v0"


def test_episode_goal() -> None:
    assert Episode("1_0", "scanA", 1, ("v0", "v1"), 0.0, "Go.").goal == "v1"


def test_episode_goal_without_reference() -> None:
    episode = Episode("3_1", "scanA", 3, ("v0",), 0.0, "Go.", has_reference=False)
    with pytest.raises(DatasetFormatError, match="3_1"):
        _ = episode.goal


def test_episode_default_language() -> None:
    assert Episode("1_0", "scanA", 1, ("v0",), 0.0, "Go.").language == "en"


# --- split paths ----------------------------------------------------------------------


def test_split_path(tmp_path: Path) -> None:
    (tmp_path / "R2R").mkdir()
    write_split(tmp_path / "R2R", "val_seen", SMALL)
    assert r2r_split_path("val_seen", tmp_path) == tmp_path / "R2R" / "R2R_val_seen.json"


def test_split_path_unknown_lists_known(tmp_path: Path) -> None:
    (tmp_path / "R2R").mkdir()
    with pytest.raises(DataNotFoundError) as raised:
        r2r_split_path("val_unsene", tmp_path)
    assert "R2R_val_unsene.json" in str(raised.value)
    for name in R2R_SPLITS:
        assert name in str(raised.value)


def test_split_path_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        r2r_split_path("train", tmp_path / "absent")


def test_load_split_by_name(tmp_path: Path) -> None:
    (tmp_path / "R2R").mkdir()
    write_split(tmp_path / "R2R", "mini", SMALL)
    split = load_r2r_split("mini", tmp_path)
    assert (split.name, len(split)) == ("mini", 7)


def test_load_test_split_without_reference(tmp_path: Path) -> None:
    (tmp_path / "R2R").mkdir()
    write_split(tmp_path / "R2R", "test", [path_item(1, ["Go."], path=["v0"])])
    assert not load_r2r_split("test", tmp_path).has_reference


# --- real splits ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_splits(data_dir: Path) -> dict[str, Split]:
    return {name: load_r2r_split(name, data_dir) for name in R2R_SPLITS}


@pytest.fixture(scope="module")
def real_items(data_dir: Path) -> dict[str, list[dict]]:
    return {name: json.loads((data_dir / "R2R" / f"R2R_{name}.json").read_text()) for name in R2R_SPLITS}


@pytest.mark.parametrize("name", R2R_SPLITS)
def test_real_instruction_count(real_splits, name: str) -> None:
    assert len(real_splits[name]) == REAL_SIZES[name][0]


@pytest.mark.parametrize("name", R2R_SPLITS)
def test_real_path_count(real_splits, name: str) -> None:
    assert len({episode.path_id for episode in real_splits[name]}) == REAL_SIZES[name][1]


@pytest.mark.parametrize("name", R2R_SPLITS)
def test_real_instr_ids(real_splits, real_items, name: str) -> None:
    expected = [
        f"{item['path_id']}_{k}" for item in real_items[name] for k in range(len(item["instructions"]))
    ]
    assert [episode.instr_id for episode in real_splits[name]] == expected


def test_real_four_instruction_path(real_splits, real_items) -> None:
    item = next(item for item in real_items["train"] if len(item["instructions"]) == 4)
    episode = real_splits["train"][f"{item['path_id']}_3"]
    assert episode.instruction == item["instructions"][3]


def test_real_lookup(real_splits, real_items) -> None:
    item = real_items["val_seen"][100]
    episode = real_splits["val_seen"][f"{item['path_id']}_1"]
    assert episode.instruction == item["instructions"][1]
    assert episode.path == tuple(item["path"])
    assert episode.scan == item["scan"]


def test_real_test_split_without_reference(real_splits) -> None:
    assert not real_splits["test"].has_reference


def test_real_test_goal_raises(real_splits) -> None:
    with pytest.raises(DatasetFormatError):
        _ = real_splits["test"].episodes[0].goal


def test_real_test_paths_hold_start(real_splits) -> None:
    assert {len(episode.path) for episode in real_splits["test"]} == {1}


@pytest.mark.parametrize("name", ["train", "val_seen", "val_unseen"])
def test_real_split_with_reference(real_splits, name: str) -> None:
    assert real_splits[name].has_reference


def test_real_unseen_scans_disjoint(real_splits) -> None:
    assert not set(real_splits["val_unseen"].scans) & set(real_splits["train"].scans)


def test_real_seen_scans_in_train(real_splits) -> None:
    assert set(real_splits["val_seen"].scans) <= set(real_splits["train"].scans)


def test_real_unknown_instr_id_suggests(real_splits) -> None:
    split = real_splits["val_unseen"]
    known = split.episodes[0].instr_id
    with pytest.raises(UnknownEpisodeError, match="Did you mean"):
        split[known + "9"]


def test_real_paths_follow_edges(real_splits, real_connectivity: Connectivity) -> None:
    # Consecutive viewpoints of every reference path are joined by a navigable edge.
    for name in ("train", "val_seen", "val_unseen"):
        seen_paths: set[int] = set()
        for episode in real_splits[name]:
            if episode.path_id in seen_paths:
                continue
            seen_paths.add(episode.path_id)
            graph = real_connectivity[episode.scan]
            for current, following in zip(episode.path, episode.path[1:]):
                assert graph.adjacency[graph.index(current), graph.index(following)], episode.instr_id
