"""Loading a trained agent from its checkpoint and running it greedily on any split.

`load_agent` reads a checkpoint of any trained kind (the EnvDrop follower or the Seq2Seq
agent) and returns a `TrainedAgent` that runs itself on a split.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from agent.checkpoint import CheckpointError, load_checkpoint, load_model_state
from agent.follower import Follower, FollowerModelSettings
from agent.run_record import choose_device, feature_signature
from agent.seq2seq import Seq2Seq, Seq2SeqModelSettings
from agent.seq2seq_training import CHECKPOINT_KIND as SEQ2SEQ_KIND
from agent.seq2seq_training import Seq2SeqTrainingSettings
from agent.seq2seq_training import greedy_trajectories as seq2seq_greedy_trajectories
from agent.training import CHECKPOINT_KIND as FOLLOWER_KIND
from agent.training import FollowerTrainingSettings, greedy_trajectories
from envs.features import NO_FEATURES, FeatureMismatchError, check_compatible
from envs.tokenizer import Vocabulary
from envs.world import EnvSettings, NavigationWorld

logger = logging.getLogger(__name__)


# Settings, network settings and network of each agent kind that inference can load.
AGENT_CLASSES = {
    FOLLOWER_KIND: (FollowerTrainingSettings, FollowerModelSettings, Follower),
    SEQ2SEQ_KIND: (Seq2SeqTrainingSettings, Seq2SeqModelSettings, Seq2Seq),
}


def _dataset_settings(training: Any) -> dict[str, Any]:
    """Return the dataset fields of a run's settings (R2R or RxR, languages, teacher); older runs lack them."""
    names = ("dataset", "languages", "rxr_dir", "teacher")
    return {name: getattr(training, name) for name in names if hasattr(training, name)}


def _checkpoint_world(
    state: dict[str, Any],
    checkpoint: str | os.PathLike[str],
    training: FollowerTrainingSettings | Seq2SeqTrainingSettings,
    data_dir: str | None,
    features: str | None,
    force_features: bool,
) -> NavigationWorld:
    """Open a world with the checkpoint's vocabulary and features compatible with its training features."""
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
            **_dataset_settings(training),
        ),
        vocabulary=vocabulary,
    )
    check_feature_store(state["features"], world, str(feature_source), checkpoint, force_features)
    return world


def check_feature_store(
    trained: dict[str, Any],
    world: NavigationWorld,
    source: str,
    checkpoint: str | os.PathLike[str],
    force_features: bool,
) -> None:
    """Refuse a feature store that the checkpoint's network cannot use, or should not without force.

    The dimension is part of the network, so a store of another dimension is refused even
    with `force_features`. Zeros (`none`) for a network trained on visual features, or
    another encoder or weights, are refused unless forced.
    """
    if world.features.dim != int(trained["dim"]):
        raise FeatureMismatchError(
            f"{checkpoint} was trained on features of dimension {trained['dim']}, and {source} has "
            f"{world.features.dim}; the dimension is part of the network, so even --force-features "
            f"cannot run it: use features of dimension {trained['dim']}"
        )
    trained_on_vision = trained.get("format") not in (None, NO_FEATURES)
    if trained_on_vision and world.features.metadata.get("format") == NO_FEATURES and not force_features:
        raise FeatureMismatchError(
            f"{checkpoint} was trained on visual features ({trained.get('format')} store), and "
            f"{source!r} gives zeros; pass the training features, or --force-features to run on zeros"
        )
    check_compatible(trained, feature_signature(world), force=force_features)


def _agent_from_state(
    state: dict[str, Any],
    checkpoint: str | os.PathLike[str],
    data_dir: str | None,
    features: str | None,
    device: str,
    force_features: bool,
) -> tuple[nn.Module, NavigationWorld, FollowerTrainingSettings | Seq2SeqTrainingSettings]:
    """Rebuild the network of a follower or Seq2Seq checkpoint, by its "kind", with a world for it."""
    settings_class, model_settings_class, model_class = AGENT_CLASSES[state["kind"]]
    training = settings_class(**state["training_settings"])
    model_settings = model_settings_class(**state["model_settings"])
    world = _checkpoint_world(state, checkpoint, training, data_dir, features, force_features)
    model = model_class(
        len(world.encoder.vocabulary), world.features.dim, training.angle_feature_size, model_settings
    )
    load_model_state(model, state, checkpoint)
    model.to(choose_device(device)).eval()
    logger.info("loaded %s from %s (iteration %d)", state["kind"], Path(checkpoint), state["iteration"])
    return model, world, training


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
    state = load_checkpoint(checkpoint, FOLLOWER_KIND)
    return _agent_from_state(state, checkpoint, data_dir, features, device, force_features)


def follow_split(
    model: Follower, world: NavigationWorld, training: FollowerTrainingSettings, split: str
) -> dict[str, list]:
    """Run the follower greedily on every episode of `split`; return trajectories by instr_id."""
    instr_ids = [episode.instr_id for episode in world.split(split)]
    return greedy_trajectories(model, world, split, instr_ids, training)


def load_seq2seq(
    checkpoint: str | os.PathLike[str],
    data_dir: str | None = None,
    features: str | None = None,
    device: str = "auto",
    force_features: bool = False,
) -> tuple[Seq2Seq, NavigationWorld, Seq2SeqTrainingSettings]:
    """Rebuild a Seq2Seq agent and a world for it from a checkpoint; arguments as for `load_follower`."""
    state = load_checkpoint(checkpoint, SEQ2SEQ_KIND)
    return _agent_from_state(state, checkpoint, data_dir, features, device, force_features)


def seq2seq_split(
    model: Seq2Seq, world: NavigationWorld, training: Seq2SeqTrainingSettings, split: str
) -> dict[str, list]:
    """Run the Seq2Seq agent with greedy decoding on every episode of `split`; return trajectories by instr_id."""
    instr_ids = [episode.instr_id for episode in world.split(split)]
    return seq2seq_greedy_trajectories(model, world, split, instr_ids, training)


@dataclass
class TrainedAgent:
    """A trained agent loaded from a checkpoint, with the world it runs in."""

    kind: str
    """The checkpoint kind: "envdrop-follower" or "seq2seq"."""
    model: nn.Module
    world: NavigationWorld
    training: FollowerTrainingSettings | Seq2SeqTrainingSettings
    _run: Callable[..., dict[str, list]]

    def run_split(self, split: str) -> dict[str, list]:
        """Run the agent greedily on every episode of `split`; return trajectories by instr_id."""
        return self._run(self.model, self.world, self.training, split)


AGENT_RUNNERS = {FOLLOWER_KIND: follow_split, SEQ2SEQ_KIND: seq2seq_split}


def load_agent(
    checkpoint: str | os.PathLike[str],
    data_dir: str | None = None,
    features: str | None = None,
    device: str = "auto",
    force_features: bool = False,
) -> TrainedAgent:
    """Load the agent of any trained kind from a checkpoint, choosing the model by its "kind" entry."""
    state = load_checkpoint(checkpoint)
    kind = state.get("kind")
    if kind not in AGENT_RUNNERS:
        raise CheckpointError(
            f"{checkpoint} is a {kind!r} checkpoint, expected one of {', '.join(map(repr, AGENT_RUNNERS))}"
        )
    model, world, training = _agent_from_state(state, checkpoint, data_dir, features, device, force_features)
    return TrainedAgent(kind, model, world, training, AGENT_RUNNERS[kind])
