"""Convolutional front end of BEST-RQ: 4x time subsampling of filterbanks.

(B, T, n_mels) --Conv2d(1->128, k3, s2)--LayerNorm--LeakyReLU-->
               --Conv2d(128->32, k3, s2)--LayerNorm--LeakyReLU--> (B, T/4, 32 * n_mels/4)
               --Linear--> (B, T/4, d_model)

With 80 mel bins the flattened size is 32 x 20 = 640. Padded frames are zeroed
before each convolution, so a sequence gives the same output alone or padded.
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn

from .padding import zero_padded


def subsampled_padding_mask(mask: Optional[torch.Tensor], steps: int = 1) -> Optional[torch.Tensor]:
    """Padding mask after ``steps`` stride-2 convolutions: length L -> ceil(L / 2) each time."""
    if mask is None:
        return None
    lengths = (~mask).sum(dim=1)
    T = mask.shape[1]
    for _ in range(steps):
        lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        T = (T + 1) // 2
    return torch.arange(T, device=mask.device).unsqueeze(0) >= lengths.unsqueeze(1)


class ConvBlock2d(nn.Module):
    """Conv2d (stride 2 in time and frequency) + channel LayerNorm + LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(out_channels)
        self.act = nn.LeakyReLU()

    def forward(self, x):  # (B, C, T, F) -> (B, C', T/2, F/2)
        x = self.conv(x).permute(0, 2, 3, 1)  # channel-last for the norm
        return self.act(self.norm(x)).permute(0, 3, 1, 2)


class ConvFrontEnd(nn.Module):
    """Filterbanks (B, T, n_mels) -> (B, ceil(T/4), d_model) and the subsampled mask."""

    def __init__(self, n_mels: int = 80, d_model: int = 576, channels: Tuple[int, int] = (128, 32), dropout: float = 0.0):
        super().__init__()
        self.block1 = ConvBlock2d(1, channels[0])
        self.block2 = ConvBlock2d(channels[0], channels[1])
        freq = ((n_mels + 1) // 2 + 1) // 2
        self.proj = nn.Linear(channels[1] * freq, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
        """feats: (B, T, n_mels); padding_mask: (B, T) -> (B, T', d_model), mask (B, T')."""
        x = zero_padded(feats, padding_mask).unsqueeze(1)  # (B, 1, T, F)
        mask1 = subsampled_padding_mask(padding_mask, 1)
        x = self.block1(x)
        if mask1 is not None:
            x = x.masked_fill(mask1[:, None, :, None], 0.0)
        mask2 = subsampled_padding_mask(padding_mask, 2)
        x = self.block2(x)  # (B, C, T', F')
        B, C, T, F = x.shape
        x = self.proj(x.permute(0, 2, 1, 3).reshape(B, T, C * F))
        return zero_padded(self.dropout(x), mask2), mask2
