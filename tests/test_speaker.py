"""The speaker, BLEU and back-translation data, on hand-computed cases and the demo world."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st
from test_follower import SMALL_MODEL as SMALL_FOLLOWER
from test_follower import small_settings as small_follower_settings

from agent.augmentation import (
    AugmentationError,
    AugmentationSettings,
    augment,
    sample_paths,
    shortest_path_hops,
)
from agent.bleu import corpus_bleu
from agent.speaker import Speaker, SpeakerModelSettings, collect_paths, path_batches
from agent.speaker_training import SpeakerTrainer, SpeakerTrainingSettings, load_speaker
from agent.training import FollowerTrainer
from connectivity import Connectivity
from envs.r2r import read_r2r_file
from envs.r2r_env import EnvUsageError, R2RVectorEnv
from envs.tokenizer import Vocabulary
from scripts import augment as augment_script
from scripts import train_speaker

SMALL_SPEAKER = SpeakerModelSettings(embedding_size=32, hidden_size=64)
ANGLE_SIZE = 16


def words(text: str) -> list[str]:
    return text.split()


# --- BLEU ---------------------------------------------------------------------------------


def test_bleu_perfect_match() -> None:
    sentence = words("the cat sat on the mat")
    score = corpus_bleu([sentence], [[sentence]])
    assert score.bleu == 1.0
    assert score.precisions == (1.0, 1.0, 1.0, 1.0)


def test_bleu_partial_match() -> None:
    # hypothesis "the cat sat on a mat" against "the cat sat on the mat", 6 tokens each:
    # 1-grams: the cat sat on mat match, "a" does not            -> p1 = 5/6
    # 2-grams: "the cat" "cat sat" "sat on" match; "on a" "a mat" -> p2 = 3/5
    # 3-grams: "the cat sat" "cat sat on" match of 4              -> p3 = 2/4
    # 4-grams: "the cat sat on" matches of 3                      -> p4 = 1/3
    # c = r = 6, so BP = 1 and BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** (1/4).
    score = corpus_bleu([words("the cat sat on a mat")], [[words("the cat sat on the mat")]])
    assert score.precisions == pytest.approx((5 / 6, 3 / 5, 2 / 4, 1 / 3))
    assert score.brevity_penalty == 1.0
    assert score.bleu == pytest.approx(0.537284965911771)


def test_bleu_brevity_penalty() -> None:
    # "the cat sat on the" (c = 5) is a prefix of the 6-token reference: every n-gram
    # matches, so BLEU = BP = exp(1 - 6/5) = exp(-0.2).
    score = corpus_bleu([words("the cat sat on the")], [[words("the cat sat on the mat")]])
    assert score.precisions == (1.0, 1.0, 1.0, 1.0)
    assert score.brevity_penalty == pytest.approx(0.8187307530779818)
    assert score.bleu == pytest.approx(0.8187307530779818)


def test_bleu_clips_repeated_words() -> None:
    # "the" occurs once in the reference, so 1 of the 4 hypothesis tokens counts: p1 = 1/4.
    # No bigram "the the" occurs in the reference: p2 = 0, so BLEU = 0.
    score = corpus_bleu([words("the the the the")], [[words("the cat")]])
    assert score.precisions[0] == 0.25
    assert score.precisions[1] == 0.0
    assert score.bleu == 0.0


def test_bleu_multiple_references() -> None:
    # hypothesis "the cat sat on the mat", references "a cat sat on the mat" and
    # "the cat is on the mat" (6 tokens each, so BP = 1):
    # 1-grams: "the" twice, clipped by the second reference's 2; all 6 match  -> p1 = 1
    # 2-grams: "the cat" (2nd), "cat sat" "sat on" (1st), "on the" "the mat"  -> p2 = 1
    # 3-grams: "cat sat on" "sat on the" "on the mat" match, "the cat sat" not -> p3 = 3/4
    # 4-grams: "cat sat on the" "sat on the mat" match of 3                    -> p4 = 2/3
    # BLEU = (1 * 1 * 3/4 * 2/3) ** (1/4) = 0.5 ** (1/4).
    hypothesis = words("the cat sat on the mat")
    references = [words("a cat sat on the mat"), words("the cat is on the mat")]
    score = corpus_bleu([hypothesis], [references])
    assert score.precisions == pytest.approx((1.0, 1.0, 3 / 4, 2 / 3))
    assert score.bleu == pytest.approx(0.8408964152537145)
    for single in references:
        assert corpus_bleu([hypothesis], [[single]]).bleu < score.bleu


def test_bleu_closest_reference_length() -> None:
    # A 6-token hypothesis with references of 3 and 7 tokens: the closest is 7, so
    # BP = exp(1 - 7/6). The shortest rule takes 3 < 6, so BP = 1.
    hypothesis = words("a b c d e f")
    references = [words("a b c"), words("a b c d e f g")]
    closest = corpus_bleu([hypothesis], [references])
    shortest = corpus_bleu([hypothesis], [references], reference_length="shortest")
    assert closest.reference_length == 7
    assert closest.brevity_penalty == pytest.approx(math.exp(1 - 7 / 6))
    assert shortest.reference_length == 3
    assert shortest.brevity_penalty == 1.0


def test_bleu_closest_length_tie_takes_shorter() -> None:
    # A 5-token hypothesis is 1 token from references of 4 and 6 tokens: r = 4.
    score = corpus_bleu([words("a b c d e")], [[words("a b c d"), words("a b c d e f")]])
    assert score.reference_length == 4


def test_bleu_sums_counts_over_corpus() -> None:
    # Corpus of the perfect and the partial pair above: the n-gram counts add up first.
    # p1 = (6 + 5) / 12, p2 = (5 + 3) / 10, p3 = (4 + 2) / 8, p4 = (3 + 1) / 6, BP = 1.
    reference = words("the cat sat on the mat")
    score = corpus_bleu([reference, words("the cat sat on a mat")], [[reference], [reference]])
    assert score.precisions == pytest.approx((11 / 12, 8 / 10, 6 / 8, 4 / 6))
    assert score.bleu == pytest.approx((11 / 12 * 8 / 10 * 6 / 8 * 4 / 6) ** 0.25)


def test_bleu_empty_hypothesis_scores_zero() -> None:
    score = corpus_bleu([[]], [[words("go left")]])
    assert score.bleu == 0.0
    assert score.brevity_penalty == 0.0


def test_bleu_rejects_unequal_lists() -> None:
    with pytest.raises(ValueError, match="one list of references per hypothesis"):
        corpus_bleu([words("a b")], [])


def test_bleu_rejects_missing_references() -> None:
    with pytest.raises(ValueError, match="hypothesis 0 has no reference"):
        corpus_bleu([words("a b")], [[]])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from("abcde"), min_size=4, max_size=12),
    st.lists(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=12), max_size=3),
)
def test_bleu_hypothesis_among_references(hypothesis: list[str], others: list[list[str]]) -> None:
    # A hypothesis that is one of its references matches every n-gram, and its own length
    # is the closest reference length.
    score = corpus_bleu([hypothesis], [[*others, hypothesis]])
    assert score.bleu == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from("abcd"), max_size=10),
    st.lists(st.lists(st.sampled_from("abcd"), max_size=10), min_size=1, max_size=3),
)
def test_bleu_within_unit_interval(hypothesis: list[str], references: list[list[str]]) -> None:
    score = corpus_bleu([hypothesis], [references])
    assert 0.0 <= score.bleu <= 1.0


# --- the speaker model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def speaker_world(demo_dir: Path):
    from envs.world import EnvSettings, NavigationWorld

    features = next((demo_dir / "features").glob("*.tsv"))
    return NavigationWorld.from_settings(
        EnvSettings(data_dir=str(demo_dir), features=str(features), angle_feature_size=ANGLE_SIZE)
    )


def first_paths(world, count: int, split: str = "train"):
    env = R2RVectorEnv(num_envs=count, world=world, autoreset_mode=AutoresetMode.DISABLED)
    instr_ids = [episode.instr_id for episode in world.split(split).episodes[:count]]
    return next(path_batches(env, split, instr_ids))


def small_speaker(world) -> Speaker:
    return Speaker(len(world.encoder.vocabulary), world.features.dim, ANGLE_SIZE, SMALL_SPEAKER)


def test_path_batch_shapes(speaker_world) -> None:
    paths = first_paths(speaker_world, 6)
    steps = max(len(episode.path) for episode in paths.episodes)
    size = speaker_world.features.dim + ANGLE_SIZE
    assert paths.action_features.shape == (6, steps, size)
    assert paths.view_features.shape == (6, steps, 36, size)
    assert paths.mask.shape == (6, steps)
    assert paths.instructions.shape == (6, speaker_world.settings.max_instruction_length)


def test_path_has_one_step_per_viewpoint(speaker_world) -> None:
    # One move per edge, then STOP at the goal: as many steps as viewpoints.
    paths = first_paths(speaker_world, 6)
    assert paths.lengths.tolist() == [len(episode.path) for episode in paths.episodes]


def test_stop_step_has_zero_action(speaker_world) -> None:
    paths = first_paths(speaker_world, 6)
    for row, length in enumerate(paths.lengths.tolist()):
        assert torch.count_nonzero(paths.action_features[row, length - 1]) == 0
        moves = paths.action_features[row, : length - 1, -ANGLE_SIZE:]
        assert bool((moves.abs().sum(dim=1) > 0).all())


def test_collect_paths_needs_disabled_autoreset(speaker_world) -> None:
    env = R2RVectorEnv(num_envs=2, world=speaker_world)  # NEXT_STEP autoreset
    observation, _ = env.reset(seed=0)
    with pytest.raises(EnvUsageError, match="autoreset_mode DISABLED"):
        collect_paths(env, observation, np.ones(2, dtype=bool))


def test_speaker_output_shapes(speaker_world) -> None:
    paths = first_paths(speaker_world, 4)
    model = small_speaker(speaker_world)
    context = model.encode(paths)
    assert context.shape == (4, paths.mask.shape[1], SMALL_SPEAKER.hidden_size)
    words_in = paths.instructions[:, :7]
    logits, (h, c) = model.decoder(
        words_in, context, paths.mask, model.decoder.initial_state(4, torch.device("cpu"))
    )
    assert logits.shape == (4, 7, len(speaker_world.encoder.vocabulary))
    assert h.shape == (1, 4, SMALL_SPEAKER.hidden_size)
    assert model.loss(paths).shape == ()


def test_teacher_forcing_loss_falls(speaker_world) -> None:
    # One fixed batch, measured without dropout: the loss must fall well below its start.
    torch.manual_seed(0)
    paths = first_paths(speaker_world, 16)
    model = small_speaker(speaker_world)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    with torch.no_grad():
        before = float(model.loss(paths))
    model.train()
    for _ in range(40):
        optimizer.zero_grad()
        model.loss(paths).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = float(model.loss(paths))
    assert after < 0.5 * before


def test_greedy_ends_in_eos_or_max_length(speaker_world) -> None:
    torch.manual_seed(0)
    paths = first_paths(speaker_world, 8)
    model = small_speaker(speaker_world).eval()
    ids = model.generate(paths, max_length=12)
    assert ids.shape[0] == 8
    assert ids.shape[1] <= 12
    for row in ids.tolist():
        if Vocabulary.eos_id in row:
            end = row.index(Vocabulary.eos_id)
            assert all(token == Vocabulary.pad_id for token in row[end + 1 :])
        else:
            assert len(row) == 12


def test_generation_avoids_special_tokens(speaker_world) -> None:
    torch.manual_seed(0)
    paths = first_paths(speaker_world, 8)
    model = small_speaker(speaker_world).eval()
    generator = torch.Generator().manual_seed(0)
    ids = model.generate(paths, max_length=12, sampling=True, generator=generator)
    for row in ids.tolist():
        content = row[: row.index(Vocabulary.eos_id)] if Vocabulary.eos_id in row else row
        assert not {Vocabulary.pad_id, Vocabulary.bos_id, Vocabulary.unk_id} & set(content)


def test_sampling_reproducible_with_seed(speaker_world) -> None:
    torch.manual_seed(0)
    paths = first_paths(speaker_world, 8)
    model = small_speaker(speaker_world).eval()
    first = model.generate(paths, 12, True, torch.Generator().manual_seed(3))
    second = model.generate(paths, 12, True, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)


# --- training, checkpoints, resume ------------------------------------------------------------


def speaker_settings(demo_dir: Path, output_dir: Path, **overrides) -> SpeakerTrainingSettings:
    settings = SpeakerTrainingSettings(
        output_dir=str(output_dir),
        data_dir=str(demo_dir),
        features=str(next((demo_dir / "features").glob("*.tsv"))),
        iterations=4,
        batch_size=8,
        learning_rate=1e-3,
        eval_interval=1000,
        eval_paths=4,
        checkpoint_interval=3,
        log_interval=1,
        max_decode_length=15,
        angle_feature_size=ANGLE_SIZE,
        device="cpu",
    )
    return replace(settings, **overrides)


@pytest.fixture(scope="module")
def speaker_checkpoint(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("speaker")
    SpeakerTrainer(speaker_settings(demo_dir, output, iterations=2), SMALL_SPEAKER).train()
    return output / "checkpoints" / "latest.pt"


def test_resume_matches_uninterrupted_run(demo_dir: Path, tmp_path: Path) -> None:
    # Uninterrupted: 4 iterations. Interrupted: 3, a checkpoint, a new trainer resumed from
    # it, then the 4th. The parameters after the 4th must be identical.
    straight = SpeakerTrainer(speaker_settings(demo_dir, tmp_path / "a"), SMALL_SPEAKER)
    straight.train()

    SpeakerTrainer(speaker_settings(demo_dir, tmp_path / "b", iterations=3), SMALL_SPEAKER).train()
    resumed = SpeakerTrainer(speaker_settings(demo_dir, tmp_path / "b"), SMALL_SPEAKER, resume=True)
    assert resumed.iteration == 3
    resumed.train()

    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_new_run_refuses_existing_output(demo_dir: Path, tmp_path: Path) -> None:
    SpeakerTrainer(speaker_settings(demo_dir, tmp_path, iterations=3), SMALL_SPEAKER).train()
    with pytest.raises(FileExistsError, match="--resume"):
        SpeakerTrainer(speaker_settings(demo_dir, tmp_path, iterations=3), SMALL_SPEAKER)


def test_best_checkpoints_by_bleu(demo_dir: Path, tmp_path: Path) -> None:
    trainer = SpeakerTrainer(
        speaker_settings(demo_dir, tmp_path, iterations=2, eval_interval=2), SMALL_SPEAKER
    )
    best = trainer.train()
    assert set(best) == {"val_seen", "val_unseen"}
    assert 0.0 <= best["val_unseen"]["bleu"] <= 1.0
    assert (tmp_path / "checkpoints" / "best_val_unseen.pt").is_file()
    assert any((tmp_path / "tensorboard").iterdir())


def test_evaluation_scores_every_metric(demo_dir: Path, tmp_path: Path) -> None:
    trainer = SpeakerTrainer(speaker_settings(demo_dir, tmp_path, iterations=1), SMALL_SPEAKER)
    scores = trainer.evaluate(["val_seen"])["val_seen"]
    assert set(scores) == {"bleu", "brevity_penalty", "precision_1", "precision_2", "precision_3",
                           "precision_4", "loss"}  # fmt: skip
    assert scores["loss"] > 0.0


def test_checkpoint_round_trip(demo_dir: Path, tmp_path: Path) -> None:
    trainer = SpeakerTrainer(speaker_settings(demo_dir, tmp_path, iterations=3), SMALL_SPEAKER)
    trainer.train()
    model, world, training = load_speaker(tmp_path / "checkpoints" / "latest.pt")
    assert training == trainer.settings
    assert world.encoder.vocabulary == trainer.world.encoder.vocabulary
    for (name, a), (_, b) in zip(trainer.model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name

    trainer.model.eval()
    paths = first_paths(world, 4, "val_seen")
    assert torch.equal(model.generate(paths, 10), trainer.model.generate(paths, 10))


# --- augmented paths ----------------------------------------------------------------------------


def test_path_hops_match_shortest_paths(speaker_world) -> None:
    graph = speaker_world.connectivity[speaker_world.split("train").scans[0]]
    hops = shortest_path_hops(graph)
    for start in graph.viewpoint_ids:
        for goal in graph.viewpoint_ids:
            if np.isfinite(graph.distance(start, goal)):
                expected = len(graph.shortest_path(start, goal)) - 1
                assert hops[graph.index(goal), graph.index(start)] == expected


def test_sampled_paths_are_short_shortest_paths(speaker_world) -> None:
    train_scans = speaker_world.split("train").scans
    paths = sample_paths(speaker_world.connectivity, train_scans, 60, seed=0)
    assert len(paths) == 60
    for path in paths:
        graph = speaker_world.connectivity[path.scan]
        assert path.scan in train_scans
        assert 4 <= len(path.path) - 1 <= 6
        assert list(path.path) == graph.shortest_path(path.path[0], path.path[-1])
        assert all(graph.included[graph.index(v)] for v in path.path)
        assert path.distance == pytest.approx(graph.path_length(path.path))
        assert 0.0 <= path.heading < 2 * math.pi


def test_sampled_paths_distinct(speaker_world) -> None:
    paths = sample_paths(speaker_world.connectivity, speaker_world.split("train").scans, 60, seed=0)
    assert len({(path.scan, path.path) for path in paths}) == 60


def test_sampled_paths_reproducible(speaker_world) -> None:
    scans = speaker_world.split("train").scans
    first = sample_paths(speaker_world.connectivity, scans, 30, seed=5)
    again = sample_paths(speaker_world.connectivity, scans, 30, seed=5)
    other = sample_paths(speaker_world.connectivity, scans, 30, seed=6)
    assert first == again
    assert first != other


def test_sampled_paths_respect_min_distance(speaker_world) -> None:
    scans = speaker_world.split("train").scans
    paths = sample_paths(speaker_world.connectivity, scans, 20, seed=0, min_distance_m=8.0)
    assert min(path.distance for path in paths) >= 8.0


def test_default_paths_like_r2r(data_dir: Path) -> None:
    # By default, paths are drawn as R2R's were: 4 to 6 edges and at least 5 m from start
    # to goal. Checked here on a real graph against the graph's own shortest paths.
    connectivity = Connectivity(data_dir / "connectivity")
    graph = connectivity["17DRP5sb8fy"]
    paths = sample_paths(connectivity, ["17DRP5sb8fy"], 40, seed=1)
    for path in paths:
        assert list(path.path) == graph.shortest_path(path.path[0], path.path[-1])
        assert 4 <= len(path.path) - 1 <= 6
        assert graph.distance(path.path[0], path.path[-1]) >= 5.0
    assert AugmentationSettings().min_distance_m == 5.0


def test_too_many_paths_rejected(speaker_world) -> None:
    with pytest.raises(AugmentationError, match="fewer than the 100000 requested"):
        sample_paths(speaker_world.connectivity, speaker_world.split("train").scans, 100_000)


def test_greedy_several_instructions_rejected() -> None:
    with pytest.raises(ValueError, match="needs decoding=sample"):
        AugmentationSettings(instructions_per_path=3)


def test_augmented_file_loads(speaker_checkpoint: Path, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug.json"
    entries = augment(speaker_checkpoint, out, 12, AugmentationSettings(batch_size=5))
    split = read_r2r_file(out, name="augmented")
    assert len(split) == 12
    assert len(entries) == 12
    real_ids = {e.path_id for name in ("train", "val_seen", "val_unseen", "test")
                for e in read_r2r_file(demo_dir / "R2R" / f"R2R_{name}.json")}  # fmt: skip
    assert not real_ids & {episode.path_id for episode in split}
    assert min(episode.path_id for episode in split) == 1_000_000
    train_scans = set(read_r2r_file(demo_dir / "R2R" / "R2R_train.json").scans)
    assert {episode.scan for episode in split} <= train_scans


def test_augmented_sampling_writes_several(speaker_checkpoint: Path, tmp_path: Path) -> None:
    settings = AugmentationSettings(decoding="sample", instructions_per_path=2, seed=1)
    first = augment(speaker_checkpoint, tmp_path / "a.json", 5, settings)
    again = augment(speaker_checkpoint, tmp_path / "b.json", 5, settings)
    assert all(len(entry["instructions"]) == 2 for entry in first)
    assert first == again


def test_colliding_path_ids_rejected(speaker_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(AugmentationError, match="would collide with path_id"):
        augment(speaker_checkpoint, tmp_path / "aug.json", 3, AugmentationSettings(path_id_offset=10))
    assert not (tmp_path / "aug.json").exists()


def test_follower_trains_on_augmented_file(speaker_checkpoint: Path, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug.json"
    augment(speaker_checkpoint, out, 16, AugmentationSettings())
    settings = small_follower_settings(demo_dir, tmp_path / "follower", iterations=2, augmented=str(out))
    trainer = FollowerTrainer(settings, SMALL_FOLLOWER)
    trainer.train_iteration()  # real episodes
    logs = trainer.train_iteration()  # augmented episodes, with environmental dropout
    assert {episode.instr_id for episode in trainer.env.episodes} <= set(
        trainer.world.split("augmented").by_instr_id
    )
    assert math.isfinite(logs["losses/total"])


# --- command-line programs ----------------------------------------------------------------------


def test_cli_train_speaker_then_augment(demo_dir: Path, tmp_path: Path, capsys) -> None:
    features = str(next((demo_dir / "features").glob("*.tsv")))
    run_dir = tmp_path / "run"
    argv = [
        "--output-dir", str(run_dir), "--data-dir", str(demo_dir), "--features", features,
        "--iterations", "2", "--batch-size", "8", "--eval-interval", "2", "--eval-paths", "4",
        "--hidden-size", "32", "--embedding-size", "16", "--max-decode-length", "10", "--device", "cpu",
    ]  # fmt: skip
    assert train_speaker.main(argv) == 0
    assert "best on val_unseen: BLEU" in capsys.readouterr().out
    checkpoint = run_dir / "checkpoints" / "best_val_unseen.pt"
    out = tmp_path / "aug.json"
    assert augment_script.main(["--speaker", str(checkpoint), "--count", "6", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 6


def test_cli_augment_too_many_paths_exits_2(speaker_checkpoint: Path, tmp_path: Path, capsys) -> None:
    argv = ["--speaker", str(speaker_checkpoint), "--count", "100000", "--out", str(tmp_path / "aug.json")]
    assert augment_script.main(argv) == 2
    assert "fewer than the 100000 requested" in capsys.readouterr().err
