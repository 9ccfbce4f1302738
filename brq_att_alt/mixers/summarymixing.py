"""SummaryMixing token mixer (Parcollet et al., 2023), linear in T.

Each frame keeps a local view f(x_t) and receives one summary of the whole
utterance, the mean of s(x_t) over its *valid* frames:

    s_bar = mean_t s(x_t)                      (valid frames only)
    y_t   = c([LN(f(x_t)), LN(s_bar)])         mode "mixing"
    y_t   = c(s_bar)                           mode "lite" (no local branch)

f and s are MLPs (every layer Linear + activation, as SpeechBrain's VanillaNN)
whose linears are block-diagonal over ``nhead`` channel groups (the reference's
per-head ``ParallelLinear``); c is one dense Linear + activation to d_model.

Differences with the public code (SamsungLabs / whettenr SpeechBrain branch):
- every dimension option is used. In the public BEST-RQ Conformer the YAML dims
  never reached the module: it ran with local [512] -> 512, summary [1024] ->
  d_model, Swish (``summary_out_dim=d_model, activation="swish",
  summary_hid_dim=[1024]`` reproduces that layout, and with it the paper's
  94.1M / 313.7M encoders at d_model 632 / 976);
- c always maps to d_model, so ``summary_out_dim`` is free (public: forced to
  d_model). In "lite" the public code returns s_bar itself (summary_out_dim =
  d_model, no c); here c is kept so that any summary_out_dim works;
  the local_* options are unused in "lite" (there is no local branch);
- dropout only on the output (public: 0.1 on the concatenation, hard-coded).
"""

from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..padding import masked_mean, zero_padded
from .block_linear import BlockLinear

ACTIVATIONS = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}
MODES = {"mixing": "mixing", "lite": "lite", "SummaryMixing": "mixing", "SummaryMixing-lite": "lite"}


def block_mlp(in_dim: int, dims: Sequence[int], n_blocks: int, act: type) -> nn.Sequential:
    """[BlockLinear -> act] for each size in dims (the last layer is activated too)."""
    layers = []
    for dim in dims:
        layers += [BlockLinear(in_dim, dim, n_blocks), act()]
        in_dim = dim
    return nn.Sequential(*layers)


class SummaryMixing(nn.Module):
    """SummaryMixing: x (B, T, d_model), key_padding_mask (B, T) True = padded -> (B, T, d_model).

    Options: ``local_proj_hid_dim`` / ``summary_hid_dim`` (hidden sizes of f / s,
    one layer per entry), ``local_proj_out_dim`` / ``summary_out_dim`` (their
    output sizes), ``activation`` (one of ACTIVATIONS), ``mode`` ("mixing" or
    "lite"; SpeechBrain's "SummaryMixing" / "SummaryMixing-lite" also accepted).
    All sizes must be divisible by nhead.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dropout: float = 0.0,
        local_proj_hid_dim: Sequence[int] = (512,),
        local_proj_out_dim: int = 512,
        summary_hid_dim: Sequence[int] = (512,),
        summary_out_dim: int = 512,
        activation: str = "gelu",
        mode: str = "mixing",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if mode not in MODES:
            raise ValueError(f"Unknown SummaryMixing mode {mode!r}; valid: {', '.join(MODES)}")
        act = ACTIVATIONS[activation]
        self.mode = MODES[mode]
        self.summary_proj = block_mlp(d_model, [*summary_hid_dim, summary_out_dim], nhead, act)
        if self.mode == "mixing":
            self.local_proj = block_mlp(d_model, [*local_proj_hid_dim, local_proj_out_dim], nhead, act)
            self.local_norm = nn.LayerNorm(local_proj_out_dim)
            self.summary_norm = nn.LayerNorm(summary_out_dim)
            merge_in = local_proj_out_dim + summary_out_dim
        else:
            merge_in = summary_out_dim
        self.merge = nn.Sequential(nn.Linear(merge_in, d_model), act())
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model), padded frames zero."""
        B, T, _ = x.shape
        x = zero_padded(x, key_padding_mask)
        s_bar = masked_mean(self.summary_proj(x), key_padding_mask)  # (B, 1, summary_out_dim)
        if self.mode == "lite":
            y = self.merge(s_bar).repeat(1, T, 1)
        else:
            local = self.local_norm(self.local_proj(x))  # (B, T, local_proj_out_dim)
            s_bar = self.summary_norm(s_bar).expand(B, T, -1)
            y = self.merge(torch.cat([local, s_bar], dim=-1))
        return self.dropout(zero_padded(y, key_padding_mask))
