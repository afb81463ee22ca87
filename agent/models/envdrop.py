"""The EnvDrop follower's decoder and critic (Tan et al. 2019, "Learning to Navigate Unseen
Environments: Back Translation with Environmental Dropout").

At each step the decoder embeds the angle feature of the previous action, attends over
the 36 view features with the previous h~, runs an LSTM cell on both, attends over the
instruction, and scores every panoramic candidate by attention between h~ and the
candidate's feature. STOP is a candidate whose feature is all zeros, so its logit is 0.
"""

from __future__ import annotations

import torch
from torch import nn

from agent.models.attention import SoftDotAttention


class EnvDropDecoder(nn.Module):
    """One decoding step of the follower; `feature_size` = view feature dim + angle feature size."""

    def __init__(
        self,
        feature_size: int,
        angle_feature_size: int = 128,
        action_embedding_size: int = 64,
        hidden_size: int = 512,
        dropout: float = 0.5,
        feature_dropout: float = 0.3,
    ):
        super().__init__()
        self.angle_feature_size = angle_feature_size
        self.action_embedding = nn.Sequential(nn.Linear(angle_feature_size, action_embedding_size), nn.Tanh())
        self.dropout = nn.Dropout(dropout)
        self.feature_dropout = nn.Dropout(feature_dropout)
        # The LSTM takes the attended view feature itself, and candidates need only scores.
        self.view_attention = SoftDotAttention(hidden_size, feature_size, mix=False)
        self.lstm = nn.LSTMCell(action_embedding_size + feature_size, hidden_size)
        self.instruction_attention = SoftDotAttention(hidden_size, hidden_size)
        self.candidate_attention = SoftDotAttention(hidden_size, feature_size, mix=False)

    def drop_visual(self, features: torch.Tensor) -> torch.Tensor:
        """Apply feature dropout to the visual part of [..., D + A] features, not to the angles."""
        visual, angles = features[..., : -self.angle_feature_size], features[..., -self.angle_feature_size :]
        return torch.cat([self.feature_dropout(visual), angles], dim=-1)

    def forward(
        self,
        action_angle: torch.Tensor,  # [B, A] angle feature of the previous action
        view_features: torch.Tensor,  # [B, 36, F]
        candidate_features: torch.Tensor,  # [B, K, F], STOP included
        candidate_mask: torch.Tensor,  # [B, K] bool
        h: torch.Tensor,  # [B, H]
        c: torch.Tensor,  # [B, H]
        h_tilde: torch.Tensor,  # [B, H]
        context: torch.Tensor,  # [B, L, H]
        context_mask: torch.Tensor,  # [B, L] bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (candidate logits [B, K], h, c, h~)."""
        action = self.dropout(self.action_embedding(action_angle))  # [B, E]
        views = self.drop_visual(view_features)
        view_input, _ = self.view_attention.attend(self.dropout(h_tilde), views)  # [B, F]

        h, c = self.lstm(torch.cat([action, view_input], dim=1), (h, c))
        h_tilde, _ = self.instruction_attention(self.dropout(h), context, context_mask)

        candidates = self.drop_visual(candidate_features)
        logits = self.candidate_attention.scores(self.dropout(h_tilde), candidates, candidate_mask)
        return logits, h, c, h_tilde


class Critic(nn.Module):
    """State value for A2C from h~."""

    def __init__(self, hidden_size: int = 512, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_size, 1)
        )

    def forward(self, h_tilde: torch.Tensor) -> torch.Tensor:
        return self.net(h_tilde).squeeze(1)
