"""The Seq2Seq agent: losses, feedback modes, training, resume, checkpoints and inference, on the demo world."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from agent.checkpoint import CheckpointError, save_checkpoint
from agent.inference import load_agent, load_seq2seq
from agent.seq2seq import Seq2Seq, Seq2SeqModelSettings, run_episodes
from agent.seq2seq_training import Seq2SeqTrainer, Seq2SeqTrainingSettings, greedy_trajectories
from envs.egocentric import FORWARD
from envs.r2r_env import R2RVectorEnv
from scripts import infer, train_seq2seq

SMALL_MODEL = Seq2SeqModelSettings(embedding_size=32, action_embedding_size=8, hidden_size=64)


def small_settings(demo_dir: Path, output_dir: Path, **overrides) -> Seq2SeqTrainingSettings:
    settings = Seq2SeqTrainingSettings(
        output_dir=str(output_dir),
        data_dir=str(demo_dir),
        features=str(next((demo_dir / "features").glob("*.tsv"))),
        iterations=4,
        batch_size=8,
        learning_rate=1e-3,
        max_steps=25,
        angle_feature_size=16,
        eval_interval=1000,
        eval_episodes=8,
        checkpoint_interval=3,
        log_interval=1,
    )
    return replace(settings, **overrides)


def egocentric_batch(world, size: int, **kwargs) -> R2RVectorEnv:
    return R2RVectorEnv(
        num_envs=size,
        world=world,
        max_episode_steps=40,
        autoreset_mode=AutoresetMode.DISABLED,
        action_space="egocentric",
        **kwargs,
    )


def new_model(world) -> Seq2Seq:
    return Seq2Seq(
        len(world.encoder.vocabulary), world.features.dim, world.settings.angle_feature_size, SMALL_MODEL
    )


def run_split_batch(model, env, split: str, feedback: str, count: int, max_steps: int = 40):
    instr_ids = [e.instr_id for e in env.world.split(split).episodes[:count]]
    observation, _ = env.reset(options={"split": split, "instr_ids": instr_ids})
    return instr_ids, run_episodes(model, env, observation, feedback, np.ones(count, dtype=bool), max_steps)


def test_teacher_forcing_loss_falls(demo_world) -> None:
    # Teacher forcing on one fixed batch: the loss, measured without dropout, must fall.
    torch.manual_seed(0)
    model = new_model(demo_world)
    env = egocentric_batch(demo_world, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()
    with torch.no_grad():
        before = float(run_split_batch(model, env, "train", "teacher", 8)[1].loss)
    model.train()
    for _ in range(20):
        optimizer.zero_grad()
        run_split_batch(model, env, "train", "teacher", 8)[1].loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = float(run_split_batch(model, env, "train", "teacher", 8)[1].loss)
    assert after < 0.5 * before


def test_teacher_feedback_reaches_goals(demo_world) -> None:
    env = egocentric_batch(demo_world, 8)
    instr_ids, result = run_split_batch(new_model(demo_world), env, "val_seen", "teacher", 8)
    goals = {e.instr_id: e.goal for e in demo_world.split("val_seen").episodes}
    for instr_id in instr_ids:
        assert result.trajectories[instr_id][-1][0] == goals[instr_id]


def test_student_forcing_trains(demo_world) -> None:
    torch.manual_seed(0)
    model = new_model(demo_world)
    env = egocentric_batch(demo_world, 8)
    instr_ids, result = run_split_batch(model, env, "train", "sample", 8, max_steps=10)
    result.loss.backward()
    assert torch.isfinite(result.loss)
    assert set(result.trajectories) == set(instr_ids)
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_argmax_has_no_loss(demo_world) -> None:
    env = egocentric_batch(demo_world, 4)
    instr_ids, result = run_split_batch(
        new_model(demo_world).eval(), env, "val_unseen", "argmax", 4, max_steps=6
    )
    assert result.loss is None
    assert set(result.trajectories) == set(instr_ids)
    assert all(len(trajectory) <= 6 + 1 for trajectory in result.trajectories.values())


def test_forward_masked_where_blocked(demo_world) -> None:
    # A model biased towards forward must never choose it where the view shows no neighbour.
    torch.manual_seed(0)
    model = new_model(demo_world).eval()
    with torch.no_grad():
        model.decoder.to_logits.bias[FORWARD] = 100.0
    env = egocentric_batch(demo_world, 8, invalid_actions="raise")
    instr_ids, result = run_split_batch(model, env, "val_seen", "argmax", 8, max_steps=30)
    assert set(result.trajectories) == set(instr_ids)


def test_panoramic_env_rejected(demo_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=demo_world, autoreset_mode=AutoresetMode.DISABLED)
    observation, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="egocentric"):
        run_episodes(new_model(demo_world), env, observation, "argmax", np.ones(2, dtype=bool))


def test_defaults_follow_released_code() -> None:
    settings, model = Seq2SeqTrainingSettings(), Seq2SeqModelSettings()
    assert (settings.learning_rate, settings.weight_decay, settings.batch_size) == (1e-4, 5e-4, 100)
    assert (settings.max_steps, settings.max_instruction_length, settings.feedback) == (20, 80, "sample")
    assert (model.embedding_size, model.action_embedding_size, model.hidden_size) == (256, 32, 512)
    assert not model.bidirectional
    assert model.dropout == 0.5


def test_invalid_feedback_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="feedback"):
        Seq2SeqTrainingSettings(output_dir=str(tmp_path), feedback="argmax")


def test_resume_matches_uninterrupted_run(demo_dir: Path, tmp_path: Path) -> None:
    # Uninterrupted: 4 iterations. Interrupted: 3, a checkpoint, a new trainer resumed from
    # it, then the 4th. Student forcing draws from torch's generator, which resume restores.
    straight = Seq2SeqTrainer(small_settings(demo_dir, tmp_path / "a"), SMALL_MODEL)
    straight.train()

    first = Seq2SeqTrainer(small_settings(demo_dir, tmp_path / "b", iterations=3), SMALL_MODEL)
    first.train()
    del first  # the process ends here
    resumed = Seq2SeqTrainer(small_settings(demo_dir, tmp_path / "b"), SMALL_MODEL, resume=True)
    assert resumed.iteration == 3
    resumed.train()

    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_new_run_refuses_existing_output(demo_dir: Path, tmp_path: Path) -> None:
    Seq2SeqTrainer(small_settings(demo_dir, tmp_path, iterations=3), SMALL_MODEL).train()
    with pytest.raises(FileExistsError, match="--resume"):
        Seq2SeqTrainer(small_settings(demo_dir, tmp_path, iterations=3), SMALL_MODEL)


def test_checkpoint_round_trip(demo_dir: Path, tmp_path: Path) -> None:
    trainer = Seq2SeqTrainer(small_settings(demo_dir, tmp_path, iterations=2, eval_interval=2), SMALL_MODEL)
    best = trainer.train()
    assert set(best) == {"val_seen", "val_unseen"}
    assert (tmp_path / "checkpoints" / "best_val_unseen.pt").is_file()

    model, world, training = load_seq2seq(tmp_path / "checkpoints" / "latest.pt", device="cpu")
    for (name, a), (_, b) in zip(trainer.model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name
    instr_ids = [e.instr_id for e in world.split("val_seen").episodes[:8]]
    loaded = greedy_trajectories(model, world, "val_seen", instr_ids, training)
    original = greedy_trajectories(trainer.model, trainer.world, "val_seen", instr_ids, trainer.settings)
    assert loaded == original


def test_run_record_written(demo_dir: Path, tmp_path: Path) -> None:
    Seq2SeqTrainer(small_settings(demo_dir, tmp_path, iterations=1), SMALL_MODEL).train()
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["training"]["feedback"] == "sample"
    assert settings["model"]["action_embedding_size"] == 8
    assert any((tmp_path / "tensorboard").iterdir())


def test_load_agent_rejects_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "speaker.pt"
    save_checkpoint(path, {"kind": "speaker"})
    with pytest.raises(CheckpointError, match="expected one of 'envdrop-follower', 'seq2seq'"):
        load_agent(path)


def test_cli_train_infer(demo_dir: Path, tmp_path: Path, capsys) -> None:
    features = str(next((demo_dir / "features").glob("*.tsv")))
    run_dir = tmp_path / "run"
    argv = [
        "--output-dir", str(run_dir), "--data-dir", str(demo_dir), "--features", features,
        "--iterations", "2", "--batch-size", "8", "--eval-interval", "2", "--eval-episodes", "4",
        "--hidden-size", "32", "--embedding-size", "16", "--action-embedding-size", "8",
        "--feedback", "teacher", "--angle-feature-size", "8",
    ]  # fmt: skip
    assert train_seq2seq.main(argv) == 0
    checkpoint = run_dir / "checkpoints" / "latest.pt"
    out = tmp_path / "val.json"
    assert infer.main(["--checkpoint", str(checkpoint), "--split", "val_seen", "--out", str(out)]) == 0
    entries = json.loads(out.read_text())
    assert len(entries) == 48
    assert "seq2seq" in capsys.readouterr().out


def test_print_best_names_ndtw_when_recorded(capsys) -> None:
    from scripts.common import print_best

    print_best({"val_unseen": {"spl": 0.5, "ndtw": 0.625, "success": 0.75, "iteration": 3}})
    print_best({"val_seen": {"spl": 0.5, "success": 0.75, "iteration": 4}})  # a record of an older run
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "best on val_unseen: SPL 0.5000, nDTW 0.6250, SR 0.7500 at iteration 3",
        "best on val_seen: SPL 0.5000, SR 0.7500 at iteration 4",
    ]
