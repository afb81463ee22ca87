"""The EnvDrop follower: losses, training, resume, checkpoints and inference, on the demo world."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from agent.checkpoint import CheckpointError, load_checkpoint
from agent.follower import Follower, FollowerModelSettings, run_episodes
from agent.inference import load_follower
from agent.training import FollowerTrainer, FollowerTrainingSettings
from envs.features import FeatureMismatchError, write_tsv_features
from envs.r2r_env import R2RVectorEnv
from scripts import infer, submit, train_follower

SMALL_MODEL = FollowerModelSettings(embedding_size=32, hidden_size=64, action_embedding_size=16)


def small_settings(demo_dir: Path, output_dir: Path, **overrides) -> FollowerTrainingSettings:
    settings = FollowerTrainingSettings(
        output_dir=str(output_dir),
        data_dir=str(demo_dir),
        features=str(next((demo_dir / "features").glob("*.tsv"))),
        iterations=6,
        batch_size=8,
        learning_rate=1e-3,
        optimizer="adam",
        eval_interval=1000,
        checkpoint_interval=3,
        log_interval=1,
        eval_episodes=8,
        max_steps=10,
        angle_feature_size=16,
    )
    return replace(settings, **overrides)


def fixed_batch_loss(model: Follower, env: R2RVectorEnv, instr_ids: list[str]) -> torch.Tensor:
    observation, _ = env.reset(options={"split": "train", "instr_ids": instr_ids})
    return run_episodes(
        model, env, observation, "teacher", np.ones(len(instr_ids), dtype=bool)
    ).imitation_loss


def test_imitation_loss_falls(demo_world) -> None:
    # Teacher forcing on one fixed batch: the loss, measured without dropout, must fall.
    torch.manual_seed(0)
    model = Follower(len(demo_world.encoder.vocabulary), demo_world.features.dim, 128, SMALL_MODEL)
    env = R2RVectorEnv(
        num_envs=16, world=demo_world, max_episode_steps=35, autoreset_mode=AutoresetMode.DISABLED
    )
    instr_ids = [e.instr_id for e in demo_world.split("train").episodes[:16]]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()
    with torch.no_grad():
        before = float(fixed_batch_loss(model, env, instr_ids))
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        fixed_batch_loss(model, env, instr_ids).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = float(fixed_batch_loss(model, env, instr_ids))
    assert after < 0.5 * before


def test_mixed_iteration_has_both_losses(demo_dir: Path, tmp_path: Path) -> None:
    trainer = FollowerTrainer(small_settings(demo_dir, tmp_path, train_mode="mixed"), SMALL_MODEL)
    logs = trainer.train_iteration()
    assert "losses/imitation" in logs
    assert "losses/rl" in logs


def test_teacher_feedback_reaches_goals(demo_world) -> None:
    model = Follower(len(demo_world.encoder.vocabulary), demo_world.features.dim, 128, SMALL_MODEL)
    env = R2RVectorEnv(
        num_envs=8, world=demo_world, max_episode_steps=35, autoreset_mode=AutoresetMode.DISABLED
    )
    episodes = demo_world.split("val_seen").episodes[:8]
    observation, _ = env.reset(options={"split": "val_seen", "instr_ids": [e.instr_id for e in episodes]})
    result = run_episodes(model, env, observation, "teacher", np.ones(8, dtype=bool))
    for episode in episodes:
        assert result.trajectories[episode.instr_id][-1][0] == episode.goal


def test_resume_matches_uninterrupted_run(demo_dir: Path, tmp_path: Path) -> None:
    # Uninterrupted: 4 iterations. Interrupted: 3, a checkpoint, a new trainer resumed from
    # it, then the 4th. The parameters after the 4th must be identical.
    straight = FollowerTrainer(small_settings(demo_dir, tmp_path / "a", iterations=4), SMALL_MODEL)
    straight.train()

    first = FollowerTrainer(small_settings(demo_dir, tmp_path / "b", iterations=3), SMALL_MODEL)
    first.train()
    del first  # the process ends here
    resumed = FollowerTrainer(
        small_settings(demo_dir, tmp_path / "b", iterations=4), SMALL_MODEL, resume=True
    )
    assert resumed.iteration == 3
    resumed.train()

    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_new_run_refuses_existing_output(demo_dir: Path, tmp_path: Path) -> None:
    FollowerTrainer(small_settings(demo_dir, tmp_path, iterations=3), SMALL_MODEL).train()
    with pytest.raises(FileExistsError, match="--resume"):
        FollowerTrainer(small_settings(demo_dir, tmp_path, iterations=3), SMALL_MODEL)


def test_run_record_written(demo_dir: Path, tmp_path: Path) -> None:
    FollowerTrainer(small_settings(demo_dir, tmp_path, iterations=3), SMALL_MODEL).train()
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["training"]["batch_size"] == 8
    assert settings["seed"] == 0
    assert "torch" in json.loads((tmp_path / "versions.json").read_text())
    assert json.loads((tmp_path / "features.json").read_text())["signature"]["dim"] == 64
    assert any((tmp_path / "tensorboard").iterdir())


def test_best_checkpoints_per_split(demo_dir: Path, tmp_path: Path) -> None:
    trainer = FollowerTrainer(small_settings(demo_dir, tmp_path, iterations=2, eval_interval=2), SMALL_MODEL)
    best = trainer.train()
    assert set(best) == {"val_seen", "val_unseen"}
    assert (tmp_path / "checkpoints" / "best_val_unseen.pt").is_file()


def test_checkpoint_kind_checked(demo_dir: Path, tmp_path: Path) -> None:
    trainer = FollowerTrainer(small_settings(demo_dir, tmp_path, iterations=3), SMALL_MODEL)
    trainer.train()
    with pytest.raises(CheckpointError, match="expected 'speaker'"):
        load_checkpoint(tmp_path / "checkpoints" / "latest.pt", "speaker")


def test_corrupt_checkpoint_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def write_narrow_features(demo_dir: Path, path: Path, dim: int) -> Path:
    """Write zero features of dimension `dim` for the viewpoints of the demo world's first scan."""
    graph_dir = demo_dir / "connectivity"
    scan = (graph_dir / "scans.txt").read_text().split()[0]
    entries = json.loads((graph_dir / f"{scan}_connectivity.json").read_text())
    write_tsv_features(path, [(scan, e["image_id"], np.zeros((36, dim), dtype=np.float32)) for e in entries])
    return path


def test_other_feature_dim_rejected(demo_dir: Path, tmp_path: Path) -> None:
    FollowerTrainer(small_settings(demo_dir, tmp_path / "run", iterations=3), SMALL_MODEL).train()
    other = write_narrow_features(demo_dir, tmp_path / "other.tsv", dim=32)
    with pytest.raises(FeatureMismatchError, match="dimension 64, and .* has 32"):
        load_follower(tmp_path / "run" / "checkpoints" / "latest.pt", features=str(other))


def test_same_seed_same_trajectories(demo_dir: Path, tmp_path: Path) -> None:
    results = []
    for name in ("a", "b"):
        trainer = FollowerTrainer(small_settings(demo_dir, tmp_path / name, iterations=3), SMALL_MODEL)
        trainer.train()
        results.append(trainer.evaluate(["val_seen"]))
    assert results[0] == results[1]


def test_cli_train_infer_submit(demo_dir: Path, tmp_path: Path, capsys) -> None:
    features = str(next((demo_dir / "features").glob("*.tsv")))
    run_dir = tmp_path / "run"
    argv = [
        "--output-dir", str(run_dir), "--data-dir", str(demo_dir), "--features", features,
        "--iterations", "2", "--batch-size", "8", "--eval-interval", "2", "--eval-episodes", "4",
        "--hidden-size", "32", "--embedding-size", "16", "--action-embedding-size", "8",
    ]  # fmt: skip
    assert train_follower.main(argv) == 0
    checkpoint = run_dir / "checkpoints" / "latest.pt"
    out = tmp_path / "val.json"
    assert infer.main(["--checkpoint", str(checkpoint), "--split", "val_seen", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 48
    submission = tmp_path / "test.json"
    assert submit.main(["--checkpoint", str(checkpoint), "--out", str(submission)]) == 0
    test_ids = {e["instr_id"] for e in json.loads(submission.read_text())}
    assert len(test_ids) == 48


def test_other_feature_dim_rejected_even_forced(demo_dir: Path, tmp_path: Path) -> None:
    FollowerTrainer(small_settings(demo_dir, tmp_path / "run", iterations=3), SMALL_MODEL).train()
    other = write_narrow_features(demo_dir, tmp_path / "other.tsv", dim=32)
    with pytest.raises(FeatureMismatchError, match="even --force-features"):
        load_follower(
            tmp_path / "run" / "checkpoints" / "latest.pt", features=str(other), force_features=True
        )


def test_zeros_for_visual_model_need_force(demo_dir: Path, tmp_path: Path) -> None:
    FollowerTrainer(small_settings(demo_dir, tmp_path / "run", iterations=3), SMALL_MODEL).train()
    checkpoint = tmp_path / "run" / "checkpoints" / "latest.pt"
    with pytest.raises(FeatureMismatchError, match="gives zeros"):
        load_follower(checkpoint, features="none")


def test_resume_with_other_sizes_explained(demo_dir: Path, tmp_path: Path) -> None:
    FollowerTrainer(small_settings(demo_dir, tmp_path, iterations=3), SMALL_MODEL).train()
    bigger = FollowerModelSettings(embedding_size=32, hidden_size=96, action_embedding_size=16)
    with pytest.raises(CheckpointError, match="network settings"):
        FollowerTrainer(small_settings(demo_dir, tmp_path, iterations=4), bigger, resume=True)
