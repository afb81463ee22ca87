"""Training the EnvDrop speaker: settings, the loop, checkpoints and loading a trained speaker."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch.utils.tensorboard import SummaryWriter

from agent.bleu import REFERENCE_LENGTHS
from agent.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_state,
)
from agent.loop import run_training
from agent.run_record import choose_device, feature_signature, write_run_record
from agent.settings import check_positive, resolve_path_fields
from agent.speaker import DEFAULT_MAX_STEPS, Speaker, SpeakerModelSettings, collect_paths
from agent.speaker_evaluation import evaluate_speaker
from agent.trainer_state import CheckpointedTrainer
from envs.features import check_compatible
from envs.r2r_env import R2RVectorEnv
from envs.tokenizer import SPECIAL_TOKENS, Vocabulary
from envs.world import EnvSettings, NavigationWorld

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "speaker"


@dataclass(frozen=True)
class SpeakerTrainingSettings:
    """Settings of a speaker training run; defaults follow R2R-EnvDrop's run/speaker.bash."""

    output_dir: str = "runs/speaker"
    """Folder for checkpoints, TensorBoard logs and the run record."""
    data_dir: str | None = None
    """Folder holding connectivity/ and R2R/ (default: $CLIPNAV_DATA_DIR, else ../shared/data)."""
    features: str = "none"
    """View-feature store (TSV, HDF5 or clipnav), or "none" for zeros."""
    feature_dim: int = 512
    """Dimension of the "none" store."""
    vocabulary: str | None = None
    """Vocabulary file; None builds one from the training split and saves it in output_dir."""
    train_split: str = "train"
    """Split whose episodes the speaker learns from."""
    val_splits: str = "val_seen,val_unseen"
    """Comma-separated splits scored by BLEU at every evaluation interval."""
    iterations: int = 80_000
    """Training iterations (one batch each); EnvDrop's script runs longer and keeps the best by BLEU."""
    batch_size: int = 64
    """Episodes per batch."""
    learning_rate: float = 1e-4
    """Learning rate."""
    optimizer: str = "adam"
    """adam (EnvDrop's speaker) or rmsprop."""
    grad_clip: float = 40.0
    """Maximum gradient norm."""
    max_steps: int = DEFAULT_MAX_STEPS
    """Maximum actions per path."""
    max_instruction_length: int = 80
    """Instruction tokens kept for training, <bos> and <eos> included."""
    max_decode_length: int = 120
    """Words generated at most per instruction, <eos> included (EnvDrop --maxDecode)."""
    angle_feature_size: int = 128
    """Size of the angle features."""
    bleu_reference_length: str = "closest"
    """Brevity-penalty reference length: closest (Papineni et al.) or shortest (EnvDrop's scorer)."""
    eval_interval: int = 500
    """Iterations between evaluations on val_splits (EnvDrop evaluates its speaker every 500)."""
    eval_paths: int = 0
    """Paths evaluated per split; 0 means all."""
    checkpoint_interval: int = 500
    """Iterations between saves of the latest checkpoint."""
    log_interval: int = 100
    """Iterations between log lines and TensorBoard points."""
    seed: int = 0
    """Seed of every random generator."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (CUDA when present)."""
    force_features: bool = False
    """Train on resume, or generate, with features that differ from the checkpoint's."""
    dataset: str = "r2r"
    """Task to train on: r2r or rxr (the RxR guide files; paths come from the reference path)."""
    languages: str | None = None
    """RxR only: comma-separated languages (en, hi, te or tags such as en-IN); None keeps all."""
    rxr_dir: str | None = None
    """RxR only: folder of the rxr_<split>_guide.jsonl.gz files (default: RxR/ in data_dir)."""

    def __post_init__(self) -> None:
        resolve_path_fields(self, ("data_dir", "features", "vocabulary", "rxr_dir"))
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"optimizer must be rmsprop or adam, got {self.optimizer!r}")
        if self.bleu_reference_length not in REFERENCE_LENGTHS:
            raise ValueError(
                f"bleu_reference_length must be one of {REFERENCE_LENGTHS}, got {self.bleu_reference_length!r}"
            )
        check_positive(
            self,
            (
                "iterations",
                "batch_size",
                "max_steps",
                "max_decode_length",
                "eval_interval",
                "checkpoint_interval",
                "log_interval",
            ),
        )
        if self.eval_paths < 0:
            raise ValueError(f"eval_paths must be at least 0, got {self.eval_paths}")

    @property
    def validation_splits(self) -> list[str]:
        return [split for split in self.val_splits.split(",") if split]


def build_speaker_world(
    settings: SpeakerTrainingSettings,
    vocabulary_path: str | None = None,
    vocabulary: Vocabulary | None = None,
    data_dir: str | None = None,
    features: str | None = None,
) -> NavigationWorld:
    """Open the world a speaker trains or generates in; `data_dir` and `features` override the settings."""
    env_settings = EnvSettings(
        data_dir=data_dir if data_dir is not None else settings.data_dir,
        split=settings.train_split,
        features=features if features is not None else settings.features,
        feature_dim=settings.feature_dim,
        vocabulary=vocabulary_path,
        max_instruction_length=settings.max_instruction_length,
        angle_feature_size=settings.angle_feature_size,
        dataset=settings.dataset,
        languages=settings.languages,
        rxr_dir=settings.rxr_dir,
        # The speaker describes the path the annotator walked, so paths retrace the reference.
        teacher="reference" if settings.dataset == "rxr" else None,
    )
    return NavigationWorld.from_settings(env_settings, vocabulary=vocabulary)


class SpeakerTrainer(CheckpointedTrainer):
    """Trains a speaker by teacher forcing and scores it by BLEU; `train()` runs or resumes the loop."""

    checkpoint_kind = CHECKPOINT_KIND

    def __init__(
        self,
        settings: SpeakerTrainingSettings,
        model_settings: SpeakerModelSettings | None = None,
        resume: bool = False,
    ):
        self.settings = settings
        self.model_settings = model_settings or SpeakerModelSettings()
        state = self._open_run(resume)

        vocabulary_path = state["vocabulary_path"] if state is not None else settings.vocabulary
        self.world = build_speaker_world(settings, vocabulary_path)
        if vocabulary_path is None:
            vocabulary_path = str(self.output_dir / "vocab.txt")
            self.world.encoder.vocabulary.save(vocabulary_path)
        self.vocabulary_path = vocabulary_path

        self.model = Speaker(
            len(self.world.encoder.vocabulary),
            self.world.features.dim,
            settings.angle_feature_size,
            self.model_settings,
        ).to(self.device)
        parameters = self.model.parameters()
        if settings.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(parameters, lr=settings.learning_rate)
        else:
            self.optimizer = torch.optim.RMSprop(parameters, lr=settings.learning_rate)
        self.env = R2RVectorEnv(
            num_envs=settings.batch_size,
            world=self.world,
            max_episode_steps=settings.max_steps,
            autoreset_mode=AutoresetMode.DISABLED,
        )
        self.env.reset(seed=settings.seed)
        self.iteration = 0
        self.best: dict[str, dict[str, float]] = {}
        if state is not None:
            self._restore(state)
        write_run_record(
            self.output_dir,
            {
                "training": asdict(settings),
                "model": asdict(self.model_settings),
                "vocabulary": vocabulary_path,
            },
            settings.seed,
            self.world.features.metadata | {"signature": feature_signature(self.world)},
        )
        self.writer = SummaryWriter(str(self.output_dir / "tensorboard"), purge_step=self.iteration + 1)

    # --- one iteration ------------------------------------------------------------------

    def train_iteration(self) -> dict[str, float]:
        """Teacher-force one batch of training episodes and take one optimizer step; return the loss."""
        settings = self.settings
        self.model.train()
        active = np.ones(self.env.num_envs, dtype=bool)
        observation, _ = self.env.reset(options={"split": settings.train_split})
        paths = collect_paths(self.env, observation, active, self.device, settings.max_steps)

        self.optimizer.zero_grad()
        loss = self.model.loss(paths)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.grad_clip)
        self.optimizer.step()
        self.iteration += 1
        return {"losses/cross_entropy": float(loss.detach())}

    # --- evaluation -------------------------------------------------------------------

    def evaluate(self, splits: list[str] | None = None) -> dict[str, dict[str, float]]:
        """Score the speaker on each split; return BLEU, n-gram precisions and loss per split."""
        settings = self.settings
        return {
            split: evaluate_speaker(
                self.model,
                self.world,
                split,
                settings.batch_size,
                settings.eval_paths,
                settings.max_decode_length,
                settings.max_steps,
                settings.bleu_reference_length,
            )
            for split in (splits or settings.validation_splits)
        }

    def _record_evaluation(self, results: dict[str, dict[str, float]]) -> None:
        for split, scores in results.items():
            for name, value in scores.items():
                self.writer.add_scalar(f"eval/{split}/{name}", value, self.iteration)
            logger.info(
                "iteration %d, %s: BLEU %.4f, loss %.4f",
                self.iteration,
                split,
                scores["bleu"],
                scores["loss"],
            )
            best = self.best.get(split)
            if best is None or scores["bleu"] > best["bleu"]:
                self.best[split] = {"bleu": scores["bleu"], "iteration": self.iteration}
                path = self.save(f"best_{split}")
                logger.info("new best on %s (BLEU %.4f): %s", split, scores["bleu"], path)

    # --- the loop -----------------------------------------------------------------------

    def train(self) -> dict[str, dict[str, float]]:
        """Train until `iterations`, evaluating, logging and checkpointing on the way; return the best BLEU per split."""
        return run_training(self, "train speaker")


def load_speaker(
    checkpoint: str | os.PathLike[str],
    data_dir: str | None = None,
    features: str | None = None,
    device: str = "cpu",
    force_features: bool = False,
) -> tuple[Speaker, NavigationWorld, SpeakerTrainingSettings]:
    """Rebuild a speaker and a world for it from a checkpoint.

    The world reads `features` (default: the store the speaker was trained on) and uses
    the checkpoint's own vocabulary. A store whose dimension, encoder or weights differ
    from the training features raises FeatureMismatchError unless `force_features`.
    """
    state = load_checkpoint(checkpoint, CHECKPOINT_KIND)
    training = SpeakerTrainingSettings(**state["training_settings"])
    model_settings = SpeakerModelSettings(**state["model_settings"])
    vocabulary = Vocabulary(state["vocabulary"][len(SPECIAL_TOKENS) :])
    if vocabulary.tokens != state["vocabulary"]:
        raise CheckpointError(f"{checkpoint}: its vocabulary does not start with the special tokens")

    world = build_speaker_world(training, vocabulary=vocabulary, data_dir=data_dir, features=features)
    check_compatible(state["features"], feature_signature(world), force=force_features)

    model = Speaker(len(vocabulary), world.features.dim, training.angle_feature_size, model_settings)
    load_model_state(model, state, checkpoint)
    model.to(choose_device(device)).eval()
    logger.info("loaded speaker from %s (iteration %d)", Path(checkpoint), state["iteration"])
    return model, world, training
