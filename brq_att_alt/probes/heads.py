"""Downstream probe heads of the MP3S benchmark (on top of the weighted layer sum).

Every head takes ``(x (B, T, d), lens (B,) relative lengths)``; the name says what it returns:

* ``Frame*`` heads (CTC): ``FrameLinear``, ``FrameBiLSTM``, ``FrameContextNet`` ->
  (B, T, n_outputs) logits, one per frame;
* ``Pooled*`` heads: ``PooledLinear``, ``PooledBiLSTM``: the frame head's features
  averaged over the valid frames -> (B, n_outputs) logits, one per utterance;
* embedding heads (SpeechBrain's lobes, configured): ``XvectorHead``, ``ECAPAHead``
  -> (B, emb_dim) embeddings; ``EmbeddingClassifier`` turns them into logits.

The x-vector, ECAPA-TDNN and ContextNet networks are SpeechBrain's
(``speechbrain.lobes.models``); these classes only configure and wrap them.
"""

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from speechbrain.lobes.models.ContextNet import ContextNet
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.lobes.models.Xvector import Xvector

from ..padding import masked_mean, relative_lengths_to_padding_mask, relative_to_absolute_lengths


def mean_over_valid_frames(x: torch.Tensor, lens: Optional[torch.Tensor]) -> torch.Tensor:
    """(B, T, d) + relative lengths (B,) (None: every frame valid) -> (B, d) mean of the valid frames."""
    mask = None if lens is None else relative_lengths_to_padding_mask(lens, x.shape[1])
    return masked_mean(x, mask, dim=1).squeeze(1)


class FrameLinear(nn.Module):
    """Frame-wise linear layer (the low-resource ASR 'linear' probe): (B, T, d) -> (B, T, n_outputs).

    The other heads reuse its output layer: ``frames(x, lens)`` gives the features the
    linear layer reads (here ``x`` itself).
    """

    def __init__(self, input_size: int, n_outputs: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(input_size, n_outputs)

    def frames(self, x: torch.Tensor, lens: Optional[torch.Tensor]) -> torch.Tensor:
        return x

    def forward(self, x, lens=None):
        return self.out(self.dropout(self.frames(x, lens)))


class _BiLSTM(nn.Module):
    """Packed bidirectional LSTM: padding never reaches the backward direction."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.output_size = 2 * hidden_size

    def forward(self, x, lens=None):
        if lens is None:
            return self.lstm(x)[0]
        T = x.shape[1]
        abs_lens = relative_to_absolute_lengths(lens, T).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, abs_lens, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0]


class FrameBiLSTM(FrameLinear):
    """BiLSTM (2 layers in MP3S) + frame-wise linear output (ASR probe): (B, T, d) -> (B, T, n_outputs)."""

    def __init__(self, input_size: int, n_outputs: int, hidden_size: int = 1024,
                 num_layers: int = 2, dropout: float = 0.2):
        rnn = _BiLSTM(input_size, hidden_size, num_layers, dropout)
        super().__init__(rnn.output_size, n_outputs, dropout)
        self.rnn = rnn

    def frames(self, x, lens):
        return self.rnn(x, lens)


class FrameContextNet(FrameLinear):
    """SpeechBrain's ContextNet (stride 1: the encoder frames are already 40 ms) + frame-wise
    linear output: (B, T, d) -> (B, T, n_outputs)."""

    def __init__(self, input_size: int, n_outputs: int, out_channels: int = 640,
                 conv_channels: Optional[Sequence[int]] = None, num_blocks: int = 21,
                 num_layers: int = 5, kernel_size: int = 3, inner_dim: int = 12,
                 alpha: float = 1.0, dropout: float = 0.15):
        if conv_channels is None:
            conv_channels = [256] * num_blocks
        conv_channels = list(conv_channels)
        if len(conv_channels) != num_blocks:
            raise ValueError(f"conv_channels has {len(conv_channels)} entries for {num_blocks} blocks")
        super().__init__(out_channels, n_outputs)  # no dropout after ContextNet (it has its own)
        self.contextnet = ContextNet(
            input_shape=(None, None, input_size), out_channels=out_channels,
            conv_channels=conv_channels, kernel_size=kernel_size, strides=[1] * num_blocks,
            num_blocks=num_blocks, num_layers=num_layers, inner_dim=inner_dim, alpha=alpha,
            dropout=dropout,
        )

    def frames(self, x, lens):
        return self.contextnet(x)


class _Pooled:
    """Mixin for a ``Frame*`` head: its features averaged over the valid frames, then its
    output layer: (B, T, d) -> (B, n_outputs)."""

    def forward(self, x, lens=None):
        return self.out(self.dropout(mean_over_valid_frames(self.frames(x, lens), lens)))


class PooledLinear(_Pooled, FrameLinear):
    """Mean over the valid frames + linear classifier (SLURP / IEMOCAP 'linear' probe): (B, n_outputs)."""


class PooledBiLSTM(_Pooled, FrameBiLSTM):
    """BiLSTM, mean over the valid frames, linear classifier (SLURP 'BiLSTM + linear'): (B, n_outputs)."""


class XvectorHead(nn.Module):
    """SpeechBrain's x-vector TDNN + statistics pooling -> (B, emb_dim) embedding."""

    def __init__(self, input_size: int, emb_dim: int = 512,
                 tdnn_channels: Sequence[int] = (512, 512, 512, 512, 1500),
                 tdnn_kernel_sizes: Sequence[int] = (5, 3, 3, 1, 1),
                 tdnn_dilations: Sequence[int] = (1, 2, 3, 1, 1)):
        super().__init__()
        self.xvector = Xvector(
            in_channels=input_size, lin_neurons=emb_dim, tdnn_blocks=len(tdnn_channels),
            tdnn_channels=list(tdnn_channels), tdnn_kernel_sizes=list(tdnn_kernel_sizes),
            tdnn_dilations=list(tdnn_dilations),
        )
        self.emb_dim = emb_dim

    def forward(self, x, lens=None):
        return self.xvector(x, lens).squeeze(1)


class ECAPAHead(nn.Module):
    """SpeechBrain's ECAPA-TDNN -> (B, emb_dim) embedding."""

    def __init__(self, input_size: int, emb_dim: int = 192,
                 channels: Sequence[int] = (1024, 1024, 1024, 1024, 3072),
                 kernel_sizes: Sequence[int] = (5, 3, 3, 3, 1),
                 dilations: Sequence[int] = (1, 2, 3, 4, 1),
                 attention_channels: int = 128, res2net_scale: int = 8, se_channels: int = 128):
        super().__init__()
        self.ecapa = ECAPA_TDNN(
            input_size=input_size, lin_neurons=emb_dim, channels=list(channels),
            kernel_sizes=list(kernel_sizes), dilations=list(dilations),
            attention_channels=attention_channels, res2net_scale=res2net_scale,
            se_channels=se_channels, groups=[1] * len(channels),
        )
        self.emb_dim = emb_dim

    def forward(self, x, lens=None):
        return self.ecapa(x, lens).squeeze(1)


class EmbeddingClassifier(nn.Module):
    """Embeddings -> class logits. ``cosine=True``: scaled cosine to class weights (for AAM-softmax)."""

    def __init__(self, emb_dim: int, n_classes: int, cosine: bool = False):
        super().__init__()
        self.cosine = cosine
        self.weight = nn.Parameter(torch.empty(n_classes, emb_dim))
        nn.init.xavier_uniform_(self.weight)
        self.bias = None if cosine else nn.Parameter(torch.zeros(n_classes))

    def forward(self, emb):
        if self.cosine:
            return F.linear(F.normalize(emb, dim=-1), F.normalize(self.weight, dim=-1))
        return F.linear(emb, self.weight, self.bias)


def repeat(value, n: int) -> list:
    """``[value] * n`` (for YAML: per-block channel lists)."""
    return [value] * int(n)
