"""Soft dot-product attention (Luong et al. 2015), the attention of Seq2Seq and EnvDrop agents."""

from __future__ import annotations

import torch
from torch import nn


class SoftDotAttention(nn.Module):
    """Attend over `context` with a query, then mix the attended vector back into the query.

    The query is projected to the context size, scored by dot product against every
    context vector (masked positions get -inf), and the softmax-weighted context is
    concatenated with the query and projected back: h~ = tanh(W [c; q]).
    """

    def __init__(self, query_size: int, context_size: int, mix: bool = True):
        super().__init__()
        self.linear_in = nn.Linear(query_size, context_size, bias=False)
        # Attention used only for `scores` or `attend` needs no output projection.
        self.linear_out = nn.Linear(query_size + context_size, query_size, bias=False) if mix else None

    def scores(
        self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return attention logits [B, N] of a query [B, Q] over context [B, N, C]; mask [B, N] True = keep."""
        target = self.linear_in(query).unsqueeze(2)  # [B, C, 1]
        logits = torch.bmm(context, target).squeeze(2)  # [B, N]
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        return logits

    def attend(
        self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (attended context [B, C], attention weights [B, N])."""
        weights = torch.softmax(self.scores(query, context, mask), dim=1)  # [B, N]
        attended = torch.bmm(weights.unsqueeze(1), context).squeeze(1)  # [B, C]
        return attended, weights

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (h~ [B, Q], attention weights [B, N])."""
        if self.linear_out is None:
            raise RuntimeError("this attention was built with mix=False: call attend() or scores()")
        attended, weights = self.attend(query, context, mask)
        mixed = torch.tanh(self.linear_out(torch.cat([attended, query], dim=1)))  # [B, Q]
        return mixed, weights
