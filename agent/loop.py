"""Training loop shared by every trainer, and the best checkpoints of the navigation agents."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from tqdm import tqdm

logger = logging.getLogger(__name__)


class Trainer(Protocol):
    """Interface of a trainer that `run_training` drives."""

    settings: Any  # with iterations, log_interval, eval_interval and checkpoint_interval
    iteration: int
    best: dict[str, dict[str, float]]
    writer: Any  # a TensorBoard SummaryWriter
    optimizer: Any

    def train_iteration(self) -> dict[str, float]: ...

    def evaluate(self) -> dict[str, dict[str, float]]: ...

    def _record_evaluation(self, results: dict[str, dict[str, float]]) -> None: ...

    def save(self, name: str = "latest") -> Any: ...


def run_training(trainer: Trainer, description: str) -> dict[str, dict[str, float]]:
    """Train until `iterations`, logging, evaluating and checkpointing at their intervals.

    The last iteration always logs, evaluates and saves. Returns the trainer's best
    results per validation split.
    """
    settings = trainer.settings
    start, first_iteration = time.perf_counter(), trainer.iteration
    bar = tqdm(
        total=settings.iterations, initial=trainer.iteration, desc=description, unit="it", dynamic_ncols=True
    )
    while trainer.iteration < settings.iterations:
        logs = trainer.train_iteration()
        bar.update(1)
        last = trainer.iteration == settings.iterations
        if trainer.iteration % settings.log_interval == 0 or last:
            for name, value in logs.items():
                trainer.writer.add_scalar(name, value, trainer.iteration)
            trainer.writer.add_scalar(
                "train/learning_rate", trainer.optimizer.param_groups[0]["lr"], trainer.iteration
            )
            bar.set_postfix({name.split("/")[-1]: f"{value:.3f}" for name, value in logs.items()})
            logger.debug("iteration %d: %s", trainer.iteration, logs)
        if trainer.iteration % settings.eval_interval == 0 or last:
            trainer._record_evaluation(trainer.evaluate())
        if trainer.iteration % settings.checkpoint_interval == 0 or last:
            trainer.save("latest")
    bar.close()
    trainer.writer.flush()
    logger.info(
        "trained %d iterations in %.0f s, now at iteration %d",
        trainer.iteration - first_iteration,
        time.perf_counter() - start,
        trainer.iteration,
    )
    return trainer.best


def record_evaluation(trainer: Trainer, results: dict[str, dict[str, float]], rank_by: str) -> None:
    """Log a navigation agent's mean metrics per split and save a new best checkpoint per split.

    A split's best checkpoint is the one with the highest `rank_by` metric ("spl" or
    "ndtw"), success rate breaking ties. It is saved as `best_<split>`.
    """
    for split, means in results.items():
        for name, value in means.items():
            trainer.writer.add_scalar(f"eval/{split}/{name}", value, trainer.iteration)
        logger.info(
            "iteration %d, %s: SR %.4f SPL %.4f NE %.2f nDTW %.4f",
            trainer.iteration,
            split,
            means["success"],
            means["spl"],
            means["navigation_error"],
            means["ndtw"],
        )
        score = (means[rank_by], means["success"])
        best = trainer.best.get(split)
        # Records of older runs may lack the metric: any result beats them.
        if best is None or score > (best.get(rank_by, -1.0), best["success"]):
            trainer.best[split] = {
                "spl": means["spl"],
                "ndtw": means["ndtw"],
                "success": means["success"],
                "iteration": trainer.iteration,
            }
            path = trainer.save(f"best_{split}")
            logger.info(
                "new best on %s (%s %.4f, SR %.4f): %s",
                split,
                rank_by,
                means[rank_by],
                means["success"],
                path,
            )
