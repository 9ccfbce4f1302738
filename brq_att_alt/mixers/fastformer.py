"""Fastformer token mixer: additive attention (Wu et al., 2021), linear in T.

With q_t = W_q x_t, k_t = W_k x_t split in nhead heads of d_h = d_model / nhead:

    alpha_t = softmax_t(w_q . q_t / sqrt(d_h))   per head, padded frames excluded
    g       = sum_t alpha_t q_t                  global query (per head)
    p_t     = k_t * g
    beta_t  = softmax_t(w_k . p_t / sqrt(d_h))   per head, padded frames excluded
    k_g     = sum_t beta_t p_t                   global key (per head)
    y_t     = W_o(k_g * q_t) + q_t               the value shares the query

As in the original Fastformer, ESPnet and the public BEST-RQ code, the score of
head h is a Linear(d_model, nhead) of the whole q_t (resp. p_t): w_q[h] is
d_model-dim. Unlike there it has no bias: a per-head constant cancels in the
softmax over time, so that bias never gets a gradient (2 * nhead parameters
fewer). Init as there: weights N(0, 0.02), biases 0. As there, dropout is
applied to the pooled summaries g and k_g (per head), not to the output.
"""

import math
from typing import Optional

import torch
import torch.nn as nn

from ..padding import masked_softmax, zero_padded


class Fastformer(nn.Module):
    """Additive attention: x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model)."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        self.nhead, self.d_head = nhead, d_model // nhead
        self.q_proj = nn.Linear(d_model, d_model)
        self.q_score = nn.Linear(d_model, nhead, bias=False)
        self.k_proj = nn.Linear(d_model, d_model)
        self.k_score = nn.Linear(d_model, nhead, bias=False)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        for layer in (self.q_proj, self.q_score, self.k_proj, self.k_score, self.out_proj):
            nn.init.normal_(layer.weight, std=0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def pool(self, scores: torch.Tensor, content: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Per-head softmax-weighted sum over valid frames, then dropout:
        scores (B, T, H), content (B, T, D) -> (B, 1, D)."""
        B, T, D = content.shape
        weights = masked_softmax(scores / math.sqrt(self.d_head), mask, dim=1)  # (B, T, H)
        pooled = torch.einsum("bth,bthc->bhc", weights, content.view(B, T, self.nhead, self.d_head))
        return self.dropout(pooled.reshape(B, 1, D))

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model), padded frames zero."""
        mask = key_padding_mask
        x = zero_padded(x, mask)
        q, k = self.q_proj(x), self.k_proj(x)
        g = self.pool(self.q_score(q), q, mask)  # global query (B, 1, D)
        p = k * g
        k_g = self.pool(self.k_score(p), p, mask)  # global key (B, 1, D)
        y = self.out_proj(k_g * q) + q
        return zero_padded(y, mask)
