"""Back-translation with environmental dropout in follower training, on the demo world."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_follower import SMALL_MODEL, small_settings
from test_speaker import SMALL_SPEAKER, speaker_settings

from agent.augmentation import AugmentationSettings, augment
from agent.back_translation import LIVE_SPLIT
from agent.speaker_training import SpeakerTrainer
from agent.training import FollowerTrainer


@pytest.fixture(scope="module")
def speaker_and_augmented(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    output = tmp_path_factory.mktemp("bt")
    # The follower's angle features (16 here) must match the speaker's.
    SpeakerTrainer(speaker_settings(demo_dir, output / "speaker", iterations=2), SMALL_SPEAKER).train()
    checkpoint = output / "speaker" / "checkpoints" / "latest.pt"
    augmented = output / "aug.json"
    augment(checkpoint, augmented, 16, AugmentationSettings(batch_size=8), data_dir=str(demo_dir))
    return checkpoint, augmented


def bt_trainer(demo_dir: Path, output: Path, speaker: Path, augmented: Path) -> FollowerTrainer:
    settings = small_settings(
        demo_dir, output, augmented=str(augmented), speaker=str(speaker), train_mode="il", iterations=2
    )
    return FollowerTrainer(settings, SMALL_MODEL)


def test_augmented_batch_gets_speaker_instructions(
    demo_dir: Path, tmp_path: Path, speaker_and_augmented
) -> None:
    speaker, augmented = speaker_and_augmented
    trainer = bt_trainer(demo_dir, tmp_path, speaker, augmented)
    trainer.train_iteration()  # a real batch
    trainer.train_iteration()  # an augmented batch, relabelled by the speaker
    live = trainer.world.split(LIVE_SPLIT)
    assert len(live) == trainer.env.num_envs
    assert all(episode.instr_id.startswith("bt") for episode in live)
    assert {e.instr_id for e in trainer.env.episodes} == {e.instr_id for e in live}


def test_relabelled_paths_keep_their_viewpoints(
    demo_dir: Path, tmp_path: Path, speaker_and_augmented
) -> None:
    speaker, augmented = speaker_and_augmented
    trainer = bt_trainer(demo_dir, tmp_path, speaker, augmented)
    trainer.iteration = 1  # the next batch is augmented
    trainer._start_batch("augmented", augmented=True)
    originals = {(e.scan, e.path) for e in trainer.world.split("augmented")}
    for episode in trainer.world.split(LIVE_SPLIT):
        assert (episode.scan, episode.path) in originals


def test_dropout_mask_shared_within_scan(demo_dir: Path, tmp_path: Path, speaker_and_augmented) -> None:
    speaker, augmented = speaker_and_augmented
    trainer = bt_trainer(demo_dir, tmp_path, speaker, augmented)
    trainer.env.reset(options={"split": "augmented"})
    masks = trainer._environment_dropout()
    by_scan: dict[str, torch.Tensor] = {}
    for slot, episode in enumerate(trainer.env.episodes):
        if episode.scan in by_scan:
            assert torch.equal(masks[slot], by_scan[episode.scan])
        by_scan[episode.scan] = masks[slot]
    kept = 1.0 / (1.0 - trainer.settings.env_dropout)  # inverted dropout scales kept channels
    values = torch.unique(masks)
    assert torch.all((values == 0) | torch.isclose(values, torch.tensor(kept)))


def test_speaker_without_augmented_rejected(demo_dir: Path, tmp_path: Path, speaker_and_augmented) -> None:
    speaker, _ = speaker_and_augmented
    with pytest.raises(ValueError, match="augmented"):
        FollowerTrainer(small_settings(demo_dir, tmp_path, speaker=str(speaker)), SMALL_MODEL)
