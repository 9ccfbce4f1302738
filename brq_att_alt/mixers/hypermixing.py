"""HyperMixing token mixer (HyperMixer / HyperConformer, Mai et al.), linear in T.

For head h (channels X_h, d_h = d_model / nhead) a hypernetwork, a token-wise
MLP d_h -> d_h -> k (k = hypernet_size / nhead), reads X + P (P: sinusoidal
absolute positions) and generates one row per frame of W1 and W2 (T x k). The
head output is a token-mixing MLP whose weights depend on the input:

    Y_h = W2 gelu(W1^T X_h)        (T, k) @ gelu((k, T) @ (T, d_h)) -> (T, d_h)

W1^T X_h is a (k, d_h) summary over time, so time and memory are O(T k d_h):
no T x T tensor. Heads are concatenated, then LayerNorm.

Parameters are laid out as speechbrain.nnet.hypermixing.HyperMixing with
``fix_tm_hidden_size=False`` (what SpeechBrain's Conformer builds), so counts
compare: per generator nhead MLPs d_h -> d_h -> k, two generators unless tied,
LayerNorm(d_model). As there, P is the standard d_model-dim sin/cos encoding
added to X and split with it over the heads. Unlike there:
- P is computed on the fly for any T (no max_length, no buffer);
- no dummy (B, T, T) "attention weights" are built;
- padded frames are zeroed in X and in the rows of W1 and W2, so they add
  nothing to W1^T X, and the output on padded frames is set to zero.
"""

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..padding import zero_padded
from .block_linear import BlockLinear


def sinusoidal_positions(T: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(T, dim) absolute encoding: P[t, 2i] = sin(t w_i), P[t, 2i+1] = cos(t w_i), w_i = 10000^(-2i/dim)."""
    pos = torch.arange(T, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.stack([torch.sin(pos * freq), torch.cos(pos * freq)], dim=-1).flatten(1)  # interleave
    return pe[:, :dim].to(dtype)


class HyperNetwork(nn.Module):
    """nhead parallel token-wise MLPs: x (B, T, d_model) -> (B, T, nhead, k)."""

    def __init__(self, d_model: int, nhead: int, hypernet_size: int):
        super().__init__()
        self.nhead = nhead
        self.fc1 = BlockLinear(d_model, d_model, nhead)
        self.fc2 = BlockLinear(d_model, hypernet_size, nhead)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x))).unflatten(-1, (self.nhead, -1))


class HyperMixing(nn.Module):
    """Multi-head HyperMixing: x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model).

    Options: ``hypernet_size`` (total width k * nhead of the generated token-mixing
    MLPs; default 2048 = d_ffn, which SpeechBrain's Conformer passes as
    hypernet_size in the public BEST-RQ HyperConformer config), ``tied`` (W2 = W1,
    one generator).
    """

    def __init__(
        self, d_model: int, nhead: int, dropout: float = 0.0, hypernet_size: int = 2048, tied: bool = False
    ):
        super().__init__()
        if d_model % nhead or hypernet_size % nhead:
            raise ValueError(
                f"d_model ({d_model}) and hypernet_size ({hypernet_size}) must be divisible by nhead ({nhead})"
            )
        self.d_model, self.nhead = d_model, nhead
        self.w1_gen = HyperNetwork(d_model, nhead, hypernet_size)
        self.w2_gen = None if tied else HyperNetwork(d_model, nhead, hypernet_size)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model), padded frames zero."""
        B, T, _ = x.shape
        mask = key_padding_mask
        x = zero_padded(x, mask)
        hyp_in = x + sinusoidal_positions(T, self.d_model, x.device, x.dtype)
        w1 = zero_padded(self.w1_gen(hyp_in), mask)  # (B, T, H, k)
        w2 = w1 if self.w2_gen is None else zero_padded(self.w2_gen(hyp_in), mask)
        xh = x.view(B, T, self.nhead, -1)  # (B, T, H, d_h)
        hidden = F.gelu(torch.einsum("bthk,bthc->bhkc", w1, xh))  # W1^T X_h: (B, H, k, d_h)
        y = torch.einsum("bthk,bhkc->bthc", w2, hidden).reshape(B, T, self.d_model)
        return self.dropout(zero_padded(self.norm(y), mask))
