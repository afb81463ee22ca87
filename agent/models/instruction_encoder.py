"""LSTM encoder of instruction tokens."""

from __future__ import annotations

import torch
from torch import nn


class InstructionEncoder(nn.Module):
    """Word embeddings and an LSTM over an instruction, giving a context per token.

    Returns the token contexts [B, L, H] (H = hidden size, split over both directions
    when bidirectional) and the decoder's initial hidden and cell state, each [B, H]:
    tanh of a linear map of the final hidden states, and the final cell states.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int = 256,
        hidden_size: int = 512,
        bidirectional: bool = True,
        dropout: float = 0.5,
        padding_idx: int = 0,
    ):
        super().__init__()
        if bidirectional and hidden_size % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden size, got {hidden_size}")
        directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            embedding_size, hidden_size // directions, batch_first=True, bidirectional=bidirectional
        )
        self.to_decoder = nn.Linear(hidden_size, hidden_size)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode token ids [B, L] with mask [B, L] (True on tokens); return (context, h0, c0)."""
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        embedded = self.dropout(self.embedding(tokens))  # [B, L, E]
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        output, (hidden, cell) = self.lstm(packed)
        context, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=tokens.shape[1])
        # hidden, cell: [directions, B, H / directions] -> [B, H]
        final_hidden = torch.cat(list(hidden), dim=1)
        final_cell = torch.cat(list(cell), dim=1)
        h0 = torch.tanh(self.to_decoder(final_hidden))
        return self.dropout(context), h0, final_cell
