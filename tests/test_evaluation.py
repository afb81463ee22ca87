"""Evaluation reports and the clipnav-evaluate command, on a toy data folder and on real R2R data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from toy_graph import toy_entries

from connectivity import Connectivity
from envs.evaluation import ReportWriteError, evaluate_file, evaluate_trajectories, write_report
from envs.r2r import load_r2r_split
from envs.trajectories import TrajectoryValidationError, read_trajectories
from scripts.evaluate import main

# The toy scan: a - b - c in a row, 3 m apart, with d 4 m from b and e 4 m from c and 3 m
# from d. f is excluded. Shortest-path distances: a-c 6, b-d 4, c-d 7, c-e 4.

# Episodes 1_0 and 1_1 follow a -> b -> c; 2_0 goes c -> e.
TOY_SPLIT = [
    {"path_id": 1, "scan": "toy", "path": ["a", "b", "c"], "heading": 0.0, "distance": 6.0,
     "instructions": ["Walk past the sofa to the door.", "Go straight to the door."]},
    {"path_id": 2, "scan": "toy", "path": ["c", "e"], "heading": 0.0, "distance": 4.0,
     "instructions": ["Turn left into the hall."]},
]  # fmt: skip
TOY_TEST_SPLIT = [
    {"path_id": 5, "scan": "toy", "path": ["d"], "heading": 0.0, "instructions": ["Go to the kitchen."]}
]

# 1_0 turns at a and d and detours b -> d -> b; 1_1 stops at d; 2_0 follows its reference.
TOY_TRAJECTORIES = {
    "1_0": ["a", "a", "b", "d", "d", "b", "c"],
    "1_1": ["a", "b", "d"],
    "2_0": ["c", "e"],
}


def cls_stop_at_d() -> float:
    # Reference a b c, trajectory a b d: PC = (1 + 1 + e^-1) / 3, PL(R) = 6, PL(P) = 7.
    coverage = (2 + math.exp(-1)) / 3
    expected_length = 6 * coverage
    return coverage * expected_length / (expected_length + abs(expected_length - 7))


# Per-episode values worked out in tests/test_metrics.py for 1_0 and 1_1. 2_0 is perfect.
EXPECTED = {
    "navigation_error": [0.0, 7.0, 0.0],
    "success": [1.0, 0.0, 1.0],
    "oracle_success": [1.0, 0.0, 1.0],
    "trajectory_length": [14.0, 7.0, 4.0],
    "spl": [3 / 7, 0.0, 1.0],
    "ndtw": [math.exp(-4 / 9), math.exp(-7 / 9), 1.0],
    "sdtw": [math.exp(-4 / 9), 0.0, 1.0],
    "cls": [3 / 7, cls_stop_at_d(), 1.0],
}


def leaderboard(trajectories: dict[str, list[str]]) -> list[dict]:
    return [
        {"instr_id": instr_id, "trajectory": [[viewpoint, 0.0, 0.0] for viewpoint in viewpoints]}
        for instr_id, viewpoints in trajectories.items()
    ]


@pytest.fixture
def toy_data(tmp_path: Path) -> Path:
    """A data folder with the toy scan and the splits toy_val and test."""
    root = tmp_path / "data"
    (root / "connectivity").mkdir(parents=True)
    (root / "connectivity" / "scans.txt").write_text("toy\n")
    (root / "connectivity" / "toy_connectivity.json").write_text(json.dumps(toy_entries()))
    (root / "R2R").mkdir()
    (root / "R2R" / "R2R_toy_val.json").write_text(json.dumps(TOY_SPLIT))
    (root / "R2R" / "R2R_test.json").write_text(json.dumps(TOY_TEST_SPLIT))
    return root


@pytest.fixture
def toy_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy_val_trajectories.json"
    path.write_text(json.dumps(leaderboard(TOY_TRAJECTORIES)))
    return path


def evaluate_toy(toy_data: Path, trajectories: dict[str, list[str]], **options):
    split = load_r2r_split("toy_val", toy_data)
    return evaluate_trajectories(
        leaderboard(trajectories), split, Connectivity(toy_data / "connectivity"), **options
    )


def test_per_episode_values(toy_data: Path) -> None:
    report = evaluate_toy(toy_data, TOY_TRAJECTORIES)

    for name, expected in EXPECTED.items():
        assert getattr(report.metrics, name) == pytest.approx(expected), name


def test_means(toy_data: Path) -> None:
    means = evaluate_toy(toy_data, TOY_TRAJECTORIES).means()

    assert means["success"] == pytest.approx(2 / 3)
    assert means["spl"] == pytest.approx((3 / 7 + 1) / 3)
    assert means["navigation_error"] == pytest.approx(7 / 3)
    assert means["ndtw"] == pytest.approx((math.exp(-4 / 9) + math.exp(-7 / 9) + 1) / 3)


def test_rows_follow_split_order(toy_data: Path) -> None:
    shuffled = {instr_id: TOY_TRAJECTORIES[instr_id] for instr_id in ("2_0", "1_1", "1_0")}
    rows = evaluate_toy(toy_data, shuffled).rows()

    assert [row["instr_id"] for row in rows] == ["1_0", "1_1", "2_0"]
    assert rows[0]["scan"] == "toy"
    # 1_0 has 7 entries, so 6 steps; a b d b c is 4 changes of viewpoint.
    assert rows[0]["steps"] == 6
    assert rows[0]["moves"] == 4
    assert rows[1]["spl"] == 0.0


def test_table_lists_means(toy_data: Path) -> None:
    table = evaluate_toy(toy_data, TOY_TRAJECTORIES).format_table()

    lines = {line.split()[0]: line.split() for line in table.splitlines()[1:-1]}

    assert table.splitlines()[0] == "Split toy_val: 3 episodes scored (0 missing), success distance 3 m"
    assert list(lines) == ["NE", "SR", "OSR", "TL", "SPL", "nDTW", "SDTW", "CLS"]
    assert lines["SR"][-1] == "0.6667"
    assert lines["NE"][-1] == "2.3333"
    assert table.splitlines()[-1].split() == ["steps", "per", "episode", "3.00"]


def test_allow_missing_counts_missing(toy_data: Path) -> None:
    report = evaluate_toy(toy_data, {"2_0": ["c", "e"]}, allow_missing=True)

    assert report.instr_ids == ("2_0",)
    assert report.missing == 2
    assert report.means()["spl"] == 1.0


def test_missing_ids_rejected(toy_data: Path) -> None:
    with pytest.raises(TrajectoryValidationError, match="2 missing instr_id"):
        evaluate_toy(toy_data, {"2_0": ["c", "e"]})


def test_success_distance_setting(toy_data: Path) -> None:
    # With 8 m, 1_1 (7 m from its goal) succeeds: SPL = 6 / max(6, 7).
    report = evaluate_toy(toy_data, TOY_TRAJECTORIES, success_distance=8.0)

    assert report.metrics.success.tolist() == [1.0, 1.0, 1.0]
    assert report.metrics.spl[1] == pytest.approx(6 / 7)


def test_test_split_has_no_metrics(toy_data: Path) -> None:
    split = load_r2r_split("test", toy_data)
    entries = [{"instr_id": "5_0", "trajectory": [["d", 0.0, 0.0], ["e", 0.0, 0.0]]}]
    report = evaluate_trajectories(entries, split, Connectivity(toy_data / "connectivity"))

    assert report.metrics is None
    assert report.means() is None
    assert report.rows() == [{"instr_id": "5_0", "scan": "toy", "steps": 1, "moves": 1}]
    assert "no metric is computed" in report.format_table()


def test_report_json(toy_data: Path, toy_file: Path, tmp_path: Path) -> None:
    split = load_r2r_split("toy_val", toy_data)
    report = evaluate_file(toy_file, split, Connectivity(toy_data / "connectivity"))
    path = tmp_path / "reports" / "toy.json"
    write_report(report, path)
    written = json.loads(path.read_text())

    assert written["split"] == "toy_val"
    assert written["trajectories"] == str(toy_file)
    assert written["success_distance"] == 3.0
    assert written["metrics_computed"] is True
    assert written["means"]["success"] == pytest.approx(2 / 3)
    assert written["per_episode"][2] == {
        "instr_id": "2_0",
        "scan": "toy",
        "navigation_error": 0.0,
        "success": 1.0,
        "oracle_success": 1.0,
        "trajectory_length": 4.0,
        "spl": 1.0,
        "ndtw": 1.0,
        "sdtw": 1.0,
        "cls": 1.0,
        "steps": 1,
        "moves": 1,
    }


def test_report_unwritable_path(toy_data: Path, tmp_path: Path) -> None:
    report = evaluate_toy(toy_data, TOY_TRAJECTORIES)
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(ReportWriteError, match="choose a writable file path"):
        write_report(report, blocker / "report.json")


# The command line.


def test_cli_prints_table_and_writes_report(toy_data: Path, toy_file: Path, tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    code = main([str(toy_file), "--split", "toy_val", "--data-dir", str(toy_data), "--report", str(out)])

    assert code == 0
    assert "SPL   success weighted by path length" in capsys.readouterr().out
    assert json.loads(out.read_text())["means"]["spl"] == pytest.approx((3 / 7 + 1) / 3)


def test_cli_invalid_json_exits_2(toy_data: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[{]")
    code = main([str(bad), "--split", "toy_val", "--data-dir", str(toy_data)])
    stderr = capsys.readouterr().err

    assert code == 2
    assert f"error: {bad}: invalid JSON" in stderr
    assert "Traceback" not in stderr


def test_cli_invalid_trajectory_exits_2(toy_data: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "skips.json"
    path.write_text(json.dumps(leaderboard({**TOY_TRAJECTORIES, "2_0": ["c", "d"]})))
    code = main([str(path), "--split", "toy_val", "--data-dir", str(toy_data)])
    stderr = capsys.readouterr().err

    assert code == 2
    assert "2_0: steps 0 to 1 move from 'c' to 'd'" in stderr


def test_cli_allow_missing(toy_data: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(leaderboard({"2_0": ["c", "e"]})))

    assert main([str(path), "--split", "toy_val", "--data-dir", str(toy_data)]) == 2
    assert main([str(path), "--split", "toy_val", "--data-dir", str(toy_data), "--allow-missing"]) == 0
    assert "1 episodes scored (2 missing)" in capsys.readouterr().out


def test_cli_test_split(toy_data: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "test.json"
    path.write_text(json.dumps([{"instr_id": "5_0", "trajectory": [["d", 0.0, 0.0]]}]))
    code = main([str(path), "--split", "test", "--data-dir", str(toy_data)])

    assert code == 0
    assert "no metric is computed" in capsys.readouterr().out


def test_cli_unknown_split_exits_2(toy_data: Path, toy_file: Path, capsys) -> None:
    code = main([str(toy_file), "--split", "val_unknown", "--data-dir", str(toy_data)])

    assert code == 2
    assert "R2R_val_unknown.json not found" in capsys.readouterr().err


def test_cli_nonpositive_success_distance_exits_2(toy_data: Path, toy_file: Path, capsys) -> None:
    code = main([str(toy_file), "--split", "toy_val", "--data-dir", str(toy_data), "--success-distance", "0"])

    assert code == 2
    assert "success distance must be a positive number" in capsys.readouterr().err


# Real data: the shortest-path agent file and the official scorer's method.


@pytest.fixture(scope="module")
def val_unseen(data_dir: Path):
    path = data_dir / "trajectories" / "val_unseen_shortest_agent.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return load_r2r_split("val_unseen", data_dir), read_trajectories(path)


def test_shortest_agent_scores_perfectly(val_unseen, real_connectivity: Connectivity) -> None:
    split, entries = val_unseen
    metrics = evaluate_trajectories(entries, split, real_connectivity).metrics

    assert len(metrics) == 2349
    assert metrics.means()["success"] == 1.0
    assert metrics.means()["spl"] == 1.0
    assert metrics.means()["navigation_error"] == 0.0


def test_shortest_agent_ndtw(val_unseen, real_connectivity: Connectivity) -> None:
    # nDTW is 1 wherever the R2R reference path is a shortest path. A few references are
    # longer than the shortest path, and there the agent's route differs from them.
    split, entries = val_unseen
    report = evaluate_trajectories(entries, split, real_connectivity)
    graphs = [real_connectivity[scan] for scan in report.scans]
    references = [split[instr_id].path for instr_id in report.instr_ids]
    is_shortest = np.array(
        [
            math.isclose(graph.path_length(path), graph.distance(path[0], path[-1]), abs_tol=1e-9)
            for graph, path in zip(graphs, references)
        ]
    )

    assert is_shortest.sum() == 2325
    assert (report.metrics.ndtw[is_shortest] == 1.0).all()
    assert (report.metrics.ndtw[~is_shortest] < 1.0).all()


def test_matches_official_method(val_unseen, real_connectivity: Connectivity, data_dir: Path) -> None:
    pytest.importorskip("networkx")
    from scripts.bench_evaluation import score_official_method

    # Cut each shortest-agent trajectory at a random step, so that SR, OSR and SPL vary.
    split, entries = val_unseen
    rng = np.random.default_rng(3)
    cut = [
        {
            "instr_id": entry["instr_id"],
            "trajectory": entry["trajectory"][: rng.integers(1, len(entry["trajectory"]) + 1)],
        }
        for entry in entries
    ]
    ours = evaluate_trajectories(cut, split, real_connectivity)
    official = score_official_method(data_dir / "connectivity", split, cut)

    assert 0.2 < ours.means()["success"] < 0.8
    for name in ("navigation_error", "success", "oracle_success", "trajectory_length", "spl"):
        theirs = [official[instr_id][name] for instr_id in ours.instr_ids]
        assert getattr(ours.metrics, name) == pytest.approx(theirs, rel=1e-12, abs=1e-12), name
