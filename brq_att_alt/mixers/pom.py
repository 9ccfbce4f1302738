"""PoM, the Polynomial Mixer (Picard et al.; Feillet et al. for speech), linear in T.

With k = degree and e = expansion, one projection W_p: d_model -> k*e*d_model
is split in k chunks whose GELUs are multiplied cumulatively:

    h_i(x_t) = prod_{j <= i} gelu(W_p x_t)_j        i = 1..k
    h_t      = [h_1, ..., h_k]                      (k*e*d_model)
    H        = mean_t h_t                           valid frames only
    y_t      = LayerNorm(W_o(sigmoid(W_s x_t) * H))

``causal=True`` replaces H by the running mean H_t over the valid frames <= t
(cumsum; still padding-exact).

``groups`` splits the channels in groups: W_p and W_s become block-diagonal
(group g maps its d_model/groups channels to its own k*e*d_model/groups,
chunked in k within the group) and W_o stays dense, so groups only meet in W_o.
The speech PoM code (``PoM`` with ``po_proj_hf/bf``, ``se_proj_hf/bf``) uses two
halves whatever its num_heads, hence the default groups=2; groups=1 is Picard's
dense PoM. Grouping divides the W_p and W_s parameters by groups. ``nhead`` is
accepted for the mixer contract and unused, as num_heads there. As there, the
projections are nn.Linear's (initialisation included), ``output_norm`` adds the
LayerNorm after W_o, and there is no dropout (``dropout`` is unused).

Unlike the speech code, padded frames are excluded from the mean (there they
were zeroed but still averaged, through the projection bias).
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..padding import masked_mean, zero_padded
from .block_linear import BlockLinear


class PolynomialMixer(nn.Module):
    """PoM: x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model).

    Options: ``degree`` k (3), ``expansion`` e (2), ``causal`` (running mean, False),
    ``groups`` (channel groups of W_p and W_s, 2 as the speech PoM code; 1 = dense),
    ``output_norm`` (LayerNorm after W_o, True as the speech PoM code).
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 1,
        dropout: float = 0.0,
        degree: int = 3,
        expansion: int = 2,
        causal: bool = False,
        groups: int = 2,
        output_norm: bool = True,
    ):
        super().__init__()
        if groups < 1 or d_model % groups:
            raise ValueError(f"d_model ({d_model}) must be divisible by groups ({groups}, >= 1)")
        self.groups, self.degree, self.causal = groups, degree, causal
        hidden = degree * expansion * d_model
        self.po_proj = BlockLinear(d_model, hidden, groups)  # W_p
        self.se_proj = BlockLinear(d_model, hidden, groups)  # W_s
        self.out_proj = nn.Linear(hidden, d_model)  # W_o
        self.norm = nn.LayerNorm(d_model) if output_norm else None

    def polynomials(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> h (B, T, k*e*d_model): running products of the k GELU chunks per group."""
        h = F.gelu(self.po_proj(x)).unflatten(-1, (self.groups, self.degree, -1))  # (B, T, G, k, e*d/G)
        if not torch.is_grad_enabled():  # inference: the running products in place
            for i in range(1, self.degree):
                h[..., i, :].mul_(h[..., i - 1, :])
            return h.flatten(2)
        chunks = h.unbind(3)  # explicit products: torch.cumprod's backward is ~20x slower here
        products = [chunks[0]]
        for chunk in chunks[1:]:
            products.append(products[-1] * chunk)
        return torch.stack(products, dim=3).flatten(2)

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
        gate = self.se_proj(x)
        gate = torch.sigmoid(gate) * H if torch.is_grad_enabled() else gate.sigmoid_().mul_(H)
        y = self.out_proj(gate)
        if self.norm is not None:
            y = self.norm(y)
        return zero_padded(y, mask)
