"""The EnvDrop speaker's networks (Tan et al. 2019; the speaker of Fried et al. 2018 with panoramic actions).

The encoder reads a path as the sequence of its actions. At step t the input is the
feature of the view the agent moves through, with that view's angle feature (zeros for
STOP). An LSTM runs over these actions. Its output at each step attends over the 36 view
features of the viewpoint where the step is taken, and a second LSTM runs over the
attended vectors. The decoder is a word-level LSTM whose output attends over the encoded steps
and is projected to vocabulary logits.

The layout follows `SpeakerEncoder` and `SpeakerDecoder` in R2R-EnvDrop's model.py,
with one difference: both encoder LSTMs here run on packed sequences, so the backward
direction of a short path starts at its last real step instead of at padding.
"""

from __future__ import annotations

import torch
from torch import nn

from agent.models.attention import SoftDotAttention


def _run_packed(lstm: nn.LSTM, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run a batch-first LSTM over padded inputs [B, T, X]; return outputs [B, T, H], zeros at padding."""
    packed = nn.utils.rnn.pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    output, _ = lstm(packed)
    padded, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=inputs.shape[1])
    return padded


class SpeakerEncoder(nn.Module):
    """Encode a path of panoramic actions into one context vector per step.

    `feature_size` is the view feature dimension plus `angle_feature_size`. Feature dropout
    applies to the visual channels only, never to the angle features.
    """

    def __init__(
        self,
        feature_size: int,
        angle_feature_size: int = 128,
        hidden_size: int = 512,
        bidirectional: bool = True,
        dropout: float = 0.6,
        feature_dropout: float = 0.3,
    ):
        super().__init__()
        if bidirectional and hidden_size % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden size, got {hidden_size}")
        directions = 2 if bidirectional else 1
        self.angle_feature_size = angle_feature_size
        self.hidden_size = hidden_size
        self.dropout = nn.Dropout(dropout)
        self.feature_dropout = nn.Dropout(feature_dropout)
        self.action_lstm = nn.LSTM(
            feature_size, hidden_size // directions, batch_first=True, bidirectional=bidirectional
        )
        self.view_attention = SoftDotAttention(hidden_size, feature_size)
        self.post_lstm = nn.LSTM(
            hidden_size, hidden_size // directions, batch_first=True, bidirectional=bidirectional
        )

    def drop_visual(self, features: torch.Tensor) -> torch.Tensor:
        """Apply feature dropout to the visual part of [..., D + A] features."""
        visual = features[..., : -self.angle_feature_size]
        angles = features[..., -self.angle_feature_size :]
        return torch.cat([self.feature_dropout(visual), angles], dim=-1)

    def forward(
        self,
        action_features: torch.Tensor,  # [B, T, F]: the chosen view per step, zeros at STOP
        view_features: torch.Tensor,  # [B, T, 36, F]: the panorama where each step is taken
        mask: torch.Tensor,  # [B, T] bool, True on real steps
    ) -> torch.Tensor:
        """Return the step contexts [B, T, H], zeros at padded steps."""
        batch, steps, views, size = view_features.shape
        lengths = mask.sum(dim=1).clamp(min=1)

        actions = self.dropout(_run_packed(self.action_lstm, self.drop_visual(action_features), lengths))

        panoramas = self.drop_visual(view_features).reshape(batch * steps, views, size)
        attended, _ = self.view_attention(actions.reshape(batch * steps, self.hidden_size), panoramas)
        attended = self.dropout(attended.reshape(batch, steps, self.hidden_size))

        return self.dropout(_run_packed(self.post_lstm, attended, lengths))


class SpeakerDecoder(nn.Module):
    """Word-level LSTM decoder with soft attention over the encoded path."""

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int = 256,
        hidden_size: int = 512,
        dropout: float = 0.6,
        padding_idx: int = 0,
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=padding_idx)
        self.lstm = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.path_attention = SoftDotAttention(hidden_size, hidden_size)
        self.projection = nn.Linear(hidden_size, vocab_size)

    def initial_state(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the zero (h, c) that decoding starts from, as in EnvDrop's speaker: each [1, B, H]."""
        zeros = torch.zeros(1, batch, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def forward(
        self,
        words: torch.Tensor,  # [B, L] token ids
        context: torch.Tensor,  # [B, T, H] encoded path
        context_mask: torch.Tensor,  # [B, T] bool
        state: tuple[torch.Tensor, torch.Tensor],  # (h, c), each [1, B, H]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Return the next-word logits [B, L, V] after each input word, and the final (h, c)."""
        batch, length = words.shape
        steps = context.shape[1]
        embedded = self.dropout(self.embedding(words))  # [B, L, E]
        output, state = self.lstm(embedded, state)
        output = self.dropout(output)  # [B, L, H]

        # Every word position attends over the same path, so the path is repeated per word.
        queries = output.reshape(batch * length, self.hidden_size)
        repeated = context.unsqueeze(1).expand(batch, length, steps, self.hidden_size)
        repeated_mask = context_mask.unsqueeze(1).expand(batch, length, steps)
        mixed, _ = self.path_attention(
            queries,
            repeated.reshape(batch * length, steps, self.hidden_size),
            repeated_mask.reshape(batch * length, steps),
        )
        logits = self.projection(self.dropout(mixed.reshape(batch, length, self.hidden_size)))
        return logits, state
