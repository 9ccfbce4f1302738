"""Multi-head self-attention, the quadratic baseline.

Two implementations behind one module:

* ``implementation="relpos"`` (default): Transformer-XL relative-position attention,
  SpeechBrain's ``RelPosMHAXL`` with its ``RelPosEncXL`` sinusoidal encoding, as in the
  papers' baseline.
* ``implementation="sdpa"``: plain multi-head attention through
  ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
  kernels on GPU), the strong modern baseline. It has no positional encoding of its
  own: the encoder adds the fixed sinusoidal one to its input (``input_pos_enc``
  "auto"), as SpeechBrain's TransformerASR does for its "regularMHA", and the
  convolution module supplies relative position.

``encodes_position`` tells the encoder which of the two it is.
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from speechbrain.nnet.attention import RelPosEncXL, RelPosMHAXL

from ..padding import zero_padded

IMPLEMENTATIONS = ("relpos", "sdpa")


class MHSA(nn.Module):
    """Self-attention over (B, T, d_model) with a (B, T) padding mask (True = padded).

    Arguments
    ---------
    d_model : int
        Feature size; must be divisible by ``nhead``.
    nhead : int
        Number of attention heads.
    dropout : float
        Dropout on the attention weights ("relpos") or probabilities ("sdpa").
    implementation : str
        "relpos" (RelPosMHAXL, the papers' baseline) or "sdpa".
    """

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0, implementation: str = "relpos"):
        super().__init__()
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"MHSA implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        if d_model % nhead:
            raise ValueError(f"d_model={d_model} must be divisible by nhead={nhead}")
        self.implementation = implementation
        self.encodes_position = implementation == "relpos"  # no input position encoding needed
        self.nhead = nhead
        self.dropout = dropout
        if implementation == "relpos":
            self.pos_enc = RelPosEncXL(d_model)
            self.attn = RelPosMHAXL(d_model, nhead, dropout=dropout)
        else:
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, T, d_model); key_padding_mask: (B, T) bool or None -> (B, T, d_model)."""
        if self.implementation == "relpos":
            pos = self.pos_enc(x).to(x.dtype)
            y = self.attn(x, x, x, pos_embs=pos, key_padding_mask=key_padding_mask, return_attn_weights=False)
            if isinstance(y, tuple):  # older SpeechBrain versions always return weights
                y = y[0]
        else:
            y = self._sdpa(x, key_padding_mask)
        return zero_padded(y, key_padding_mask)

    def _sdpa(self, x, key_padding_mask):
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.nhead, d // self.nhead).permute(2, 0, 3, 1, 4)
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, d))
