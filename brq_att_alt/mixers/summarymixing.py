"""SummaryMixing token mixer (Parcollet et al., 2023), linear in T.

Each frame keeps a local view f(x_t) and receives one summary of the whole
utterance, the mean of s(x_t) over its *valid* frames:

    s_bar = mean_t s(x_t)                      (valid frames only)
    y_t   = c([LN(f(x_t)), LN(s_bar)])         mode "mixing"
    y_t   = c(s_bar)                           mode "lite" (no local branch)

f and s are MLPs (every layer Linear + activation, as SpeechBrain's VanillaNN)
whose linears are block-diagonal over ``nhead`` channel groups (the reference's
per-head ``ParallelLinear``); c is one dense Linear + activation to d_model.

The defaults are the layout the paper's runs had (whettenr/speechbrain branch
``summary-mixing``): local [512] -> 512, summary [1024] -> d_model
(``summary_out_dim=None``), Swish (the Conformer's activation, passed on there).
Initialisation as there: the per-head linears as its ``ParallelLinear``
(kaiming_uniform, a=sqrt(5), on the 3-D weight and on the bias; see
``BlockLinear``), the merge Linear with nn.Linear's weights and a zero bias.

Differences with that code:
- every dimension option is used (there the Conformer forced summary_out_dim
  = d_model and ignored the YAML's summary_hid_dim, which is why the defaults
  here are the effective [1024] -> d_model, giving the paper's 94.1M / 313.7M
  encoders at d_model 632 / 976);
- c always maps to d_model, so ``summary_out_dim`` is free. In "lite" the
  public code returns s_bar itself (summary_out_dim = d_model, no c); here c is
  kept so that any summary_out_dim works; the local_* options are unused in
  "lite" (there is no local branch);
- no dropout (``dropout`` is accepted for the mixer contract and unused), as
  in the branch the paper used; SamsungLabs' later SummaryMixing v1.0 drops
  0.1 of the concatenation.
"""

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import ACTIVATIONS, activation_class
from ..padding import masked_mean, zero_padded
from .block_linear import BlockLinear

MODES = {"mixing": "mixing", "lite": "lite", "SummaryMixing": "mixing", "SummaryMixing-lite": "lite"}


def block_mlp(in_dim: int, dims: Sequence[int], n_blocks: int, act: type) -> nn.Sequential:
    """[BlockLinear -> act] for each size in dims (the last layer is activated too)."""
    layers = []
    for dim in dims:
        layers += [BlockLinear(in_dim, dim, n_blocks, init="summarymixing"), act()]
        in_dim = dim
    return nn.Sequential(*layers)


class SummaryMixing(nn.Module):
    """SummaryMixing: x (B, T, d_model), key_padding_mask (B, T) True = padded -> (B, T, d_model).

    Options: ``local_proj_hid_dim`` / ``summary_hid_dim`` (hidden sizes of f / s,
    one layer per entry), ``local_proj_out_dim`` / ``summary_out_dim`` (their
    output sizes; ``summary_out_dim`` None = d_model), ``activation`` (a name of
    ``brq_att_alt.layers.ACTIVATIONS``), ``mode`` ("mixing" or "lite"; SpeechBrain's
    "SummaryMixing" / "SummaryMixing-lite" also accepted). All sizes must be
    divisible by nhead. The defaults are the paper's effective layout.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dropout: float = 0.0,
        local_proj_hid_dim: Sequence[int] = (512,),
        local_proj_out_dim: int = 512,
        summary_hid_dim: Sequence[int] = (1024,),
        summary_out_dim: Optional[int] = None,
        activation: str = "swish",
        mode: str = "mixing",
    ):
        super().__init__()
        if not isinstance(activation, str):
            raise ValueError(f"activation must be a name ({', '.join(ACTIVATIONS)}), got {activation!r}")
        act = activation_class(activation)
        if mode not in MODES:
            raise ValueError(f"Unknown SummaryMixing mode {mode!r}; valid: {', '.join(MODES)}")
        summary_out_dim = d_model if summary_out_dim is None else summary_out_dim
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
        nn.init.zeros_(self.merge[0].bias)  # as the reference's _init_parameters

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model), padded frames zero."""
        B, T, _ = x.shape
        x = zero_padded(x, key_padding_mask)
        s_bar = masked_mean(self.summary_proj(x), key_padding_mask)  # (B, 1, summary_out_dim)
        if self.mode == "lite":
            y = self.merge(s_bar).repeat(1, T, 1)
        else:
            local = self.local_norm(self.local_proj(x))  # (B, T, local_proj_out_dim)
            # c([LN(f(x_t)), LN(s_bar)]) = act(W_l LN(f(x_t)) + (W_s LN(s_bar) + b)): the summary's
            # half of the merge is the same for every frame, computed once (not T times).
            weight, bias = self.merge[0].weight, self.merge[0].bias
            n_local = local.shape[-1]
            summary = F.linear(self.summary_norm(s_bar), weight[:, n_local:], bias)  # (B, 1, d_model)
            y = torch.baddbmm(summary, local, weight[:, :n_local].t().expand(B, -1, -1))
            act = self.merge[1]
            y = F.silu(y, inplace=True) if isinstance(act, nn.SiLU) and not torch.is_grad_enabled() else act(y)
        return zero_padded(y, key_padding_mask)
