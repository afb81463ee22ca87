"""Back-translation with environmental dropout (Tan et al. 2019, EnvDrop).

For an augmented batch, one dropout mask over the visual feature channels is drawn per
scan and shared by all views of that scan, so the batch looks like a new house. The
speaker describes each augmented path from these masked features, and the follower then
learns to follow the new instructions with the same masks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from agent.checkpoint import CheckpointError, load_checkpoint
from agent.speaker import Speaker, SpeakerModelSettings, collect_paths, generated_tokens
from agent.speaker_training import CHECKPOINT_KIND as SPEAKER_KIND
from agent.speaker_training import SpeakerTrainingSettings
from envs.episodes import Episode, Split
from envs.features import check_compatible
from envs.r2r_env import R2RVectorEnv
from envs.tokenizer import SPECIAL_TOKENS, Vocabulary
from envs.world import NavigationWorld

logger = logging.getLogger(__name__)

LIVE_SPLIT = "augmented_back_translated"


class BackTranslator:
    """A trained speaker that writes instructions for augmented paths seen through a dropout mask."""

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        world: NavigationWorld,
        device: torch.device,
        sampling: bool = False,
        force_features: bool = False,
    ):
        state = load_checkpoint(checkpoint, SPEAKER_KIND)
        training = SpeakerTrainingSettings(**state["training_settings"])
        self.vocabulary = Vocabulary(state["vocabulary"][len(SPECIAL_TOKENS) :])
        if self.vocabulary.tokens != state["vocabulary"]:
            raise CheckpointError(f"{checkpoint}: its vocabulary does not start with the special tokens")
        signature = {"dim": world.features.dim, "encoder": world.features.metadata.get("encoder")}
        signature["pretrained"] = world.features.metadata.get("pretrained")
        check_compatible(state["features"], signature, force=force_features)
        self.model = Speaker(
            len(self.vocabulary),
            world.features.dim,
            training.angle_feature_size,
            SpeakerModelSettings(**state["model_settings"]),
        )
        self.model.load_state_dict(state["model"])
        self.model.to(device).eval()
        self.device = device
        self.sampling = sampling
        self.feature_dim = world.features.dim
        self._relabelled = 0
        logger.info("back-translation with the speaker of %s", Path(checkpoint))

    @torch.no_grad()
    def relabel(
        self, env: R2RVectorEnv, observation: dict[str, np.ndarray], visual_mask: torch.Tensor, max_steps: int
    ) -> list[Episode]:
        """Describe the paths of the episodes just reset in `env` through `visual_mask` [B, D].

        Runs the teacher along each path (the episodes end), so reset the environment on
        the returned episodes before the follower uses them.
        """
        active = np.ones(env.num_envs, dtype=bool)
        paths = collect_paths(env, observation, active, self.device, max_steps)
        mask = visual_mask.to(self.device)
        paths.action_features[..., : self.feature_dim] *= mask[:, None, :]
        paths.view_features[..., : self.feature_dim] *= mask[:, None, None, :]
        tokens = self.model.generate(paths, sampling=self.sampling).cpu().tolist()

        relabelled = []
        for episode, ids in zip(paths.episodes, tokens):
            self._relabelled += 1
            instruction = " ".join(generated_tokens(self.vocabulary, ids))
            relabelled.append(replace(episode, instr_id=f"bt{self._relabelled}", instruction=instruction))
        return relabelled


def install_live_split(world: NavigationWorld, episodes: list[Episode]) -> list[str]:
    """Make the back-translated episodes the world's live split; return their instr_ids."""
    world.add_split(Split(LIVE_SPLIT, episodes))
    return [episode.instr_id for episode in episodes]
