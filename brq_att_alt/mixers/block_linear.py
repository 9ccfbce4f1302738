"""Block-diagonal linear layer, shared by the per-head mixers (SummaryMixing, HyperMixing, PoM)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Initialisations, each the one of the reference module the layer stands for.
INITS = ("linear", "hypermixing", "summarymixing")


class BlockLinear(nn.Module):
    """Block-diagonal linear: ``n_blocks`` independent Linear(in/n, out/n) on channel groups.

    x (..., in_features) -> (..., out_features); group g reads input channels
    [g*in/n, (g+1)*in/n) and writes output channels [g*out/n, (g+1)*out/n).
    Weight (n, in/n, out/n), bias (n, out/n); n_blocks=1 is a plain Linear.

    ``init`` (see ``reset_parameters``): "linear" (nn.Linear's, per block), "hypermixing"
    (SpeechBrain's ``ParallelMLPs``) or "summarymixing" (the SummaryMixing ``ParallelLinear``).
    """

    def __init__(self, in_features: int, out_features: int, n_blocks: int = 1, bias: bool = True,
                 init: str = "linear"):
        super().__init__()
        if in_features % n_blocks or out_features % n_blocks:
            raise ValueError(
                f"in ({in_features}) and out ({out_features}) features must be divisible by n_blocks ({n_blocks})"
            )
        if init not in INITS:
            raise ValueError(f"Unknown BlockLinear init {init!r}; valid: {', '.join(INITS)}")
        self.n_blocks, self.init = n_blocks, init
        self.weight = nn.Parameter(torch.empty(n_blocks, in_features // n_blocks, out_features // n_blocks))
        self.bias = nn.Parameter(torch.empty(n_blocks, out_features // n_blocks)) if bias else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Draw the weight, then the bias, as the reference module of ``self.init`` does.

        - "linear": U(+-1/sqrt(in/n)) for both, nn.Linear's default per block.
        - "hypermixing": SpeechBrain ``ParallelMLPs``: xavier_uniform (gain sqrt(2)) on its
          3-D (n, out/n, in/n) weight, i.e. bound sqrt(2) sqrt(6 / ((out/n)(in/n) + n in/n)),
          and on its 2-D (n, out/n) bias, bound sqrt(2) sqrt(6 / (out/n + n)).
        - "summarymixing": ``ParallelLinear`` of the SummaryMixing code: kaiming_uniform (a=sqrt(5))
          on the 3-D (n, in/n, out/n) weight, bound 1/sqrt((in/n)(out/n)), and on the
          (n, out/n) bias, bound 1/sqrt(out/n).

        The draws are made on tensors of the reference's shapes, so that with the same seed
        the values are the reference's own.
        """
        n, d_in, d_out = self.weight.shape
        if self.init == "linear":
            bound = 1.0 / math.sqrt(d_in)
            nn.init.uniform_(self.weight, -bound, bound)
            if self.bias is not None:
                nn.init.uniform_(self.bias, -bound, bound)
        elif self.init == "hypermixing":
            ref = torch.empty(n, d_out, d_in, device=self.weight.device, dtype=self.weight.dtype)
            self.weight.copy_(nn.init.xavier_uniform_(ref, gain=math.sqrt(2.0)).transpose(1, 2))
            if self.bias is not None:
                nn.init.xavier_uniform_(self.bias, gain=math.sqrt(2.0))
        else:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            if self.bias is not None:
                nn.init.kaiming_uniform_(self.bias, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, d_in, d_out = self.weight.shape
        if n == 1:
            return F.linear(x, self.weight[0].t(), None if self.bias is None else self.bias[0])
        groups = x.reshape(-1, n, d_in).transpose(0, 1)  # (n, frames, d_in), a strided view
        if self.bias is None:
            y = torch.bmm(groups, self.weight)
        else:  # the bias added by the batched product itself (no separate pass)
            y = torch.baddbmm(self.bias.unsqueeze(1), groups, self.weight)  # (n, frames, d_out)
        return y.transpose(0, 1).reshape(*x.shape[:-1], n * d_out)
