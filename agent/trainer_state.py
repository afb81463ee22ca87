"""Trainer checkpoints: their contents, and resuming a run from one.

The follower, Seq2Seq and speaker trainers save the same record: the model and
optimizer states, both settings dataclasses, the vocabulary, the feature store's
signature, every random generator's state, the episode sampler's position and the best
results so far. Resuming from it continues the run exactly.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.checkpoint import (
    capture_random_state,
    load_checkpoint,
    load_model_state,
    restore_random_state,
    save_checkpoint,
)
from agent.run_record import choose_device, feature_signature, seed_everything
from envs.features import check_compatible

logger = logging.getLogger(__name__)


class CheckpointedTrainer:
    """Base class of the trainers that gives them their checkpoint methods.

    A subclass sets `checkpoint_kind` and the attributes used here: `iteration`,
    `model`, `optimizer`, `settings` (with `output_dir`, `device`, `seed` and
    `force_features`), `model_settings`, `world`, `vocabulary_path`, `env` and `best`.
    `_open_run` sets `output_dir`, `checkpoint_dir` and `device`.
    """

    checkpoint_kind: str
    iteration: int
    best: dict[str, dict[str, float]]
    output_dir: Path
    checkpoint_dir: Path
    device: Any
    model: Any
    optimizer: Any
    settings: Any
    model_settings: Any
    world: Any
    vocabulary_path: str
    env: Any

    def _open_run(self, resume: bool) -> dict[str, Any] | None:
        """Set the run's folders, device and seeds; return the state of `latest.pt` when resuming.

        Raises:
            FileExistsError: a new run would overwrite the checkpoints of an earlier one.
        """
        self.output_dir = Path(self.settings.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.device = choose_device(self.settings.device)
        seed_everything(self.settings.seed)

        latest = self.checkpoint_dir / "latest.pt"
        if resume:
            return load_checkpoint(latest, self.checkpoint_kind)
        if latest.exists():
            raise FileExistsError(
                f"{latest} exists: pass --resume to continue that run, or choose another output_dir"
            )
        return None

    def checkpoint_state(self) -> dict[str, Any]:
        """Return everything a checkpoint contains, as plain containers and tensors."""
        return {
            "kind": self.checkpoint_kind,
            "iteration": self.iteration,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "training_settings": asdict(self.settings),
            "model_settings": asdict(self.model_settings),
            "vocabulary": list(self.world.encoder.vocabulary.tokens),
            "vocabulary_path": self.vocabulary_path,
            "features": feature_signature(self.world),
            "random_state": capture_random_state(),
            "sampling": self.env.sampling_state(),
            "best": self.best,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint of `latest.pt`, checking that the features still match."""
        check_compatible(state["features"], feature_signature(self.world), force=self.settings.force_features)
        load_model_state(self.model, state, self.checkpoint_dir / "latest.pt")
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.best = state["best"]
        self.env.load_sampling_state(state["sampling"])
        restore_random_state(state["random_state"])
        logger.info("resumed %s at iteration %d", self.output_dir, self.iteration)

    def save(self, name: str = "latest") -> Path:
        """Write `checkpoints/<name>.pt` atomically; return its path."""
        path = self.checkpoint_dir / f"{name}.pt"
        save_checkpoint(path, self.checkpoint_state())
        return path
