"""Training the Seq2Seq agent of the R2R paper: settings, the loop, evaluation and checkpoints.

The run follows the follower's conventions (`agent.training`): one settings dataclass
turned into the command line, a run record, atomic checkpoints with exact resume,
TensorBoard scalars, and the best checkpoint per validation split by SPL (nDTW for RxR),
then SR.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch.utils.tensorboard import SummaryWriter

from agent.loop import record_evaluation, run_training
from agent.run_record import feature_signature, write_run_record
from agent.seq2seq import Seq2Seq, Seq2SeqModelSettings, run_episodes
from agent.settings import check_positive, fill_dataset_defaults, resolve_path_fields
from agent.trainer_state import CheckpointedTrainer
from envs.evaluation import evaluate_trajectories
from envs.r2r_env import R2RVectorEnv
from envs.world import EnvSettings, NavigationWorld

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "seq2seq"
TRAINING_FEEDBACKS = ("teacher", "sample")


@dataclass(frozen=True)
class Seq2SeqTrainingSettings:
    """Settings of a Seq2Seq training run; defaults reproduce the R2R paper's student-forcing agent.

    The numbers come from the training script released with the paper (Anderson et al.
    2018; Matterport3D Simulator repository, tasks/R2R/train.py): Adam with learning rate
    0.0001 and weight decay 0.0005, batch 100, 80 instruction tokens, 20 actions per
    episode, and 20,000 iterations of student forcing (5,000 of teacher forcing).
    """

    output_dir: str = "runs/seq2seq"
    """Folder for checkpoints, TensorBoard logs and the run record."""
    data_dir: str | None = None
    """Folder holding connectivity/ and R2R/ (default: $CLIPNAV_DATA_DIR, else ../shared/data)."""
    features: str = "none"
    """View-feature store (TSV, HDF5 or clipnav), or "none" for zeros. The released code used ImageNet ResNet-152 features."""
    feature_dim: int = 512
    """Dimension of the "none" store."""
    vocabulary: str | None = None
    """Vocabulary file; None builds one from the training split (words seen at least 5 times) and
    saves it in output_dir."""
    train_split: str = "train"
    """Split of the training episodes."""
    val_splits: str = "val_seen,val_unseen"
    """Comma-separated splits evaluated at every evaluation interval."""
    feedback: str = "sample"
    """sample (student forcing: the next action is drawn from the policy) or teacher (teacher
    forcing: the next action is the teacher's). The released code defaults to student forcing."""
    iterations: int = 20_000
    """Training iterations (one batch each); the released code ran 20,000 with student forcing
    and 5,000 with teacher forcing."""
    batch_size: int = 100
    """Episodes per batch (released code: 100)."""
    learning_rate: float = 1e-4
    """Adam learning rate (released code: 0.0001)."""
    weight_decay: float = 5e-4
    """Adam weight decay, an L2 penalty added to the gradients (released code: 0.0005)."""
    grad_clip: float | None = None
    """Maximum gradient norm; None does not clip, like the released code."""
    max_steps: int = 20
    """Maximum actions per episode, STOP included (released code: 20). The shortest-path teacher
    needs more on 1 to 3 percent of the R2R episodes."""
    max_instruction_length: int | None = None
    """Instruction tokens kept, <bos> and <eos> included; None means 80 for R2R (released code: 80), 160 for RxR."""
    angle_feature_size: int = 128
    """Size of the angle feature appended to the view feature. The released code fed the image
    feature alone. For the current view the angle feature carries only its elevation."""
    eval_interval: int = 1000
    """Iterations between evaluations on val_splits, with greedy decoding like the released code."""
    eval_episodes: int = 0
    """Episodes evaluated per split; 0 means all."""
    checkpoint_interval: int = 500
    """Iterations between saves of the latest checkpoint."""
    log_interval: int = 100
    """Iterations between log lines and TensorBoard points."""
    seed: int = 0
    """Seed of every random generator."""
    # NOTE: Seq2Seq training and inference have run on the CPU only; the CUDA path is untested.
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
    """Teacher of teacher forcing and of the loss: shortest (path to the goal) or reference (retrace the path); None means shortest for R2R, reference for RxR."""

    def __post_init__(self) -> None:
        resolve_path_fields(self, ("data_dir", "features", "vocabulary", "rxr_dir"))
        fill_dataset_defaults(self)
        if self.feedback not in TRAINING_FEEDBACKS:
            raise ValueError(f"feedback must be one of {TRAINING_FEEDBACKS}, got {self.feedback!r}")
        check_positive(
            self,
            ("iterations", "batch_size", "max_steps", "eval_interval", "checkpoint_interval", "log_interval"),
        )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")

    @property
    def validation_splits(self) -> list[str]:
        return [split for split in self.val_splits.split(",") if split]


def build_world(settings: Seq2SeqTrainingSettings, vocabulary_path: str | None) -> NavigationWorld:
    """Open the data, features and vocabulary that a Seq2Seq run trains on."""
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
    )
    return NavigationWorld.from_settings(env_settings)


def egocentric_env(world: NavigationWorld, batch_size: int, max_steps: int) -> R2RVectorEnv:
    """Return an egocentric vector environment whose episodes run until STOP or `max_steps`."""
    return R2RVectorEnv(
        num_envs=batch_size,
        world=world,
        max_episode_steps=max_steps,
        autoreset_mode=AutoresetMode.DISABLED,
        action_space="egocentric",
    )


class Seq2SeqTrainer(CheckpointedTrainer):
    """Trains a Seq2Seq agent and evaluates it; `train()` runs or resumes the whole loop."""

    checkpoint_kind = CHECKPOINT_KIND

    def __init__(
        self,
        settings: Seq2SeqTrainingSettings,
        model_settings: Seq2SeqModelSettings | None = None,
        resume: bool = False,
    ):
        self.settings = settings
        self.model_settings = model_settings or Seq2SeqModelSettings()
        state = self._open_run(resume)

        vocabulary_path = state["vocabulary_path"] if state is not None else settings.vocabulary
        self.world = build_world(settings, vocabulary_path)
        if vocabulary_path is None:
            vocabulary_path = str(self.output_dir / "vocab.txt")
            self.world.encoder.vocabulary.save(vocabulary_path)
        self.vocabulary_path = vocabulary_path

        self.model = Seq2Seq(
            len(self.world.encoder.vocabulary),
            self.world.features.dim,
            settings.angle_feature_size,
            self.model_settings,
        ).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        self.env = egocentric_env(self.world, settings.batch_size, settings.max_steps)
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
        """Run one batch with teacher or student forcing and one optimizer step; return the logs."""
        settings = self.settings
        self.model.train()
        self.optimizer.zero_grad()
        observation, _ = self.env.reset(options={"split": settings.train_split})
        active = np.ones(self.env.num_envs, dtype=bool)
        result = run_episodes(
            self.model, self.env, observation, settings.feedback, active, settings.max_steps
        )
        result.loss.backward()
        if settings.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.grad_clip)
        self.optimizer.step()
        self.iteration += 1
        return {
            "losses/imitation": float(result.loss.detach()),
            "train/actions_per_episode": result.steps / self.env.num_envs,
            "train/reward_per_episode": result.total_reward / self.env.num_envs,
        }

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
        record_evaluation(self, results, rank_by="ndtw" if self.settings.dataset == "rxr" else "spl")

    # --- the loop -----------------------------------------------------------------------

    def train(self) -> dict[str, dict[str, float]]:
        """Train until `iterations`, evaluating, logging and checkpointing on the way."""
        return run_training(self, "train seq2seq")


def greedy_trajectories(
    model: Seq2Seq,
    world: NavigationWorld,
    split: str,
    instr_ids: list[str],
    settings: Seq2SeqTrainingSettings,
) -> dict[str, list]:
    """Run the agent with greedy decoding on the given episodes; return trajectories by instr_id."""
    model.eval()
    batch_size = settings.batch_size
    env = egocentric_env(world, batch_size, settings.max_steps)
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
