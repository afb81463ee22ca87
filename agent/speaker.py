"""The EnvDrop speaker: paths in, instructions out.

`collect_paths` runs the shortest-path teacher through a batch of episodes and records
what the speaker reads at every step. That is the panorama (36 view features with their
angle features) and the action taken: the feature and angle feature of the view the agent
moves through, zeros for STOP. The last step of a path is its STOP at the goal, as in
R2R-EnvDrop's `Speaker.from_shortest_path`. `Speaker` encodes these paths and decodes
instructions, by teacher forcing for training and greedily or by sampling for generation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn

from agent.models.speaker import SpeakerDecoder, SpeakerEncoder
from envs.episodes import Episode
from envs.r2r_env import EnvUsageError, R2RVectorEnv
from envs.tokenizer import Vocabulary

logger = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 35
"""Actions recorded per path at most: R2R's action limit in EnvDrop."""

# Tokens that a generated instruction never contains. EnvDrop's speaker forbids <unk>;
# <pad> and <bos> are never a next word either.
FORBIDDEN_TOKENS = (Vocabulary.pad_id, Vocabulary.bos_id, Vocabulary.unk_id)


@dataclass(frozen=True)
class SpeakerModelSettings:
    """Sizes of the EnvDrop speaker network; defaults are R2R-EnvDrop's speaker run (run/speaker.bash)."""

    embedding_size: int = 256
    """Word embedding size (EnvDrop --wemb)."""
    hidden_size: int = 512
    """LSTM hidden size of encoder (both directions together) and decoder (EnvDrop --rnnDim)."""
    bidirectional: bool = True
    """Use bidirectional encoder LSTMs (EnvDrop --bidir)."""
    dropout: float = 0.6
    """Dropout on embeddings, hidden states and attended vectors (0.6 in run/speaker.bash; 0.5 is EnvDrop's default)."""
    feature_dropout: float = 0.3
    """Dropout on the visual part of view and action features (EnvDrop --featdropout)."""


@dataclass
class PathBatch:
    """Speaker inputs for a batch of paths, padded to the longest path."""

    action_features: torch.Tensor  # [B, T, D + A]: the view moved through, zeros at STOP and padding
    view_features: torch.Tensor  # [B, T, 36, D + A]: the panorama at each step
    mask: torch.Tensor  # [B, T] bool, True on real steps
    instructions: torch.Tensor  # [B, L] token ids of the episodes' instructions
    episodes: list[Episode]

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def lengths(self) -> torch.Tensor:
        """Steps per path [B], the final STOP included."""
        return self.mask.sum(dim=1)

    def select(self, rows: Sequence[int]) -> PathBatch:
        """Return the batch of the given rows, in the given order."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.mask.device)
        return PathBatch(
            action_features=self.action_features[index],
            view_features=self.view_features[index],
            mask=self.mask[index],
            instructions=self.instructions[index],
            episodes=[self.episodes[row] for row in rows],
        )


def collect_paths(
    env: R2RVectorEnv,
    observation: dict[str, np.ndarray],
    active: np.ndarray,
    device: torch.device | str = "cpu",
    max_steps: int = DEFAULT_MAX_STEPS,
) -> PathBatch:
    """Run the teacher through the episodes just reset in `env` (slots where `active`); return their paths.

    `env` must take panoramic actions and have `autoreset_mode` DISABLED, so that an
    episode stays ended after its STOP. Rows of the batch follow the active slots in slot
    order. A path still running after `max_steps` actions is cut there and logged.
    """
    if env.autoreset_mode != AutoresetMode.DISABLED:
        raise EnvUsageError(
            f"collect_paths expected an R2RVectorEnv with autoreset_mode DISABLED, got {env.autoreset_mode}"
        )
    action_space = getattr(env, "action_space_name", "panoramic")
    if action_space != "panoramic":
        raise EnvUsageError(
            f"collect_paths expected an R2RVectorEnv with panoramic actions, got {action_space!r}"
        )
    slots = np.flatnonzero(active)
    if len(slots) == 0:
        raise ValueError("collect_paths expected at least one active slot, got none")
    stop = env.stop_action
    running = np.asarray(active, dtype=bool).copy()
    instructions = observation["instruction"][slots]
    panoramas, actions, masks = [], [], []

    for _ in range(max_steps):
        if not running.any():
            break
        teacher = env.teacher_actions()
        moving = np.flatnonzero(running & (teacher != stop))

        panorama = np.concatenate([observation["view_features"], observation["view_angles"]], axis=2)
        size = panorama.shape[2]
        chosen = np.zeros((env.num_envs, size), dtype=np.float32)
        chosen[moving] = np.concatenate(
            [
                observation["candidate_features"][moving, teacher[moving]],
                observation["candidate_angles"][moving, teacher[moving]],
            ],
            axis=1,
        )
        panoramas.append(panorama[slots])
        actions.append(chosen[slots])
        masks.append(running[slots].copy())

        observation, _, terminated, truncated, _ = env.step(np.where(running, teacher, stop))
        running &= ~(terminated | truncated)

    if running.any():
        logger.warning(
            "%d paths were cut after %d actions before reaching their goal: %s",
            int(running.sum()),
            max_steps,
            ", ".join(env.episodes[slot].instr_id for slot in np.flatnonzero(running)),
        )
    return PathBatch(
        action_features=torch.from_numpy(np.stack(actions, axis=1)).to(device),
        view_features=torch.from_numpy(np.stack(panoramas, axis=1)).to(device),
        mask=torch.from_numpy(np.stack(masks, axis=1)).to(device),
        instructions=torch.from_numpy(np.ascontiguousarray(instructions)).to(device),
        episodes=[env.episodes[slot] for slot in slots],
    )


def path_batches(
    env: R2RVectorEnv,
    split: str,
    instr_ids: Sequence[str],
    device: torch.device | str = "cpu",
    max_steps: int = DEFAULT_MAX_STEPS,
) -> Iterator[PathBatch]:
    """Yield the paths of the named episodes of `split`, `env.num_envs` at a time, in the given order."""
    batch_size = env.num_envs
    for start in range(0, len(instr_ids), batch_size):
        chunk = list(instr_ids[start : start + batch_size])
        active = np.zeros(batch_size, dtype=bool)
        active[: len(chunk)] = True
        observation, _ = env.reset(options={"split": split, "instr_ids": chunk, "reset_mask": active})
        yield collect_paths(env, observation, active, device, max_steps)


class Speaker(nn.Module):
    """The EnvDrop speaker: a path encoder and an instruction decoder."""

    def __init__(
        self, vocab_size: int, feature_dim: int, angle_feature_size: int, settings: SpeakerModelSettings
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.encoder = SpeakerEncoder(
            feature_dim + angle_feature_size,
            angle_feature_size,
            settings.hidden_size,
            settings.bidirectional,
            settings.dropout,
            settings.feature_dropout,
        )
        self.decoder = SpeakerDecoder(
            vocab_size, settings.embedding_size, settings.hidden_size, settings.dropout, Vocabulary.pad_id
        )

    def encode(self, paths: PathBatch) -> torch.Tensor:
        """Return the step contexts [B, T, H] of a batch of paths."""
        return self.encoder(paths.action_features, paths.view_features, paths.mask)

    def loss(
        self,
        paths: PathBatch,
        instructions: torch.Tensor | None = None,
        reduction: str = "mean",
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return the teacher-forcing cross-entropy of the instructions given their paths.

        `instructions` [B, L] default to the paths' own. Each word after <bos>, <eos>
        included, is predicted from the words before it; padding is ignored. "mean" averages
        over the predicted tokens of the batch, "sum" adds them. A `context` from `encode`
        saves encoding the paths again.
        """
        if instructions is None:
            instructions = paths.instructions
        # Drop the columns that are padding in every row.
        length = int((instructions != Vocabulary.pad_id).sum(dim=1).max())
        instructions = instructions[:, :length]
        if context is None:
            context = self.encode(paths)
        state = self.decoder.initial_state(len(instructions), context.device)
        logits, _ = self.decoder(instructions[:, :-1], context, paths.mask, state)  # [B, L - 1, V]
        return nn.functional.cross_entropy(
            logits.reshape(-1, self.vocab_size),
            instructions[:, 1:].reshape(-1),
            ignore_index=Vocabulary.pad_id,
            reduction=reduction,
        )

    @torch.no_grad()
    def generate(
        self,
        paths: PathBatch,
        max_length: int = 120,
        sampling: bool = False,
        generator: torch.Generator | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode one instruction per path; return token ids [B, <= max_length], without <bos>.

        Greedy (argmax) unless `sampling`, which draws each word from the softmax with
        `generator`. Each row ends with <eos> followed by <pad>, or contains `max_length`
        words and no <eos>. Decoding stops early once every row has its <eos>. <pad>,
        <bos> and <unk> are never generated.
        """
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        if context is None:
            context = self.encode(paths)
        batch = len(paths)
        device = context.device
        state = self.decoder.initial_state(batch, device)
        word = torch.full((batch, 1), Vocabulary.bos_id, dtype=torch.long, device=device)
        ended = torch.zeros(batch, dtype=torch.bool, device=device)
        words = []
        for _ in range(max_length):
            logits, state = self.decoder(word, context, paths.mask, state)
            logits = logits[:, 0]  # [B, V]
            logits[:, list(FORBIDDEN_TOKENS)] = float("-inf")
            if sampling:
                probabilities = torch.softmax(logits, dim=1)
                chosen = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
            else:
                chosen = logits.argmax(dim=1)
            chosen = chosen.masked_fill(ended, Vocabulary.pad_id)
            words.append(chosen)
            ended |= chosen == Vocabulary.eos_id
            if ended.all():
                break
            word = chosen.unsqueeze(1)
        return torch.stack(words, dim=1)


def generated_tokens(vocabulary: Vocabulary, ids: Sequence[int]) -> list[str]:
    """Return the words of a generated id sequence, up to its first <eos>."""
    tokens = []
    for token_id in ids:
        if token_id == Vocabulary.eos_id:
            break
        if token_id != Vocabulary.pad_id:
            tokens.append(vocabulary.tokens[token_id])
    return tokens
