"""Loading a trained follower from its checkpoint and running it greedily on any split."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from agent.checkpoint import CheckpointError, load_checkpoint
from agent.follower import Follower, FollowerModelSettings
from agent.run_record import choose_device
from agent.training import CHECKPOINT_KIND, FollowerTrainingSettings, feature_signature, greedy_trajectories
from envs.features import check_compatible
from envs.tokenizer import Vocabulary
from envs.world import EnvSettings, NavigationWorld

logger = logging.getLogger(__name__)


def load_follower(
    checkpoint: str | os.PathLike[str],
    data_dir: str | None = None,
    features: str | None = None,
    device: str = "auto",
    force_features: bool = False,
) -> tuple[Follower, NavigationWorld, FollowerTrainingSettings]:
    """Rebuild a follower and a world for it from a checkpoint.

    The world reads `features` (default: the store the model was trained on) and uses the
    checkpoint's own vocabulary. A store whose dimension, encoder or weights differ from
    the training features raises FeatureMismatchError unless `force_features`.
    """
    state = load_checkpoint(checkpoint, CHECKPOINT_KIND)
    training = FollowerTrainingSettings(**state["training_settings"])
    model_settings = FollowerModelSettings(**state["model_settings"])
    vocabulary = Vocabulary(state["vocabulary"][4:])
    if vocabulary.tokens != state["vocabulary"]:
        raise CheckpointError(f"{checkpoint}: its vocabulary does not start with the special tokens")

    feature_source = features if features is not None else training.features
    world = NavigationWorld.from_settings(
        EnvSettings(
            data_dir=data_dir if data_dir is not None else training.data_dir,
            features=feature_source,
            feature_dim=state["features"]["dim"],
            vocabulary=None,
            max_instruction_length=training.max_instruction_length,
            angle_feature_size=training.angle_feature_size,
        ),
        vocabulary=vocabulary,
    )
    check_compatible(state["features"], feature_signature(world), force=force_features)

    model = Follower(len(vocabulary), world.features.dim, training.angle_feature_size, model_settings)
    model.load_state_dict(state["model"])
    model.to(choose_device(device)).eval()
    logger.info("loaded follower from %s (iteration %d)", Path(checkpoint), state["iteration"])
    return model, world, training


def follow_split(
    model: Follower, world: NavigationWorld, training: FollowerTrainingSettings, split: str
) -> dict[str, list]:
    """Run the follower greedily on every episode of `split`; return trajectories by instr_id."""
    instr_ids = [episode.instr_id for episode in world.split(split)]
    return greedy_trajectories(model, world, split, instr_ids, training)
