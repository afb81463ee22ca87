"""Trajectory files: reading, atomic writing and validation against a split and its graphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toy_graph import toy_entries

from connectivity import Connectivity, DataNotFoundError
from envs.episodes import Episode, Split
from envs.trajectories import (
    MAX_PRINTED_PROBLEMS,
    ProblemKind,
    Trajectory,
    TrajectoryFileError,
    TrajectoryValidationError,
    load_trajectories,
    read_trajectories,
    validate_trajectories,
    write_trajectories,
)

# A toy scan: a - b - c in a row, 3 m apart, with d 4 m from b and e joining c and d.
# f is excluded, so its unobstructed link to a is no edge.


@pytest.fixture
def connectivity(tmp_path: Path) -> Connectivity:
    root = tmp_path / "connectivity"
    root.mkdir()
    (root / "scans.txt").write_text("toy\n")
    (root / "toy_connectivity.json").write_text(json.dumps(toy_entries()))
    return Connectivity(root)


def episode(instr_id: str, path: tuple[str, ...], has_reference: bool = True) -> Episode:
    path_id = int(instr_id.split("_")[0])
    return Episode(instr_id, "toy", path_id, path, 0.0, "walk ahead", has_reference=has_reference)


@pytest.fixture
def split() -> Split:
    return Split(
        "toy_val",
        [episode("1_0", ("a", "b", "c")), episode("1_1", ("a", "b", "c")), episode("2_0", ("c", "e"))],
    )


def step(viewpoint: str) -> list:
    return [viewpoint, 0.0, 0.0]


def good_entries() -> list[dict]:
    return [
        {"instr_id": "1_0", "trajectory": [step("a"), ["a", 0.5, 0.0], step("b"), step("c")]},
        {"instr_id": "1_1", "trajectory": [step("a")]},
        {"instr_id": "2_0", "trajectory": [step("c"), step("e"), step("d")]},
    ]


def problem_set(error: TrajectoryValidationError) -> set[tuple[ProblemKind, str | None, int | None]]:
    return {(problem.kind, problem.instr_id, problem.entry) for problem in error.problems}


def test_read_invalid_json_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"instr_id": "1_0",')

    with pytest.raises(TrajectoryFileError, match="broken.json: invalid JSON"):
        read_trajectories(path)


def test_read_object_instead_of_list(tmp_path: Path) -> None:
    path = tmp_path / "object.json"
    path.write_text('{"1_0": []}')

    with pytest.raises(TrajectoryFileError, match="got a JSON dict"):
        read_trajectories(path)


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent.json"):
        read_trajectories(tmp_path / "absent.json")


def test_valid_entries_pass(split: Split, connectivity: Connectivity) -> None:
    trajectories = validate_trajectories(good_entries(), split, connectivity)

    assert list(trajectories) == ["1_0", "1_1", "2_0"]
    assert trajectories["1_0"].viewpoints == ("a", "a", "b", "c")
    assert trajectories["1_0"].headings == (0.0, 0.5, 0.0, 0.0)


def test_write_read_round_trip(tmp_path: Path, split: Split, connectivity: Connectivity) -> None:
    original = validate_trajectories(good_entries(), split, connectivity)
    path = tmp_path / "out" / "trajectories.json"
    write_trajectories(path, original.values())

    assert read_trajectories(path) == good_entries()
    assert load_trajectories(path, split, connectivity) == original


def test_write_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    write_trajectories(path, {"1_1": [("a", 0, 0.25)]})

    assert json.loads(path.read_text()) == [{"instr_id": "1_1", "trajectory": [["a", 0.0, 0.25]]}]


def test_write_leaderboard_entries(tmp_path: Path) -> None:
    path = tmp_path / "entries.json"
    write_trajectories(path, good_entries())

    assert json.loads(path.read_text()) == good_entries()


def test_write_rejects_malformed_steps(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"

    with pytest.raises(TrajectoryValidationError, match="1_1: step 0"):
        write_trajectories(path, {"1_1": [("a", "north", 0.0)]})
    assert not path.exists()


def test_every_problem_reported(split: Split, connectivity: Connectivity) -> None:
    entries = [
        ["1_0", []],  # 0: not an object
        {"trajectory": [step("a")]},  # 1: no instr_id
        {"instr_id": 10, "trajectory": [step("a")]},  # 2: instr_id not a string
        {"instr_id": "1_0", "trajectory": [step("a"), ["b", "east", 0.0]]},  # 3: malformed step
        {"instr_id": "1_0", "trajectory": [step("a"), step("b")]},  # 4: duplicate of 1_0
        {"instr_id": "9_0", "trajectory": [step("a")]},  # 5: not in the split
        {"instr_id": "1_1", "trajectory": [step("b"), step("x"), step("a"), step("f")]},  # 6
        {"instr_id": "2_0", "trajectory": [step("c"), step("a")]},  # 7: c to a skips b
        {"instr_id": "2_0", "trajectory": []},  # 8: duplicate, empty
    ]
    with pytest.raises(TrajectoryValidationError) as caught:
        validate_trajectories(entries, split, connectivity)

    assert len(caught.value.problems) == 12
    assert problem_set(caught.value) == {
        (ProblemKind.MALFORMED, None, 0),
        (ProblemKind.MALFORMED, None, 1),
        (ProblemKind.MALFORMED, None, 2),
        (ProblemKind.MALFORMED, "1_0", 3),
        (ProblemKind.DUPLICATE, "1_0", 4),
        (ProblemKind.UNKNOWN_ID, "9_0", 5),
        (ProblemKind.WRONG_START, "1_1", 6),
        (ProblemKind.UNKNOWN_VIEWPOINT, "1_1", 6),
        # b to x has an unknown end, x to a as well; a to f is no edge because f is excluded.
        (ProblemKind.NOT_ADJACENT, "1_1", 6),
        (ProblemKind.NOT_ADJACENT, "2_0", 7),
        (ProblemKind.MALFORMED, "2_0", 8),
        (ProblemKind.DUPLICATE, "2_0", 8),
    }


def test_problem_messages_name_values(split: Split, connectivity: Connectivity) -> None:
    entries = [
        {"instr_id": "1_0", "trajectory": [step("b"), step("c")]},
        {"instr_id": "1_1", "trajectory": [step("a"), step("c")]},
        {"instr_id": "2_0", "trajectory": [step("c"), step("ee")]},
    ]
    with pytest.raises(TrajectoryValidationError) as caught:
        validate_trajectories(entries, split, connectivity, source="run.json")
    message = str(caught.value)

    assert message.startswith("run.json: 3 problems with the trajectories for split 'toy_val'")
    assert "1_0: starts at viewpoint 'b', expected the episode's start viewpoint 'a'" in message
    assert "1_1: steps 0 to 1 move from 'a' to 'c', which no navigable edge joins in scan 'toy'" in message
    assert "2_0: step 1: viewpoint 'ee' is not in scan 'toy'. Did you mean 'e'?" in message
    assert "begin each trajectory at its episode's start viewpoint" in message


def test_missing_ids_reported(split: Split, connectivity: Connectivity) -> None:
    with pytest.raises(TrajectoryValidationError) as caught:
        validate_trajectories(good_entries()[:1], split, connectivity)

    assert problem_set(caught.value) == {
        (ProblemKind.MISSING_ID, "1_1", None),
        (ProblemKind.MISSING_ID, "2_0", None),
    }
    assert "--allow-missing" in str(caught.value)


def test_allow_missing_accepts_partial(split: Split, connectivity: Connectivity) -> None:
    trajectories = validate_trajectories(good_entries()[:1], split, connectivity, allow_missing=True)

    assert list(trajectories) == ["1_0"]


def test_message_caps_problem_list(split: Split, connectivity: Connectivity) -> None:
    entries = good_entries() + [{"instr_id": f"{100 + k}_0", "trajectory": [step("a")]} for k in range(30)]
    with pytest.raises(TrajectoryValidationError) as caught:
        validate_trajectories(entries, split, connectivity)
    lines = str(caught.value).splitlines()

    assert len(caught.value.problems) == 30
    assert sum(line.startswith("  1") for line in lines) == MAX_PRINTED_PROBLEMS
    assert f"  ... and {30 - MAX_PRINTED_PROBLEMS} more of the kinds counted above" in lines


def test_wrong_split_hint(split: Split, connectivity: Connectivity) -> None:
    entries = [{"instr_id": "7_0", "trajectory": [step("a")]}]
    with pytest.raises(
        TrajectoryValidationError, match="None of the file's 1 instr_ids are in split 'toy_val'"
    ):
        validate_trajectories(entries, split, connectivity, allow_missing=True)


def test_test_split_validates(connectivity: Connectivity) -> None:
    # Test splits hold only the start viewpoint of each path.
    test_split = Split("toy_test", [episode("5_0", ("d",), has_reference=False)])
    entries = [{"instr_id": "5_0", "trajectory": [step("d"), step("e"), step("c")]}]

    assert validate_trajectories(entries, test_split, connectivity)["5_0"].viewpoints == ("d", "e", "c")


def test_test_split_checks_start(connectivity: Connectivity) -> None:
    test_split = Split("toy_test", [episode("5_0", ("d",), has_reference=False)])
    entries = [{"instr_id": "5_0", "trajectory": [step("e")]}]

    with pytest.raises(TrajectoryValidationError) as caught:
        validate_trajectories(entries, test_split, connectivity)
    assert problem_set(caught.value) == {(ProblemKind.WRONG_START, "5_0", 0)}


def test_mapping_input_validates(split: Split, connectivity: Connectivity) -> None:
    mapping = {entry["instr_id"]: entry["trajectory"] for entry in good_entries()}

    assert validate_trajectories(mapping, split, connectivity) == validate_trajectories(
        good_entries(), split, connectivity
    )


def test_trajectory_steps_zip_fields() -> None:
    trajectory = Trajectory("1_0", ("a", "b"), (0.0, 0.5), (0.0, -0.5))

    assert trajectory.steps == [("a", 0.0, 0.0), ("b", 0.5, -0.5)]


def test_nan_heading_is_malformed(split: Split, connectivity: Connectivity) -> None:
    entries = good_entries()
    entries[1]["trajectory"] = [["a", float("nan"), 0.0]]

    with pytest.raises(TrajectoryValidationError, match="1_1: step 0 is list"):
        validate_trajectories(entries, split, connectivity)
