"""The Seq2Seq agent of the R2R paper: model, and episodes run with teacher, sampled or greedy actions.

Anderson et al. 2018, "Vision-and-Language Navigation: Interpreting visually-grounded
navigation instructions in real environments" (CVPR), with the model of the code released
with it (Matterport3D Simulator repository, tasks/R2R). An LSTM encodes the instruction.
At each step an LSTM decoder reads the embedding of the previous action and the feature
of the current view, attends over the instruction, and scores the six egocentric actions
(`envs.egocentric`). Forward is masked out where the view shows no neighbour.

`run_episodes` drives a batch of episodes of an egocentric `R2RVectorEnv` (autoreset
disabled) to their end. Teacher forcing feeds the teacher's actions back; student
forcing samples the next action from the policy. Both train with cross-entropy against
the teacher's action at every visited state. Greedy decoding is for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from agent.models.attention import SoftDotAttention
from agent.models.instruction_encoder import InstructionEncoder
from envs.egocentric import ACTION_COUNT, FORWARD
from envs.r2r_env import R2RVectorEnv

FEEDBACKS = ("teacher", "sample", "argmax")
START_ACTION = ACTION_COUNT
"""Input id of the previous action at the first step, an embedding row of its own."""


@dataclass(frozen=True)
class Seq2SeqModelSettings:
    """Sizes of the Seq2Seq network; defaults are those of the R2R paper's released code."""

    embedding_size: int = 256
    """Word embedding size."""
    action_embedding_size: int = 32
    """Size of the embedding of the previous action."""
    hidden_size: int = 512
    """LSTM hidden size of encoder (both directions together) and decoder."""
    bidirectional: bool = False
    """Use a bidirectional instruction encoder (the released one is unidirectional)."""
    dropout: float = 0.5
    """Dropout on word embeddings, the decoder input (action embedding and view feature) and
    the decoder state before attention."""


class Seq2SeqDecoder(nn.Module):
    """One decoding step: previous action and current view in, logits of the six actions out.

    `feature_size` is the view feature dim plus the angle feature size.
    """

    def __init__(self, feature_size: int, action_embedding_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.action_embedding = nn.Embedding(ACTION_COUNT + 1, action_embedding_size)  # + START_ACTION
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTMCell(action_embedding_size + feature_size, hidden_size)
        self.attention = SoftDotAttention(hidden_size, hidden_size)
        self.to_logits = nn.Linear(hidden_size, ACTION_COUNT)

    def forward(
        self,
        previous_action: torch.Tensor,  # [B] long, START_ACTION at the first step
        view_feature: torch.Tensor,  # [B, F]
        h: torch.Tensor,  # [B, H]
        c: torch.Tensor,  # [B, H]
        context: torch.Tensor,  # [B, L, H]
        context_mask: torch.Tensor,  # [B, L] bool, True on tokens
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (action logits [B, 6], h, c)."""
        inputs = torch.cat([self.action_embedding(previous_action), view_feature], dim=1)
        h, c = self.lstm(self.dropout(inputs), (h, c))
        h_tilde, _ = self.attention(self.dropout(h), context, context_mask)  # [B, H]
        return self.to_logits(h_tilde), h, c


class Seq2Seq(nn.Module):
    """Instruction encoder and attention decoder of the R2R paper's Seq2Seq agent."""

    def __init__(
        self, vocab_size: int, feature_dim: int, angle_feature_size: int, settings: Seq2SeqModelSettings
    ):
        super().__init__()
        self.feature_dim = feature_dim
        self.angle_feature_size = angle_feature_size
        self.encoder = InstructionEncoder(
            vocab_size,
            settings.embedding_size,
            settings.hidden_size,
            settings.bidirectional,
            settings.dropout,
        )
        self.decoder = Seq2SeqDecoder(
            feature_dim + angle_feature_size,
            settings.action_embedding_size,
            settings.hidden_size,
            settings.dropout,
        )


def current_view_features(observation: dict[str, np.ndarray], device: torch.device) -> torch.Tensor:
    """Return the feature of each episode's current view with its angle feature: [B, D + A]."""
    rows = np.arange(len(observation["view_index"]))
    view = observation["view_index"][:, 0]
    features = observation["view_features"][rows, view]  # [B, D]
    angles = observation["view_angles"][rows, view]  # [B, A]
    return torch.from_numpy(np.concatenate([features, angles], axis=1)).to(device)


@dataclass
class Seq2SeqBatchResult:
    """Loss, trajectories and counts of one `run_episodes` call."""

    loss: torch.Tensor | None = None
    trajectories: dict[str, list] = field(default_factory=dict)
    steps: int = 0
    total_reward: float = 0.0


def run_episodes(
    model: Seq2Seq,
    env: R2RVectorEnv,
    observation: dict[str, np.ndarray],
    feedback: str,
    active: np.ndarray,
    max_steps: int = 20,
) -> Seq2SeqBatchResult:
    """Run the episodes just reset in `env` (slots where `active`) to their end.

    feedback "teacher" (teacher forcing) takes the teacher's actions; "sample" (student
    forcing) draws each action from the policy. Both return the imitation loss against
    the teacher's action at every visited state. As in the R2R paper's released code, the
    loss of a step is the mean over the episodes still running, and the losses of the
    steps are summed. "argmax" acts greedily and returns no loss, for evaluation.
    Episodes end at STOP, at the environment's step limit, or after `max_steps` actions.
    """
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback must be one of {FEEDBACKS}, got {feedback!r}")
    if env.action_space_name != "egocentric":
        raise ValueError(
            f"the Seq2Seq agent takes egocentric actions, got an environment with {env.action_space_name!r} "
            "actions; create it with action_space='egocentric'"
        )
    device = next(model.parameters()).device
    stop = env.stop_action
    batch = env.num_envs
    running = active.copy()
    forward_column = torch.arange(ACTION_COUNT, device=device) == FORWARD  # [6]

    tokens = torch.from_numpy(observation["instruction"]).to(device)
    token_mask = torch.from_numpy(observation["instruction_mask"]).to(device).bool()
    context, h, c = model.encoder(tokens, token_mask)
    previous = torch.full((batch,), START_ACTION, dtype=torch.long, device=device)

    loss = torch.zeros((), device=device)
    result = Seq2SeqBatchResult()
    for _ in range(max_steps):
        if not running.any():
            break
        feature = current_view_features(observation, device)
        logits, h, c = model.decoder(previous, feature, h, c, context, token_mask)
        blocked = torch.from_numpy(observation["forward_mask"][:, 0] == 0).to(device)  # [B]
        logits = logits.masked_fill(blocked[:, None] & forward_column[None, :], float("-inf"))

        if feedback != "argmax":
            target = torch.from_numpy(env.teacher_actions()).to(device)
            # torch.tensor copies: `running` changes in place below.
            weights = torch.tensor(running, dtype=torch.float32, device=device)
            losses = nn.functional.cross_entropy(logits, target, reduction="none")
            loss = loss + (losses * weights).sum() / weights.sum()
        if feedback == "teacher":
            chosen = target
        elif feedback == "sample":
            chosen = torch.distributions.Categorical(logits=logits).sample()
        else:
            chosen = logits.argmax(dim=1)

        previous = chosen
        actions = chosen.cpu().numpy()
        observation, reward, terminated, truncated, infos = env.step(np.where(running, actions, stop))
        result.steps += int(running.sum())
        result.total_reward += float(reward[running].sum())
        for slot in np.flatnonzero(running & (terminated | truncated)):
            result.trajectories[env.episodes[slot].instr_id] = infos["trajectory"][slot]
        running &= ~(terminated | truncated)

    # Episodes that reached max_steps before the environment's own limit end here.
    for slot in np.flatnonzero(running):
        result.trajectories[env.episodes[slot].instr_id] = list(env.batch.trajectories[slot])
    if feedback != "argmax":
        result.loss = loss
    return result
