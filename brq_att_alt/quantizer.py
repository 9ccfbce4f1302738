"""BEST-RQ random-projection quantizer (Chiu et al. 2022).

Targets are made from stacked, normalised filterbank frames: project with a frozen
xavier-uniform matrix P (input_dim x codebook_dim), L2-normalise, and take the index
of the nearest entry of a frozen, L2-normalised random codebook. P and the codebook
are buffers: drawn once from ``seed``, never trained, saved in every checkpoint.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class RandomProjectionQuantizer(nn.Module):
    """(B, T, input_dim) -> (B, T) long targets in [0, codebook_size)."""

    def __init__(self, input_dim: int = 320, codebook_dim: int = 16, codebook_size: int = 8192, seed: int = 1234):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        bound = (6.0 / (input_dim + codebook_dim)) ** 0.5  # xavier-uniform
        P = (torch.rand(input_dim, codebook_dim, generator=gen, device="cpu") * 2 - 1) * bound
        codebook = F.normalize(torch.randn(codebook_size, codebook_dim, generator=gen, device="cpu"), dim=-1)
        self.register_buffer("P", P)
        self.register_buffer("codebook", codebook)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(x.float() @ self.P, dim=-1)  # (B, T, codebook_dim)
        # |z - c|^2 = 2 - 2 z.c for unit vectors: the nearest is the largest dot product.
        return (z @ self.codebook.t()).argmax(dim=-1)
