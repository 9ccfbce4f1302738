"""PoM, the Polynomial Mixer (Picard et al.; Feillet et al. for speech), linear in T.

With k = degree and e = expansion, one projection W_p: d_model -> k*e*d_model
is split in k chunks whose GELUs are multiplied cumulatively:

    h_i(x_t) = prod_{j <= i} gelu(W_p x_t)_j        i = 1..k
    h_t      = [h_1, ..., h_k]                      (k*e*d_model)
    H        = mean_t h_t                           valid frames only
    y_t      = W_o(sigmoid(W_s x_t) * H)

``causal=True`` replaces H by the running mean H_t over the valid frames <= t
(cumsum; still padding-exact).

``nhead`` splits the channels in nhead groups: W_p and W_s become
block-diagonal (group g maps its d_model/nhead channels to its own
k*e*d_model/nhead, chunked in k within the group) and W_o stays dense, so
groups only meet in W_o. nhead=1 is Picard's dense PoM; the public speech
wrapper uses two halves (its num_heads argument is otherwise unused), i.e.
nhead=2. Grouping divides the W_p and W_s parameters by nhead.

Unlike the public speech wrapper, padded frames are excluded from the mean
(there they were zeroed but still averaged, through the projection bias), and
there is no LayerNorm after W_o (REFERENCE.md formula).
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..padding import masked_mean, zero_padded
from .block_linear import BlockLinear


class PolynomialMixer(nn.Module):
    """PoM: x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model).

    Options: ``degree`` k (3), ``expansion`` e (2), ``causal`` (running mean, False).
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dropout: float = 0.0,
        degree: int = 3,
        expansion: int = 2,
        causal: bool = False,
    ):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        self.nhead, self.degree, self.causal = nhead, degree, causal
        hidden = degree * expansion * d_model
        self.po_proj = BlockLinear(d_model, hidden, nhead)  # W_p
        self.se_proj = BlockLinear(d_model, hidden, nhead)  # W_s
        self.out_proj = nn.Linear(hidden, d_model)  # W_o
        self.dropout = nn.Dropout(dropout)

    def polynomials(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> h (B, T, k*e*d_model): running products of the k GELU chunks per group."""
        h = F.gelu(self.po_proj(x)).unflatten(-1, (self.nhead, self.degree, -1))  # (B, T, G, k, e*d/G)
        return torch.cumprod(h, dim=3).flatten(2)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model), padded frames zero."""
        mask = key_padding_mask
        x = zero_padded(x, mask)
        h = self.polynomials(x)
        if self.causal:
            valid = torch.ones_like(x[..., :1]) if mask is None else (~mask).unsqueeze(-1).to(x.dtype)
            total = torch.cumsum(h.float() * valid, dim=1)  # fp32 sums: bf16 would drift over T
            H = (total / torch.cumsum(valid.float(), dim=1).clamp(min=1)).to(h.dtype)  # (B, T, D)
        else:
            H = masked_mean(h, mask)  # (B, 1, D)
        y = self.out_proj(torch.sigmoid(self.se_proj(x)) * H)
        return self.dropout(zero_padded(y, mask))
