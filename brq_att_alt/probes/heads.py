"""Downstream probe heads of the MP3S benchmark (on top of the weighted layer sum).

Every head takes ``(x (B, T, d), lens (B,) relative lengths)``; the name says what it returns:

* ``Frame*`` heads (CTC): ``FrameLinear``, ``FrameMLP``, ``FrameBiLSTM``, ``FrameContextNet``
  -> (B, T, n_outputs) logits, one per frame;
* ``Pooled*`` heads: ``PooledLinear``, ``PooledBiLSTM``: the frame head's features
  averaged over the valid frames -> (B, n_outputs) logits, one per utterance;
* embedding heads (SpeechBrain's lobes, configured): ``XvectorHead``, ``ECAPAHead``
  -> (B, emb_dim) embeddings; the recipes put SpeechBrain's own classifier of each
  (``Xvector.Classifier``, ``ECAPA_TDNN.Classifier``) on top.

The defaults are the sizes MP3S and the papers' runs used (the authors' ``ssl_brq.yaml``
files): the x-vector, ECAPA-TDNN, ContextNet and DNN networks are SpeechBrain's
(``speechbrain.lobes.models``); these classes only configure and wrap them, and the tests
check every probe's parameter count against the reference built from those classes.
"""

from typing import Optional, Sequence

import torch
import torch.nn as nn
from speechbrain.lobes.models.ContextNet import ContextNet
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.lobes.models.VanillaNN import VanillaNN
from speechbrain.lobes.models.Xvector import Xvector

from ..padding import masked_mean, relative_lengths_to_padding_mask, relative_to_absolute_lengths


def mean_over_valid_frames(x: torch.Tensor, lens: Optional[torch.Tensor]) -> torch.Tensor:
    """(B, T, d) + relative lengths (B,) (None: every frame valid) -> (B, d) mean of the valid frames."""
    mask = None if lens is None else relative_lengths_to_padding_mask(lens, x.shape[1])
    return masked_mean(x, mask, dim=1).squeeze(1)


class FrameLinear(nn.Module):
    """Frame-wise linear layer: (B, T, d) -> (B, T, n_outputs).

    The other heads reuse its output layer: ``frames(x, lens)`` gives the features the
    linear layer reads (here ``x`` itself), ``feature_size`` their size. ``bias``: the
    output layer's bias (MP3S's SLURP and IEMOCAP classifiers have none).
    """

    def __init__(self, input_size: int, n_outputs: int, bias: bool = True):
        super().__init__()
        self.out = nn.Linear(input_size, n_outputs, bias=bias)

    def frames(self, x: torch.Tensor, lens: Optional[torch.Tensor]) -> torch.Tensor:
        return x

    def forward(self, x, lens=None):
        return self.out(self.frames(x, lens))


class FrameMLP(FrameLinear):
    """SpeechBrain's ``VanillaNN`` (``num_blocks`` x [Linear(hidden_size) + activation]) + a
    frame-wise linear output: the MP3S Common Voice 'linear' probe, Linear(d -> 1024) +
    Sigmoid + Linear(1024 -> n_outputs). (B, T, d) -> (B, T, n_outputs)."""

    def __init__(self, input_size: int, n_outputs: int, hidden_size: int = 1024, num_blocks: int = 1,
                 activation=nn.Sigmoid):
        super().__init__(hidden_size, n_outputs)
        self.dnn = VanillaNN(input_shape=(None, None, input_size), activation=activation,
                             dnn_blocks=num_blocks, dnn_neurons=hidden_size)

    def frames(self, x, lens):
        return self.dnn(x)


class _BiLSTM(nn.Module):
    """Packed bidirectional LSTM: padding never reaches the backward direction.
    ``dropout`` acts between the layers only (as ``torch.nn.LSTM`` / SpeechBrain's ``LSTM``)."""

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
    """Bidirectional LSTM (+ optional Linear(2 * hidden -> ``projection``)) + frame-wise linear
    output: (B, T, d) -> (B, T, n_outputs).

    MP3S ASR probe: 2 layers of 1024, dropout 0.2 between them, Linear(2048 -> n_outputs);
    no dropout on the LSTM output. ``bias``: the output layer's bias.
    """

    def __init__(self, input_size: int, n_outputs: int, hidden_size: int = 1024,
                 num_layers: int = 2, dropout: float = 0.2, projection: Optional[int] = None,
                 bias: bool = True):
        rnn = _BiLSTM(input_size, hidden_size, num_layers, dropout)
        super().__init__(projection or rnn.output_size, n_outputs, bias=bias)
        self.rnn = rnn
        self.projection = None if projection is None else nn.Linear(rnn.output_size, projection)

    def frames(self, x, lens):
        y = self.rnn(x, lens)
        return y if self.projection is None else self.projection(y)


class FrameContextNet(FrameLinear):
    """SpeechBrain's ContextNet (every stride 1: the encoder frames are already 40 ms) +
    frame-wise linear output: (B, T, d) -> (B, T, n_outputs).

    Defaults: SpeechBrain's ContextNet (21 blocks, channels 10 x 256 + 11 x 512 when
    ``conv_channels`` is None, 5 conv layers per block, kernel 3, output 640), as MP3S.
    """

    def __init__(self, input_size: int, n_outputs: int, out_channels: int = 640,
                 conv_channels: Optional[Sequence[int]] = None, num_blocks: int = 21,
                 num_layers: int = 5, kernel_size: int = 3, inner_dim: int = 12,
                 alpha: float = 1.0, dropout: float = 0.15):
        if conv_channels is not None:
            conv_channels = list(conv_channels)
            if len(conv_channels) != num_blocks:
                raise ValueError(f"conv_channels has {len(conv_channels)} entries for {num_blocks} blocks")
        elif num_blocks != 21:
            raise ValueError(f"conv_channels=None means SpeechBrain's 21 default channels; "
                             f"give conv_channels for {num_blocks} blocks")
        super().__init__(out_channels, n_outputs)
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
        return self.out(mean_over_valid_frames(self.frames(x, lens), lens))


class PooledLinear(_Pooled, FrameLinear):
    """Mean over the valid frames + linear classifier (SLURP / IEMOCAP 'linear' probe): (B, n_outputs)."""


class PooledBiLSTM(_Pooled, FrameBiLSTM):
    """BiLSTM (+ projection), mean over the valid frames, linear classifier (SLURP 'BiLSTM +
    linear': hidden = projection = encoder width, no dropout, no output bias): (B, n_outputs)."""


class XvectorHead(nn.Module):
    """SpeechBrain's x-vector TDNN (LeakyReLU) + statistics pooling -> (B, emb_dim) embedding."""

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
    """SpeechBrain's ECAPA-TDNN -> (B, emb_dim) embedding; defaults: MP3S's channels
    [512, 512, 512, 512, 1536], attention 64, embedding 512 (IEMOCAP: 96)."""

    def __init__(self, input_size: int, emb_dim: int = 512,
                 channels: Sequence[int] = (512, 512, 512, 512, 1536),
                 kernel_sizes: Sequence[int] = (5, 3, 3, 3, 1),
                 dilations: Sequence[int] = (1, 2, 3, 4, 1),
                 attention_channels: int = 64, res2net_scale: int = 8, se_channels: int = 128):
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
