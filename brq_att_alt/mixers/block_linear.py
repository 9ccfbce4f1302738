"""Block-diagonal linear layer, shared by the per-head mixers (SummaryMixing, HyperMixing, PoM)."""

import math

import torch
import torch.nn as nn


class BlockLinear(nn.Module):
    """Block-diagonal linear: ``n_blocks`` independent Linear(in/n, out/n) on channel groups.

    x (..., in_features) -> (..., out_features); group g reads input channels
    [g*in/n, (g+1)*in/n) and writes output channels [g*out/n, (g+1)*out/n).
    Weight (n, in/n, out/n), bias (n, out/n); n_blocks=1 is a plain Linear.
    """

    def __init__(self, in_features: int, out_features: int, n_blocks: int = 1, bias: bool = True):
        super().__init__()
        if in_features % n_blocks or out_features % n_blocks:
            raise ValueError(
                f"in ({in_features}) and out ({out_features}) features must be divisible by n_blocks ({n_blocks})"
            )
        self.n_blocks = n_blocks
        self.weight = nn.Parameter(torch.empty(n_blocks, in_features // n_blocks, out_features // n_blocks))
        self.bias = nn.Parameter(torch.empty(n_blocks, out_features // n_blocks)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        """nn.Linear's default init, per block: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, d_in, _ = self.weight.shape
        y = torch.einsum("...gi,gio->...go", x.unflatten(-1, (n, d_in)), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.flatten(-2)
