"""Learned softmax-weighted sum of an encoder's hidden states (the MP3S layer mixing).

The frozen encoder gives ``L`` hidden states (front end + every layer); the
downstream probe sees ``sum_l softmax(w)_l * h_l`` where ``w`` (L,) is the only
trainable parameter on the encoder side. The weights start at zero (a uniform average).

MP3S and the papers' runs mix the raw hidden states: SpeechBrain's ``WeightedSSLModel``
(``layernorm=False`` by default) and the authors' ``WeightedEncoderWrapper`` apply no
normalisation, and neither does this module by default. ``layer_norm=True`` (an option,
not the protocol) layer-normalises every hidden state first (no affine parameters).
"""

from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F


class WeightedLayerSum(nn.Module):
    """Softmax-normalised learnable weights over ``num_hidden_states`` hidden states.

    Arguments
    ---------
    num_hidden_states: how many hidden states the encoder returns
        (``PretrainedEncoder.num_hidden_states``).
    layer_norm: layer-normalise each hidden state (last dim) before mixing (default
        False, as MP3S).

    ``forward(hidden)``: a list of ``num_hidden_states`` tensors (B, T, d) or a stacked
    (num_hidden_states, B, T, d) tensor -> (B, T, d).
    The weights start equal (uniform average).
    """

    def __init__(self, num_hidden_states: int, layer_norm: bool = False):
        super().__init__()
        if num_hidden_states < 1:
            raise ValueError(f"num_hidden_states must be >= 1, got {num_hidden_states}")
        self.num_hidden_states = int(num_hidden_states)
        self.layer_norm = bool(layer_norm)
        self.weights = nn.Parameter(torch.zeros(self.num_hidden_states))

    def normalized_weights(self) -> torch.Tensor:
        """The softmax of the raw weights (sums to 1)."""
        return F.softmax(self.weights, dim=0)

    def forward(self, hidden: Union[Sequence[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        stacked = hidden if torch.is_tensor(hidden) else torch.stack(list(hidden), dim=0)
        if stacked.shape[0] != self.num_hidden_states:
            raise ValueError(
                f"WeightedLayerSum expects {self.num_hidden_states} hidden states, got {stacked.shape[0]}"
            )
        if self.layer_norm:
            stacked = F.layer_norm(stacked, stacked.shape[-1:])
        w = self.normalized_weights().to(stacked.dtype)
        return (w.view(-1, *([1] * (stacked.dim() - 1))) * stacked).sum(dim=0)

    def extra_repr(self) -> str:
        return f"num_hidden_states={self.num_hidden_states}, layer_norm={self.layer_norm}"
