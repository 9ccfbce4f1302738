"""HyperMixing token mixer (HyperMixer / HyperConformer, Mai et al.), linear in T.

For head h (channels X_h, d_h = d_model / nhead) a hypernetwork, a token-wise
MLP d_h -> d_h -> k (k = hypernet_size / nhead), reads X + P (P: sinusoidal
absolute positions) and generates one row per frame of W1 and W2 (T x k). The
head output is a token-mixing MLP whose weights depend on the input:

    Y_h = W2 gelu(W1^T X_h)        (T, k) @ gelu((k, T) @ (T, d_h)) -> (T, d_h)

W1^T X_h is a (k, d_h) summary over time, so time and memory are O(T k d_h):
no T x T tensor. Heads are concatenated, then LayerNorm.

Parameters are laid out as speechbrain.nnet.hypermixing.HyperMixing with
``fix_tm_hidden_size=False`` (what SpeechBrain's Conformer builds), so counts
compare: per generator nhead MLPs d_h -> d_h -> k, two generators unless tied,
LayerNorm(d_model). As there, P is the standard d_model-dim sin/cos encoding
added to X and split with it over the heads. Unlike there:
- P is computed on the fly for any T (no max_length, no buffer);
- no dummy (B, T, T) "attention weights" are built;
- padded frames are zeroed in X and in the rows of W1 and W2, so they add
  nothing to W1^T X, and the output on padded frames is set to zero.
As there, there is no dropout inside (``dropout`` is accepted for the mixer
contract and unused), and the hypernetwork weights and biases are initialised
as SpeechBrain's ``ParallelMLPs`` (xavier_uniform, gain sqrt(2), on its 3-D
tensors; see ``BlockLinear``).
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import sinusoidal_positions
from ..padding import zero_padded
from .block_linear import BlockLinear

__all__ = ["HyperMixing", "HyperNetwork", "sinusoidal_positions"]


class HyperNetwork(nn.Module):
    """nhead parallel token-wise MLPs: x (B, T, d_model) -> (B, T, nhead, k).

    Initialised as SpeechBrain's ``ParallelMLPs``, drawing fc1's weight and bias, then fc2's.
    """

    def __init__(self, d_model: int, nhead: int, hypernet_size: int):
        super().__init__()
        self.nhead = nhead
        self.fc1 = BlockLinear(d_model, d_model, nhead, init="hypermixing")
        self.fc2 = BlockLinear(d_model, hypernet_size, nhead, init="hypermixing")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x))).unflatten(-1, (self.nhead, -1))


class HyperMixing(nn.Module):
    """Multi-head HyperMixing: x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model).

    Options: ``hypernet_size`` (total width k * nhead of the generated token-mixing
    MLPs; default 2048 = d_ffn, which SpeechBrain's Conformer passes as
    hypernet_size in the public BEST-RQ HyperConformer config), ``tied`` (W2 = W1,
    one generator). ``dropout`` is unused: the reference has none.
    """

    encodes_position = True  # its hypernetwork reads X + P: the encoder adds no position encoding

    def __init__(
        self, d_model: int, nhead: int, dropout: float = 0.0, hypernet_size: int = 2048, tied: bool = False
    ):
        super().__init__()
        if d_model % nhead or hypernet_size % nhead:
            raise ValueError(
                f"d_model ({d_model}) and hypernet_size ({hypernet_size}) must be divisible by nhead ({nhead})"
            )
        self.d_model, self.nhead = d_model, nhead
        self.w1_gen = HyperNetwork(d_model, nhead, hypernet_size)
        self.w2_gen = None if tied else HyperNetwork(d_model, nhead, hypernet_size)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, d_model), mask (B, T) True = padded -> (B, T, d_model), padded frames zero."""
        B, T, _ = x.shape
        mask = key_padding_mask
        x = zero_padded(x, mask)
        hyp_in = x + sinusoidal_positions(T, self.d_model, x.device, x.dtype)
        w1 = zero_padded(self.w1_gen(hyp_in), mask)  # (B, T, H, k)
        w2 = w1 if self.w2_gen is None else zero_padded(self.w2_gen(hyp_in), mask)
        xh = x.view(B, T, self.nhead, -1)  # (B, T, H, d_h)
        hidden = F.gelu(torch.einsum("bthk,bthc->bhkc", w1, xh))  # W1^T X_h: (B, H, k, d_h)
        y = torch.einsum("bthk,bhkc->bthc", w2, hidden).reshape(B, T, self.d_model)
        return zero_padded(self.norm(y), mask)
