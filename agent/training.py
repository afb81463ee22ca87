"""Training the EnvDrop follower: settings, the loop, evaluation and checkpoints."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch.utils.tensorboard import SummaryWriter

from agent.back_translation import LIVE_SPLIT, BackTranslator, install_live_split
from agent.follower import Follower, FollowerModelSettings, run_episodes
from agent.loop import record_evaluation, run_training
from agent.run_record import feature_signature, write_run_record
from agent.settings import check_positive, fill_dataset_defaults, resolve_path_fields
from agent.trainer_state import CheckpointedTrainer
from envs.evaluation import evaluate_trajectories
from envs.r2r import read_r2r_file
from envs.r2r_env import R2RVectorEnv
from envs.world import EnvSettings, NavigationWorld

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "envdrop-follower"
TRAIN_MODES = ("il", "rl", "mixed")
AUGMENTED_SPLIT = "augmented"


@dataclass(frozen=True)
class FollowerTrainingSettings:
    """Settings of a follower training run; defaults reproduce CLIP-ViL's R2R configuration."""

    output_dir: str = "runs/follower"
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
    """Split of the real training episodes."""
    augmented: str | None = None
    """R2R-format file of augmented paths; batches alternate real and augmented."""
    speaker: str | None = None
    """Speaker checkpoint for back-translation: it rewrites each augmented batch's instructions
    from the environment-dropped features; None uses the augmented file's instructions."""
    speaker_sampling: bool = False
    """Sample the speaker's words instead of taking the most likely ones."""
    val_splits: str = "val_seen,val_unseen"
    """Comma-separated splits evaluated at every evaluation interval."""
    iterations: int = 80_000
    """Training iterations (one batch each)."""
    batch_size: int = 64
    """Episodes per batch."""
    learning_rate: float = 1e-4
    """Learning rate of the optimizer."""
    optimizer: str = "rmsprop"
    """rmsprop (EnvDrop) or adam."""
    train_mode: str = "mixed"
    """il (teacher forcing), rl (A2C) or mixed (both, weighted by ml_weight)."""
    ml_weight: float = 0.2
    """Weight of the imitation loss in mixed training."""
    gamma: float = 0.9
    """Discount of the A2C returns."""
    reward: str = "distance"
    """A2C reward of a move: distance (metres gained towards the goal, EnvDrop) or ndtw (nDTW gained along the reference path, for RxR)."""
    entropy_weight: float = 0.01
    """Weight of the entropy bonus in the A2C loss."""
    grad_clip: float = 40.0
    """Maximum gradient norm."""
    max_steps: int = 35
    """Maximum actions per episode."""
    max_instruction_length: int | None = None
    """Instruction tokens kept, <bos> and <eos> included; None means 80 for R2R, 160 for RxR."""
    angle_feature_size: int = 128
    """Size of the angle features."""
    env_dropout: float = 0.3
    """Environmental dropout on augmented batches: one channel mask per scan, shared by all its views."""
    eval_interval: int = 2000
    """Iterations between evaluations on val_splits."""
    eval_episodes: int = 0
    """Episodes evaluated per split; 0 means all."""
    checkpoint_interval: int = 500
    """Iterations between saves of the latest checkpoint."""
    log_interval: int = 100
    """Iterations between log lines and TensorBoard points."""
    seed: int = 0
    """Seed of every random generator."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (CUDA when present)."""
    force_features: bool = False
    """Train on resume, or evaluate, with features that differ from the checkpoint's."""

    # --- dataset selection (R2R or RxR) ---
    dataset: str = "r2r"
    """Task to train on: r2r or rxr (the RxR guide files, taught along the reference path)."""
    languages: str | None = None
    """RxR only: comma-separated languages to train and evaluate on (en, hi, te or tags such as en-IN); None keeps all."""
    rxr_dir: str | None = None
    """RxR only: folder of the rxr_<split>_guide.jsonl.gz files (default: RxR/ in data_dir)."""
    teacher: str | None = None
    """Teacher of imitation learning: shortest (path to the goal) or reference (retrace the path); None means shortest for R2R, reference for RxR."""

    def __post_init__(self) -> None:
        resolve_path_fields(self, ("data_dir", "features", "vocabulary", "augmented", "speaker", "rxr_dir"))
        fill_dataset_defaults(self, reward=self.reward)
        if self.train_mode not in TRAIN_MODES:
            raise ValueError(f"train_mode must be one of {TRAIN_MODES}, got {self.train_mode!r}")
        if self.train_mode == "il" and self.reward != "distance":
            logger.warning("reward=%s has no effect with train_mode=il, which uses no reward", self.reward)
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"optimizer must be rmsprop or adam, got {self.optimizer!r}")
        check_positive(
            self,
            ("iterations", "batch_size", "max_steps", "eval_interval", "checkpoint_interval", "log_interval"),
        )

    @property
    def validation_splits(self) -> list[str]:
        return [split for split in self.val_splits.split(",") if split]


def build_world(settings: FollowerTrainingSettings, vocabulary_path: str | None) -> NavigationWorld:
    env_settings = EnvSettings(
        data_dir=settings.data_dir,
        split=settings.train_split,
        features=settings.features,
        feature_dim=settings.feature_dim,
        vocabulary=vocabulary_path,
        max_instruction_length=settings.max_instruction_length,
        angle_feature_size=settings.angle_feature_size,
        dataset=settings.dataset,
        languages=settings.languages,
        rxr_dir=settings.rxr_dir,
        teacher=settings.teacher,
        reward=settings.reward,
    )
    world = NavigationWorld.from_settings(env_settings)
    if settings.augmented:
        world.add_split(read_r2r_file(settings.augmented, name=AUGMENTED_SPLIT, has_reference=True))
    return world


class FollowerTrainer(CheckpointedTrainer):
    """Trains a follower and evaluates it; `train()` runs or resumes the whole loop."""

    checkpoint_kind = CHECKPOINT_KIND

    def __init__(
        self,
        settings: FollowerTrainingSettings,
        model_settings: FollowerModelSettings | None = None,
        resume: bool = False,
        world: NavigationWorld | None = None,
    ):
        """Set up a run; `world` replaces the one `settings` describe (benchmarks, tests)."""
        self.settings = settings
        self.model_settings = model_settings or FollowerModelSettings()
        model_settings = self.model_settings
        state = self._open_run(resume)

        vocabulary_path = self._vocabulary_path(state)
        self.world = world if world is not None else build_world(settings, vocabulary_path)
        if vocabulary_path is None:
            vocabulary_path = str(self.output_dir / "vocab.txt")
            self.world.encoder.vocabulary.save(vocabulary_path)
        self.vocabulary_path = vocabulary_path

        self.model = Follower(
            len(self.world.encoder.vocabulary),
            self.world.features.dim,
            settings.angle_feature_size,
            model_settings,
        ).to(self.device)
        parameters = self.model.parameters()
        if settings.optimizer == "rmsprop":
            self.optimizer: torch.optim.Optimizer = torch.optim.RMSprop(parameters, lr=settings.learning_rate)
        else:
            self.optimizer = torch.optim.Adam(parameters, lr=settings.learning_rate)
        self.env = R2RVectorEnv(
            num_envs=settings.batch_size,
            world=self.world,
            max_episode_steps=settings.max_steps,
            autoreset_mode=AutoresetMode.DISABLED,
        )
        self.env.reset(seed=settings.seed)
        self.translator = None
        if settings.speaker:
            if not settings.augmented:
                raise ValueError("a speaker rewrites augmented batches: pass augmented as well")
            self.translator = BackTranslator(
                settings.speaker, self.world, self.device, settings.speaker_sampling, settings.force_features
            )
        self.iteration = 0
        self.best: dict[str, dict[str, float]] = {}
        if state is not None:
            self._restore(state)
        write_run_record(
            self.output_dir,
            {"training": asdict(settings), "model": asdict(model_settings), "vocabulary": vocabulary_path},
            settings.seed,
            self.world.features.metadata | {"signature": feature_signature(self.world)},
        )
        self.writer = SummaryWriter(str(self.output_dir / "tensorboard"), purge_step=self.iteration + 1)

    def _vocabulary_path(self, state: dict[str, Any] | None) -> str | None:
        if state is not None:
            return state["vocabulary_path"]
        return self.settings.vocabulary

    # --- one iteration ------------------------------------------------------------------

    def _environment_dropout(self) -> torch.Tensor:
        """Draw one visual channel mask per scan of the batch, shared by all views of that scan."""
        keep = 1.0 - self.settings.env_dropout
        masks: dict[str, torch.Tensor] = {}
        rows = []
        for episode in self.env.episodes:
            if episode.scan not in masks:
                draw = torch.bernoulli(torch.full((self.world.features.dim,), keep))
                masks[episode.scan] = draw / keep
            rows.append(masks[episode.scan])
        return torch.stack(rows).to(self.device)  # [B, D]

    def _start_batch(self, split: str, augmented: bool) -> tuple[dict[str, np.ndarray], torch.Tensor | None]:
        """Reset the environment on the next batch of `split`; return its observation and visual mask.

        Augmented batches get environmental dropout and, with a speaker, the instructions
        the speaker writes for their paths through the same masks.
        """
        observation, _ = self.env.reset(options={"split": split})
        if not augmented:
            return observation, None
        visual_mask = self._environment_dropout()
        if self.translator is not None:
            episodes = self.translator.relabel(self.env, observation, visual_mask, self.settings.max_steps)
            instr_ids = install_live_split(self.world, episodes)
            observation, _ = self.env.reset(options={"split": LIVE_SPLIT, "instr_ids": instr_ids})
        return observation, visual_mask

    def train_iteration(self) -> dict[str, float]:
        """Run one batch (imitation, A2C or both) and one optimizer step; return the losses."""
        settings = self.settings
        self.model.train()
        augmented = settings.augmented is not None and self.iteration % 2 == 1
        split = AUGMENTED_SPLIT if augmented else settings.train_split
        active = np.ones(self.env.num_envs, dtype=bool)
        self.optimizer.zero_grad()
        logs: dict[str, float] = {}
        total = torch.zeros((), device=self.device)

        if settings.train_mode in ("il", "mixed"):
            observation, visual_mask = self._start_batch(split, augmented)
            result = run_episodes(
                self.model, self.env, observation, "teacher", active, settings.max_steps, visual_mask
            )
            weight = 1.0 if settings.train_mode == "il" else settings.ml_weight
            total = total + weight * result.imitation_loss
            logs["losses/imitation"] = float(result.imitation_loss.detach())

        if settings.train_mode in ("rl", "mixed"):
            observation, visual_mask = self._start_batch(split, augmented)
            result = run_episodes(
                self.model,
                self.env,
                observation,
                "sample",
                active,
                settings.max_steps,
                visual_mask,
                settings.gamma,
                settings.entropy_weight,
            )
            if result.rl_loss is not None:
                total = total + result.rl_loss
                logs["losses/rl"] = float(result.rl_loss.detach())
            logs["train/reward_per_episode"] = result.total_reward / self.env.num_envs

        total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.grad_clip)
        self.optimizer.step()
        self.iteration += 1
        logs["losses/total"] = float(total.detach())
        return logs

    # --- evaluation -------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, splits: list[str] | None = None) -> dict[str, dict[str, float]]:
        """Greedy episodes on each split; return the mean metrics per split."""
        self.model.eval()
        results = {}
        for split_name in splits or self.settings.validation_splits:
            split = self.world.split(split_name)
            instr_ids = [e.instr_id for e in split]
            if self.settings.eval_episodes:
                instr_ids = instr_ids[: self.settings.eval_episodes]
            trajectories = greedy_trajectories(self.model, self.world, split_name, instr_ids, self.settings)
            report = evaluate_trajectories(trajectories, split.subset(instr_ids), self.world.connectivity)
            results[split_name] = report.means()
        return results

    def _record_evaluation(self, results: dict[str, dict[str, float]]) -> None:
        # RxR's main metric is nDTW; R2R ranks by SPL.
        record_evaluation(self, results, rank_by="ndtw" if self.settings.dataset == "rxr" else "spl")

    # --- the loop -----------------------------------------------------------------------

    def train(self) -> dict[str, dict[str, float]]:
        """Train until `iterations`, evaluating, logging and checkpointing on the way."""
        return run_training(self, "train follower")


def greedy_trajectories(
    model: Follower, world: NavigationWorld, split: str, instr_ids: list[str], settings: Any
) -> dict[str, list]:
    """Run the follower greedily on the given episodes; return trajectories by instr_id."""
    model.eval()
    batch_size = settings.batch_size
    env = R2RVectorEnv(
        num_envs=batch_size,
        world=world,
        max_episode_steps=settings.max_steps,
        autoreset_mode=AutoresetMode.DISABLED,
    )
    trajectories: dict[str, list] = {}
    with torch.no_grad():
        for start in range(0, len(instr_ids), batch_size):
            chunk = instr_ids[start : start + batch_size]
            mask = np.zeros(batch_size, dtype=bool)
            mask[: len(chunk)] = True
            observation, _ = env.reset(options={"split": split, "instr_ids": chunk, "reset_mask": mask})
            result = run_episodes(model, env, observation, "argmax", mask, settings.max_steps)
            trajectories.update(result.trajectories)
    env.close()
    return {instr_id: [list(pose) for pose in trajectories[instr_id]] for instr_id in instr_ids}
