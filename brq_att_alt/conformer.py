"""Conformer encoder with a pluggable token mixer.

One layer (Gulati et al. 2020, SpeechBrain's ``ConformerEncoderLayer`` ordering)::

    x = x + 1/2 FFN(x)                          # macaron half
    x = x + Dropout(Mixer(LayerNorm(x), mask))  # MHSA or a linear-complexity substitute
    x = x + ConvModule(x, mask)                 # padding-aware depthwise convolution
    x = x + 1/2 FFN(x)
    x = LayerNorm(x)

Padded frames never reach valid ones: every mixer is padding-exact and the
convolution module zeroes padded frames before its depthwise convolution.
"""

from typing import Callable, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from .mixers import build_mixer
from .padding import zero_padded


class FeedForward(nn.Module):
    """Pre-norm position-wise feed-forward: (B, T, d) -> (B, T, d)."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, activation: Callable[[], nn.Module]):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, d_ffn),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(d_ffn, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class ConvolutionModule(nn.Module):
    """Conformer convolution module: (B, T, d) -> (B, T, d).

    LayerNorm, pointwise conv to 2d + GLU, depthwise conv (``kernel_size``, "same"
    padding), LayerNorm, activation, pointwise linear, dropout. Padded frames are
    zeroed right before the depthwise convolution, so a sequence sees the same zeros
    past its end whether it is alone or padded inside a batch.
    """

    def __init__(self, d_model: int, kernel_size: int, dropout: float, activation: Callable[[], nn.Module]):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.norm = nn.LayerNorm(d_model)
        self.pointwise = nn.Conv1d(d_model, 2 * d_model, 1)
        self.glu = nn.GLU(dim=1)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model)
        self.after = nn.Sequential(
            nn.LayerNorm(d_model), activation(), nn.Linear(d_model, d_model), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        y = self.glu(self.pointwise(self.norm(x).transpose(1, 2)))  # (B, d, T)
        if key_padding_mask is not None:
            y = y.masked_fill(key_padding_mask.unsqueeze(1), 0.0)
        y = self.depthwise(y).transpose(1, 2)  # (B, T, d)
        return self.after(y)


class ConformerLayer(nn.Module):
    """One Conformer block around a token mixer; see the module docstring."""

    def __init__(
        self,
        d_model: int,
        d_ffn: int,
        nhead: int,
        kernel_size: int = 31,
        dropout: float = 0.1,
        mixer: Union[str, Callable[..., nn.Module]] = "mhsa",
        mixer_kwargs: Optional[dict] = None,
        activation: Callable[[], nn.Module] = nn.GELU,
    ):
        super().__init__()
        mixer_kwargs = dict(mixer_kwargs or {})
        self.ffn1 = FeedForward(d_model, d_ffn, dropout, activation)
        self.mixer_norm = nn.LayerNorm(d_model)
        if isinstance(mixer, str):
            self.mixer = build_mixer(mixer, d_model=d_model, nhead=nhead, dropout=dropout, **mixer_kwargs)
        else:  # a factory, e.g. a class, taking the common contract's arguments
            self.mixer = mixer(d_model=d_model, nhead=nhead, dropout=dropout, **mixer_kwargs)
        self.mixer_dropout = nn.Dropout(dropout)
        self.conv = ConvolutionModule(d_model, kernel_size, dropout, activation)
        self.ffn2 = FeedForward(d_model, d_ffn, dropout, activation)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        x = x + self.mixer_dropout(self.mixer(self.mixer_norm(x), key_padding_mask=key_padding_mask))
        x = x + self.conv(x, key_padding_mask)
        x = x + 0.5 * self.ffn2(x)
        return zero_padded(self.norm(x), key_padding_mask)


class ConformerEncoder(nn.Module):
    """A stack of ConformerLayer with a final LayerNorm.

    Arguments
    ---------
    num_layers, d_model, d_ffn, nhead, kernel_size, dropout : as in a Conformer.
    layerdrop : float
        Probability of skipping each layer during training (0 disables it).
    mixer : str or callable
        A registered mixer name (see ``brq_att_alt.mixers.MIXERS``) or a factory
        ``f(d_model=, nhead=, dropout=, **mixer_kwargs) -> nn.Module``.
    mixer_kwargs : dict
        Mixer-specific options, passed on unchanged (an unknown one raises).
    """

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        d_ffn: int,
        nhead: int,
        kernel_size: int = 31,
        dropout: float = 0.1,
        layerdrop: float = 0.0,
        mixer: Union[str, Callable[..., nn.Module]] = "mhsa",
        mixer_kwargs: Optional[dict] = None,
        activation: Callable[[], nn.Module] = nn.GELU,
    ):
        super().__init__()
        if not 0.0 <= layerdrop < 1.0:
            raise ValueError(f"layerdrop must be in [0, 1), got {layerdrop}")
        self.layerdrop = layerdrop
        self.layers = nn.ModuleList(
            ConformerLayer(d_model, d_ffn, nhead, kernel_size, dropout, mixer, mixer_kwargs, activation)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: Optional[torch.Tensor] = None,
        return_hidden: bool = False,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        """x: (B, T, d_model) -> (B, T, d_model).

        With ``return_hidden`` also returns the list of num_layers + 1 hidden states
        (the input, then each layer's output; a dropped layer repeats its input).
        """
        x = zero_padded(x, key_padding_mask)
        hidden = [x]
        for layer in self.layers:
            if not (self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop):
                x = layer(x, key_padding_mask)
            hidden.append(x)
        x = zero_padded(self.norm(x), key_padding_mask)
        return (x, hidden) if return_hidden else x
