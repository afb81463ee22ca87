"""The command-line programs, run in-process on the demo world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from connectivity import DATA_DIR_ENV, resolve_data_dir
from envs.r2r import read_r2r_file
from envs.tokenizer import Vocabulary, tokenize
from envs.world import EnvSettings, NavigationWorld
from scripts import (
    bench_env,
    bench_graphs,
    bench_simulator,
    build_vocabulary,
    demo,
    reproduce_baselines,
    run_baseline,
    submit,
)


def test_demo_writes_outputs(demo_dir: Path, tmp_path: Path, capsys) -> None:
    assert demo.main(["--demo-dir", str(demo_dir), "--out", str(tmp_path), "--iterations", "0"]) == 0
    printed = capsys.readouterr().out
    assert "| shortest | val_unseen | 100.0 | 100.0 |" in printed
    submission = json.loads((tmp_path / "R2R_test_random_heading_agent.json").read_text())
    test_ids = {e.instr_id for e in read_r2r_file(demo_dir / "R2R" / "R2R_test.json")}
    assert {entry["instr_id"] for entry in submission} == test_ids


def test_demo_trains_follower(demo_dir: Path, tmp_path: Path, capsys) -> None:
    assert demo.main(["--demo-dir", str(demo_dir), "--out", str(tmp_path), "--iterations", "2"]) == 0
    assert "EnvDrop follower, 2 iterations" in capsys.readouterr().out
    submission = json.loads((tmp_path / "R2R_test_demo_follower.json").read_text())
    assert len(submission) == len(read_r2r_file(demo_dir / "R2R" / "R2R_test.json"))


def test_baseline_writes_trajectories(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "shortest.json"
    report = tmp_path / "report.json"
    argv = ["--data-dir", str(demo_dir), "--agent", "shortest", "--split", "val_seen", "--out", str(out)]
    assert run_baseline.main([*argv, "--report", str(report)]) == 0
    assert json.loads(report.read_text())["means"]["success"] == 1.0
    entries = json.loads(out.read_text())
    assert len(entries) == len(read_r2r_file(demo_dir / "R2R" / "R2R_val_seen.json"))


def test_data_dir_from_environment(demo_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(demo_dir))
    assert resolve_data_dir() == demo_dir


def test_missing_data_dir_exits_2(tmp_path: Path, capsys) -> None:
    argv = ["--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "t.json")]
    assert run_baseline.main(argv) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_submit_runs_agent_on_test(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "submission.json"
    assert (
        submit.main(["--data-dir", str(demo_dir), "--run-agent", "--agent", "random", "--out", str(out)]) == 0
    )
    entries = json.loads(out.read_text())
    split = read_r2r_file(demo_dir / "R2R" / "R2R_test.json")
    assert sorted(e["instr_id"] for e in entries) == sorted(e.instr_id for e in split)
    for entry in entries:
        assert entry["trajectory"][0][0] == split[entry["instr_id"]].start


def test_submit_refuses_incomplete_file(demo_dir: Path, tmp_path: Path, capsys) -> None:
    split = read_r2r_file(demo_dir / "R2R" / "R2R_test.json")
    partial = [{"instr_id": e.instr_id, "trajectory": [[e.start, 0.0, 0.0]]} for e in list(split)[1:]]
    source = tmp_path / "partial.json"
    source.write_text(json.dumps(partial))
    out = tmp_path / "submission.json"
    assert submit.main(["--data-dir", str(demo_dir), "--trajectories", str(source), "--out", str(out)]) == 2
    assert not out.exists()
    assert split.episodes[0].instr_id in capsys.readouterr().err


def test_submit_refuses_wrong_start(demo_dir: Path, tmp_path: Path, capsys) -> None:
    split = read_r2r_file(demo_dir / "R2R" / "R2R_test.json")
    other = next(e.start for e in split if e.start != split.episodes[0].start)
    entries = [{"instr_id": e.instr_id, "trajectory": [[e.start, 0.0, 0.0]]} for e in split]
    entries[0]["trajectory"] = [[other, 0.0, 0.0]]
    source = tmp_path / "wrong_start.json"
    source.write_text(json.dumps(entries))
    out = tmp_path / "submission.json"
    assert submit.main(["--data-dir", str(demo_dir), "--trajectories", str(source), "--out", str(out)]) == 2
    assert not out.exists()


def test_reproduce_baselines_table(demo_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "figures.json"
    argv = ["--data-dir", str(demo_dir), "--seeds", "0", "1", "--out", str(out)]
    assert reproduce_baselines.main(argv) == 0
    figures = json.loads(out.read_text())
    assert figures["shortest"]["val_seen"]["spl"] == 1.0
    assert figures["stop"]["val_unseen"]["trajectory_length"] == 0.0
    assert figures["random"]["val_seen"]["runs"] == 2


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        (bench_graphs, ["--repeats", "1"]),
        (bench_simulator, ["--steps", "20", "--baseline-steps", "2"]),
        (bench_env, ["--steps", "5", "--split", "val_seen", "--dim", "8"]),
    ],
)
def test_benchmarks_run(module, extra: list[str], demo_dir: Path, capsys) -> None:
    assert module.main(["--data-dir", str(demo_dir), *extra]) == 0
    printed = capsys.readouterr().out
    assert "steps/s" in printed or "load time" in printed


def test_vocabulary_built_and_loaded(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "vocab.txt"
    assert build_vocabulary.main(["--data-dir", str(demo_dir), "--out", str(out), "--min-count", "1"]) == 0
    train_words = {
        w for e in read_r2r_file(demo_dir / "R2R" / "R2R_train.json") for w in tokenize(e.instruction)
    }
    vocabulary = Vocabulary.load(out)
    assert set(vocabulary.tokens[4:]) == train_words


def test_world_uses_saved_vocabulary(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "vocab.txt"
    build_vocabulary.main(["--data-dir", str(demo_dir), "--out", str(out), "--min-count", "3"])
    world = NavigationWorld.from_settings(EnvSettings(data_dir=str(demo_dir), vocabulary=str(out)))
    assert world.encoder.vocabulary == Vocabulary.load(out)


def test_unwritable_output_exits_2(demo_dir: Path, tmp_path: Path, capsys) -> None:
    argv = ["--data-dir", str(demo_dir), "--agent", "stop", "--split", "val_seen", "--out", str(tmp_path)]
    assert run_baseline.main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_zero_batch_size_rejected(demo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run_baseline.main(
            ["--data-dir", str(demo_dir), "--batch-size", "0", "--out", str(tmp_path / "t.json")]
        )


def test_reproduce_rejects_test_split(demo_dir: Path, capsys) -> None:
    assert reproduce_baselines.main(["--data-dir", str(demo_dir), "--splits", "test"]) == 2
    assert "no reference paths" in capsys.readouterr().err


def test_invalid_setting_exits_2(demo_dir: Path, tmp_path: Path, capsys) -> None:
    from scripts import train_follower

    argv = ["--data-dir", str(demo_dir), "--output-dir", str(tmp_path), "--train-mode", "foo"]
    assert train_follower.main(argv) == 2
    assert "train_mode must be one of" in capsys.readouterr().err


def test_merge_rejects_tsv(tmp_path: Path, capsys) -> None:
    from envs.features import write_tsv_features
    from scripts import merge_features

    tsv = tmp_path / "a.tsv"
    write_tsv_features(tsv, [("scan", "vp", np.zeros((36, 4), dtype=np.float32))])
    assert merge_features.main([str(tsv), "--out", str(tmp_path / "m.clipnav")]) == 2
    assert "convert it first" in capsys.readouterr().err
