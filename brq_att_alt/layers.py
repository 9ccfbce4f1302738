"""Small building blocks shared by the encoder and the token mixers.

* ``ACTIVATIONS`` / ``activation_class``: activation names usable in YAML and in the
  saved model configuration ("swish" is SpeechBrain's ``Swish`` with beta 1, i.e. SiLU).
* ``sinusoidal_positions``: the fixed sin/cos absolute position encoding of SpeechBrain's
  ``PositionalEncoding`` (Vaswani et al.), computed for any length (no table, no maximum).
"""

import math
from typing import Callable, Union

import torch
import torch.nn as nn

ACTIVATIONS = {
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
}


def activation_class(activation: Union[str, Callable[[], nn.Module]]) -> Callable[[], nn.Module]:
    """The module class of an activation given by name (``ACTIVATIONS``) or as a class/factory."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; valid names: {', '.join(ACTIVATIONS)}")
        return ACTIVATIONS[activation]
    if not callable(activation):
        raise ValueError(f"activation must be a name ({', '.join(ACTIVATIONS)}) or a module class, got {activation!r}")
    return activation


def sinusoidal_positions(T: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(T, dim) absolute encoding: P[t, 2i] = sin(t w_i), P[t, 2i+1] = cos(t w_i), w_i = 10000^(-2i/dim).

    The values of SpeechBrain's ``PositionalEncoding`` (interleaved sin/cos, no scaling),
    for any T; an odd ``dim`` drops the last cosine.
    """
    pos = torch.arange(T, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.stack([torch.sin(pos * freq), torch.cos(pos * freq)], dim=-1).flatten(1)  # interleave
    return pe[:, :dim].to(dtype)
