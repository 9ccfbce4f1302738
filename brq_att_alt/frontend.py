"""Convolutional front end of BEST-RQ: 4x time subsampling of filterbanks.

SpeechBrain's ``ConvolutionFrontEnd`` as its BEST-RQ recipe (and the papers' runs) build
it: two blocks of one layer each, then a Linear::

    (B, T, n_mels) --Conv2d(1->128, k3, s2)--LayerNorm(F/2, 128)--LeakyReLU--Dropout-->
                   --Conv2d(128->32, k3, s2)--LayerNorm(F/4, 32)--LeakyReLU--Dropout-->
                   (B, T/4, 32 * n_mels/4) --Linear--Dropout--> (B, T/4, d_model)

With 80 mel bins the flattened size is 32 x 20 = 640. Each LayerNorm normalises a frame
over frequency and channels jointly (SpeechBrain's ``LayerNorm(input_shape=...)``), and
the convolutions pad frequency by reflection, as SpeechBrain's ``Conv2d`` does.

Time padding differs on purpose: SpeechBrain reflects at the edges of the batch tensor, so
in a batch only the longest utterance sees a reflected frame and the others see the
padding's content. Here padded frames are zeroed before each convolution and time is
zero-padded, so a sequence gives the same output alone or padded in any batch.
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .padding import lengths_to_padding_mask, zero_padded


def subsampled_padding_mask(mask: Optional[torch.Tensor], steps: int = 1) -> Optional[torch.Tensor]:
    """Padding mask after ``steps`` stride-2 convolutions: length L -> ceil(L / 2) each time."""
    if mask is None:
        return None
    lengths = (~mask).sum(dim=1)
    T = mask.shape[1]
    for _ in range(steps):
        lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        T = (T + 1) // 2
    return lengths_to_padding_mask(lengths, T)


class ConvBlock2d(nn.Module):
    """Conv2d (stride 2 in time and frequency) + LayerNorm over (frequency, channels)
    + LeakyReLU + Dropout: (B, C, T, F) -> (B, C', ceil(T/2), ceil(F/2)).

    Frequency is padded by reflection (SpeechBrain's Conv2d ``padding_mode="reflect"``),
    time with zeros.
    """

    def __init__(self, in_channels: int, out_channels: int, in_freq: int, kernel_size: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.pad = kernel_size // 2
        if in_freq <= self.pad:
            raise ValueError(f"{in_freq} frequency bins are too few to reflect-pad by {self.pad}: use more mel bins")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=(self.pad, 0))
        self.out_freq = (in_freq - 1) // 2 + 1
        self.norm = nn.LayerNorm((self.out_freq, out_channels))
        self.act = nn.LeakyReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, F) -> (B, C', T/2, F/2)
        return self.forward_tfc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_tfc(self, x: torch.Tensor) -> torch.Tensor:
        """The same block with channels last: x (B, T, F, C) -> (B, ceil(T/2), ceil(F/2), C').

        The layout the LayerNorm over (frequency, channels) wants: the convolution runs in
        channels-last memory format (oneDNN), so its output viewed as (B, T', F', C') is
        contiguous and no tensor is transposed in memory.
        """
        p = self.pad
        if torch.is_grad_enabled():  # frequency reflected: (B, T, F + 2p, C)
            x = torch.cat([x[:, :, 1 : p + 1].flip(2), x, x[:, :, -p - 1 : -1].flip(2)], dim=2)
        else:  # inference: the padded copy written in place, no concatenation
            padded = x.new_empty(x.shape[0], x.shape[1], x.shape[2] + 2 * p, x.shape[3])
            padded[:, :, p:-p] = x
            padded[:, :, :p] = x[:, :, 1 : p + 1].flip(2)
            padded[:, :, -p:] = x[:, :, -p - 1 : -1].flip(2)
            x = padded
        weight = self.conv.weight.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x.permute(0, 3, 1, 2), weight, self.conv.bias, stride=2, padding=(p, 0))
        y = self.norm(y.permute(0, 2, 3, 1))  # (B, T', F', C'): contiguous, normalised over (F', C')
        y = F.leaky_relu(y, self.act.negative_slope, inplace=not torch.is_grad_enabled())
        return self.dropout(y)


class ConvFrontEnd(nn.Module):
    """Filterbanks (B, T, n_mels) -> (B, ceil(T/4), d_model) and the subsampled mask.

    ``dropout`` is applied after each conv block (SpeechBrain's ConvolutionFrontEnd, 0.1 in
    the papers' runs) and after the Linear (TransformerASR's input module).
    """

    def __init__(self, n_mels: int = 80, d_model: int = 576, channels: Tuple[int, int] = (128, 32),
                 dropout: float = 0.0):
        super().__init__()
        self.block1 = ConvBlock2d(1, channels[0], n_mels, dropout=dropout)
        self.block2 = ConvBlock2d(channels[0], channels[1], self.block1.out_freq, dropout=dropout)
        self.proj = nn.Linear(channels[1] * self.block2.out_freq, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
        """feats: (B, T, n_mels); padding_mask: (B, T) -> (B, T', d_model), mask (B, T')."""
        x = zero_padded(feats, padding_mask).unsqueeze(-1)  # (B, T, F, 1): channels last
        mask1 = subsampled_padding_mask(padding_mask, 1)
        x = self.block1.forward_tfc(x)
        if mask1 is not None:
            x = x.masked_fill(mask1[:, :, None, None], 0.0)
        mask2 = subsampled_padding_mask(padding_mask, 2)
        x = self.block2.forward_tfc(x)  # (B, T', F', C)
        B, T, F_, C = x.shape
        # The Linear reads (channel, frequency) pairs in SpeechBrain's order c * F' + f; x is
        # laid out f * C + c: the weight's columns are permuted instead of the activations.
        weight = self.proj.weight.unflatten(1, (C, F_)).transpose(1, 2).reshape(self.proj.out_features, F_ * C)
        x = F.linear(x.reshape(B, T, F_ * C), weight, self.proj.bias)
        return zero_padded(self.dropout(x), mask2), mask2
