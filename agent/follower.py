"""The EnvDrop follower: model, and episodes run with teacher, sampled or greedy actions.

`Follower` bundles the instruction encoder, the decoder and the critic. `run_episodes`
drives a batch of episodes of an `R2RVectorEnv` (autoreset disabled) to their end and
returns the imitation loss, the reinforcement-learning loss, or both, together with the
trajectories. The losses follow EnvDrop (Tan et al. 2019). Imitation is the
cross-entropy against the teacher's action. Reinforcement learning is A2C with discount
0.9, an entropy bonus and a critic trained on the discounted returns. Its rewards are +-1
for moving closer to or away from the goal, and +-2 for stopping within or beyond the
success distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from agent.models.envdrop import Critic, EnvDropDecoder
from agent.models.instruction_encoder import InstructionEncoder
from envs.r2r_env import R2RVectorEnv

FEEDBACKS = ("teacher", "sample", "argmax")


@dataclass(frozen=True)
class FollowerModelSettings:
    """Sizes of the EnvDrop follower network; defaults are EnvDrop's."""

    embedding_size: int = 256
    """Word embedding size."""
    hidden_size: int = 512
    """LSTM hidden size of encoder (both directions together) and decoder."""
    action_embedding_size: int = 64
    """Size of the embedded angle feature of the previous action."""
    bidirectional: bool = True
    """Use a bidirectional instruction encoder."""
    dropout: float = 0.5
    """Dropout on embeddings and hidden states."""
    feature_dropout: float = 0.3
    """Dropout on the visual part of view and candidate features."""


class Follower(nn.Module):
    """Instruction encoder, decoder and critic of the EnvDrop follower."""

    def __init__(
        self, vocab_size: int, feature_dim: int, angle_feature_size: int, settings: FollowerModelSettings
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
        self.decoder = EnvDropDecoder(
            feature_dim + angle_feature_size,
            angle_feature_size,
            settings.action_embedding_size,
            settings.hidden_size,
            settings.dropout,
            settings.feature_dropout,
        )
        self.critic = Critic(settings.hidden_size, settings.dropout)


@dataclass
class StepInputs:
    """The observation of one step as tensors, with the STOP candidate appended last."""

    view_features: torch.Tensor  # [B, 36, D + A]
    candidate_features: torch.Tensor  # [B, K + 1, D + A], STOP = zeros
    candidate_angles: torch.Tensor  # [B, K + 1, A], STOP = zeros
    candidate_mask: torch.Tensor  # [B, K + 1] bool, STOP always valid


def step_inputs(
    observation: dict[str, np.ndarray], device: torch.device, visual_mask: torch.Tensor | None = None
) -> StepInputs:
    """Turn an observation into tensors; `visual_mask` [B, D] scales the visual channels (environmental dropout)."""
    views = torch.from_numpy(observation["view_features"]).to(device)
    candidates = torch.from_numpy(observation["candidate_features"]).to(device)
    if visual_mask is not None:
        views = views * visual_mask[:, None, :]
        candidates = candidates * visual_mask[:, None, :]
    view_angles = torch.from_numpy(observation["view_angles"]).to(device)
    angles = torch.from_numpy(observation["candidate_angles"]).to(device)
    batch, _, angle_size = angles.shape
    stop_angle = torch.zeros(batch, 1, angle_size, device=device)
    stop_feature = torch.zeros(batch, 1, candidates.shape[2] + angle_size, device=device)
    mask = torch.from_numpy(observation["candidate_mask"]).to(device).bool()
    return StepInputs(
        view_features=torch.cat([views, view_angles], dim=2),
        candidate_features=torch.cat([torch.cat([candidates, angles], dim=2), stop_feature], dim=1),
        candidate_angles=torch.cat([angles, stop_angle], dim=1),
        candidate_mask=torch.cat([mask, torch.ones(batch, 1, dtype=torch.bool, device=device)], dim=1),
    )


@dataclass
class EpisodeBatchResult:
    """Result of `run_episodes`: losses, trajectories, step count and total reward."""

    imitation_loss: torch.Tensor | None = None
    rl_loss: torch.Tensor | None = None
    trajectories: dict[str, list] = field(default_factory=dict)
    steps: int = 0
    total_reward: float = 0.0


def run_episodes(
    model: Follower,
    env: R2RVectorEnv,
    observation: dict[str, np.ndarray],
    feedback: str,
    active: np.ndarray,
    max_steps: int = 35,
    visual_mask: torch.Tensor | None = None,
    gamma: float = 0.9,
    entropy_weight: float = 0.01,
) -> EpisodeBatchResult:
    """Run the episodes just reset in `env` (slots where `active`) to their end.

    With feedback "teacher" the agent follows the teacher and the imitation loss is
    returned. With "sample" it draws actions from the policy and the A2C loss is returned.
    With "argmax" it acts greedily, for evaluation. Losses are sums over steps divided by
    the number of active episodes.
    """
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback must be one of {FEEDBACKS}, got {feedback!r}")
    device = next(model.parameters()).device
    stop = env.stop_action
    batch = env.num_envs
    running = active.copy()
    episodes = max(int(active.sum()), 1)

    tokens = torch.from_numpy(observation["instruction"]).to(device)
    token_mask = torch.from_numpy(observation["instruction_mask"]).to(device).bool()
    context, h, c = model.encoder(tokens, token_mask)
    h_tilde = h
    action_angle = torch.zeros(batch, model.angle_feature_size, device=device)

    imitation_loss = torch.zeros((), device=device)
    log_probs, entropies, values, rewards, masks = [], [], [], [], []
    result = EpisodeBatchResult()
    for _ in range(max_steps):
        if not running.any():
            break
        inputs = step_inputs(observation, device, visual_mask)
        logits, h, c, h_tilde = model.decoder(
            action_angle,
            inputs.view_features,
            inputs.candidate_features,
            inputs.candidate_mask,
            h,
            c,
            h_tilde,
            context,
            token_mask,
        )
        # Logit column K is STOP; the environment's STOP action is max_candidates = K.
        # torch.tensor copies: `running` changes in place below, and autograd keeps this mask.
        running_tensor = torch.tensor(running, device=device)

        if feedback == "teacher":
            target = torch.from_numpy(env.teacher_actions()).to(device)
            losses = nn.functional.cross_entropy(logits, target, reduction="none")
            imitation_loss = imitation_loss + (losses * running_tensor).sum() / episodes
            chosen = target
        elif feedback == "sample":
            distribution = torch.distributions.Categorical(logits=logits)
            chosen = distribution.sample()
            log_probs.append(distribution.log_prob(chosen))
            entropies.append(distribution.entropy())
            values.append(model.critic(h_tilde))
            masks.append(running_tensor.float())
        else:
            chosen = logits.argmax(dim=1)

        actions = chosen.cpu().numpy()
        action_angle = inputs.candidate_angles[torch.arange(batch, device=device), chosen]
        observation, reward, terminated, truncated, infos = env.step(np.where(running, actions, stop))
        result.steps += int(running.sum())
        if feedback == "sample":
            moved = running & (actions != stop)
            shaped = np.where(moved, np.sign(reward), reward)  # EnvDrop: +-1 for moves, +-2 at STOP
            rewards.append(torch.from_numpy(np.where(running, shaped, 0.0)).float().to(device))
        result.total_reward += float(reward[running].sum())
        for slot in np.flatnonzero(running & (terminated | truncated)):
            result.trajectories[env.episodes[slot].instr_id] = infos["trajectory"][slot]
        running &= ~(terminated | truncated)

    if feedback == "teacher":
        result.imitation_loss = imitation_loss
    if feedback == "sample" and log_probs:
        result.rl_loss = _a2c_loss(
            model,
            h_tilde,
            running,
            log_probs,
            entropies,
            values,
            rewards,
            masks,
            gamma,
            entropy_weight,
            episodes,
        )
    return result


def _a2c_loss(
    model: Follower,
    last_h_tilde: torch.Tensor,
    still_running: np.ndarray,
    log_probs: list[torch.Tensor],
    entropies: list[torch.Tensor],
    values: list[torch.Tensor],
    rewards: list[torch.Tensor],
    masks: list[torch.Tensor],
    gamma: float,
    entropy_weight: float,
    episodes: int,
) -> torch.Tensor:
    """Advantage actor-critic loss over one batch of sampled episodes."""
    device = last_h_tilde.device
    # Episodes cut by the step limit bootstrap from the critic's value of their last state.
    running = torch.from_numpy(still_running).float().to(device)
    returns = model.critic(last_h_tilde).detach() * running
    policy_loss = torch.zeros((), device=device)
    value_loss = torch.zeros((), device=device)
    entropy_term = torch.zeros((), device=device)
    for t in reversed(range(len(rewards))):
        returns = rewards[t] + gamma * returns * masks[t]
        advantage = (returns - values[t]).detach()
        policy_loss = policy_loss - (log_probs[t] * advantage * masks[t]).sum()
        value_loss = value_loss + 0.5 * (((returns - values[t]) ** 2) * masks[t]).sum()
        entropy_term = entropy_term + (entropies[t] * masks[t]).sum()
    return (policy_loss + value_loss - entropy_weight * entropy_term) / episodes
