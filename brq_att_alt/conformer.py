"""Conformer encoder with a pluggable token mixer.

One layer (Gulati et al. 2020, SpeechBrain's ``ConformerEncoderLayer`` ordering)::

    x = x + 1/2 FFN(x)                          # macaron half
    x = x + Mixer(LayerNorm(x), mask)           # MHSA or a linear-complexity substitute
    x = x + ConvModule(x, mask)                 # padding-aware depthwise convolution
    x = x + 1/2 FFN(x)
    x = LayerNorm(x)

As in SpeechBrain's Conformer (and the authors' branches of it), the mixer branch
has no dropout of its own: what a mixer drops is inside it (MHSA its attention
weights, Fastformer its pooled summaries, the others nothing).

The encoder adds the fixed sinusoidal absolute position encoding to its input
(``input_pos_enc``) for the mixers that have no position information of their
own, as SpeechBrain's ``TransformerASR.encode`` did in the papers' runs.

Padded frames never reach valid ones: every mixer is padding-exact and the
convolution module zeroes padded frames before its depthwise convolution.
"""

from typing import Callable, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import activation_class, sinusoidal_positions
from .mixers import build_mixer
from .padding import zero_padded

POSITION_ENCODINGS = ("auto", "sine", "none")


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
        norm, up, act, drop1, down, drop2 = self.net
        h = up(norm(x))
        if isinstance(act, nn.SiLU) and not torch.is_grad_enabled():
            h = F.silu(h, inplace=True)  # inference: no copy of the (B, T, d_ffn) activation
        else:
            h = act(h)
        return drop2(down(drop1(h)))


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
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model)
        self.after = nn.Sequential(
            nn.LayerNorm(d_model), activation(), nn.Linear(d_model, d_model), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        # Computed with time before channels throughout: the pointwise Conv1d is the Linear it
        # equals, and the depthwise convolution runs as a (kernel_size x 1) Conv2d in channels-last
        # memory format, for which (B, T, d) is already the right layout (no transposed copies).
        B, T, d = x.shape
        y = F.glu(F.linear(self.norm(x), self.pointwise.weight.squeeze(-1), self.pointwise.bias), dim=-1)
        if key_padding_mask is not None:
            y = y.masked_fill(key_padding_mask.unsqueeze(-1), 0.0)
        y = y.contiguous().view(B, T, 1, d).permute(0, 3, 1, 2)  # (B, d, T, 1), channels last
        weight = self.depthwise.weight.unsqueeze(-1).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(y, weight, self.depthwise.bias, padding=(self.depthwise.padding[0], 0), groups=d)
        return self.after(y.permute(0, 2, 3, 1).reshape(B, T, d))


class ConformerLayer(nn.Module):
    """One Conformer block around a token mixer; see the module docstring.

    ``activation``: a name of ``brq_att_alt.layers.ACTIVATIONS`` ("swish" as the papers'
    runs) or a module class, used in both FFNs and the convolution module.
    """

    def __init__(
        self,
        d_model: int,
        d_ffn: int,
        nhead: int,
        kernel_size: int = 31,
        dropout: float = 0.1,
        mixer: Union[str, Callable[..., nn.Module]] = "mhsa",
        mixer_kwargs: Optional[dict] = None,
        activation: Union[str, Callable[[], nn.Module]] = "swish",
    ):
        super().__init__()
        mixer_kwargs = dict(mixer_kwargs or {})
        activation = activation_class(activation)
        self.ffn1 = FeedForward(d_model, d_ffn, dropout, activation)
        self.mixer_norm = nn.LayerNorm(d_model)
        if isinstance(mixer, str):
            self.mixer = build_mixer(mixer, d_model=d_model, nhead=nhead, dropout=dropout, **mixer_kwargs)
        else:  # a factory, e.g. a class, taking the common contract's arguments
            self.mixer = mixer(d_model=d_model, nhead=nhead, dropout=dropout, **mixer_kwargs)
        self.conv = ConvolutionModule(d_model, kernel_size, dropout, activation)
        self.ffn2 = FeedForward(d_model, d_ffn, dropout, activation)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = torch.add(x, self.ffn1(x), alpha=0.5)
        x = x + self.mixer(self.mixer_norm(x), key_padding_mask=key_padding_mask)
        x = x + self.conv(x, key_padding_mask)
        x = torch.add(x, self.ffn2(x), alpha=0.5)
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
    activation : str or class
        Activation of the FFNs and convolution modules: "swish" (the papers' runs; SiLU),
        "gelu" (SpeechBrain's later BEST-RQ recipe), ... (``brq_att_alt.layers.ACTIVATIONS``).
    input_pos_enc : str
        Position encoding added to the input (valid frames only): "sine" (fixed sin/cos,
        ``brq_att_alt.layers.sinusoidal_positions``), "none", or "auto" (default): "none"
        when the mixer encodes position itself (relative-position MHSA, HyperMixing: a
        mixer with ``encodes_position = True``), else "sine", as the papers' code did.
        ``self.input_pos_enc`` holds the resolved choice.
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
        activation: Union[str, Callable[[], nn.Module]] = "swish",
        input_pos_enc: str = "auto",
    ):
        super().__init__()
        if not 0.0 <= layerdrop < 1.0:
            raise ValueError(f"layerdrop must be in [0, 1), got {layerdrop}")
        if input_pos_enc not in POSITION_ENCODINGS:
            raise ValueError(f"input_pos_enc must be one of {', '.join(POSITION_ENCODINGS)}, got {input_pos_enc!r}")
        self.layerdrop = layerdrop
        self.layers = nn.ModuleList(
            ConformerLayer(d_model, d_ffn, nhead, kernel_size, dropout, mixer, mixer_kwargs, activation)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=1e-6)  # SpeechBrain's ConformerEncoder final norm
        if input_pos_enc == "auto":
            mixers = [layer.mixer for layer in self.layers]
            own = bool(mixers) and all(getattr(m, "encodes_position", False) for m in mixers)
            input_pos_enc = "none" if own else "sine"
        self.input_pos_enc = input_pos_enc

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: Optional[torch.Tensor] = None,
        return_hidden: bool = False,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        """x: (B, T, d_model) -> (B, T, d_model); ``input_pos_enc`` is added first.

        With ``return_hidden`` also returns the list of num_layers + 1 hidden states
        (the input, then each layer's output; a dropped layer repeats its input).
        """
        if self.input_pos_enc == "sine":
            x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)
        x = zero_padded(x, key_padding_mask)
        hidden = [x] if return_hidden else None  # kept only when asked: on long inputs each is large
        for layer in self.layers:
            if not (self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop):
                x = layer(x, key_padding_mask)
            if hidden is not None:
                hidden.append(x)
        x = zero_padded(self.norm(x), key_padding_mask)
        return (x, hidden) if return_hidden else x
