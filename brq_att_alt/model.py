"""The BEST-RQ encoder stack: filterbanks -> conv front end -> Conformer -> head.

``BestRQModel`` holds everything that is saved with a pre-trained checkpoint:
the front end, the Conformer encoder with its token mixer, the prediction head
(Linear(d_model, codebook_size)) and the frozen random-projection quantizer.
Its constructor arguments (``config``) are plain values so that a downstream
recipe can rebuild the same model from a saved JSON/YAML. ``config`` records
every choice resolved (the input position encoding that "auto" chose, every
option of the mixer with its default filled in), so that a later change of a
default cannot change a saved model.
"""

from typing import Dict, Optional

import torch
import torch.nn as nn

from .conformer import ConformerEncoder
from .frontend import ConvFrontEnd
from .mixers import resolved_mixer_options
from .quantizer import RandomProjectionQuantizer


class BestRQModel(nn.Module):
    """BEST-RQ model; every argument is a plain value (see ``config``).

    Shapes: feats (B, T, n_mels) with T a multiple of 4 (``FbankFeatures`` pads),
    padding mask (B, T) True = padded; encoder frames are T / 4 (40 ms each).

    The defaults are the papers' settings: ``activation`` "swish" in the Conformer,
    ``input_pos_enc`` "auto" (the fixed sin/cos encoding on the encoder input for every
    mixer but relative-position MHSA and HyperMixing), the mixers' own defaults (see
    each mixer). ``dropout`` also applies after each front-end conv block. ``layerdrop``
    stays 0 by default: the papers' value depends on the size (0.05 base, 0.1 large) and
    is set by the pre-training YAMLs; scripted uses (benchmarks, tests) stay deterministic.
    """

    def __init__(
        self,
        mixer: str = "mhsa",
        d_model: int = 576,
        num_layers: int = 12,
        nhead: int = 8,
        d_ffn: int = 2048,
        kernel_size: int = 31,
        dropout: float = 0.1,
        layerdrop: float = 0.0,
        mixer_kwargs: Optional[dict] = None,
        n_mels: int = 80,
        stack_frames: int = 4,
        codebook_size: int = 8192,
        codebook_dim: int = 16,
        quantizer_seed: int = 1234,
        activation: str = "swish",
        input_pos_enc: str = "auto",
    ):
        super().__init__()
        if not isinstance(activation, str):
            raise ValueError(f"activation must be a name (e.g. 'swish', 'gelu'), got {activation!r}")
        mixer_kwargs = resolved_mixer_options(mixer, mixer_kwargs or {})
        self.stack_frames = stack_frames
        self.frontend = ConvFrontEnd(n_mels, d_model, dropout=dropout)
        self.encoder = ConformerEncoder(
            num_layers, d_model, d_ffn, nhead, kernel_size, dropout, layerdrop, mixer, mixer_kwargs,
            activation=activation, input_pos_enc=input_pos_enc,
        )
        self.head = nn.Linear(d_model, codebook_size)
        self.quantizer = RandomProjectionQuantizer(n_mels * stack_frames, codebook_dim, codebook_size, quantizer_seed)
        self.config = dict(
            mixer=mixer, d_model=d_model, num_layers=num_layers, nhead=nhead, d_ffn=d_ffn,
            kernel_size=kernel_size, dropout=dropout, layerdrop=layerdrop, mixer_kwargs=mixer_kwargs,
            n_mels=n_mels, stack_frames=stack_frames, codebook_size=codebook_size,
            codebook_dim=codebook_dim, quantizer_seed=quantizer_seed, activation=activation,
            input_pos_enc=self.encoder.input_pos_enc,
        )
        self._register_load_state_dict_pre_hook(_refuse_old_layout, with_module=True)

    def encode(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, return_hidden: bool = False):
        """feats (B, T, n_mels) -> encoder output (B, T/4, d_model), its padding mask (B, T/4)
        [and the list of num_layers + 1 hidden states when ``return_hidden``]."""
        x, mask = self.frontend(feats, padding_mask)
        out = self.encoder(x, mask, return_hidden=return_hidden)
        if return_hidden:
            return out[0], mask, out[1]
        return out, mask

    def targets(self, feats: torch.Tensor) -> torch.Tensor:
        """Unmasked feats (B, T, n_mels) -> quantizer targets (B, T / stack_frames)."""
        B, T, F = feats.shape
        stacked = feats[:, : T - T % self.stack_frames].reshape(B, -1, F * self.stack_frames)
        return self.quantizer(stacked)

    def forward(self, feats: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Masked feats -> {"logits": (B, T/4, codebook_size), "padding_mask": (B, T/4)}."""
        x, mask = self.encode(feats, padding_mask)
        return {"logits": self.head(x), "padding_mask": mask}


def _refuse_old_layout(module, state_dict, prefix, *args, **kwargs):
    """A state dict of the layout before the paper-fidelity changes (front-end LayerNorm
    over channels only, GELU, no input position encoding ...) cannot be loaded: say so
    instead of a list of shape mismatches."""
    key = prefix + "frontend.block1.norm.weight"
    if key in state_dict and state_dict[key].dim() == 1:
        raise RuntimeError(
            "This checkpoint was trained with the encoder layout of brq_att_alt before its paper-fidelity "
            "changes (front-end LayerNorm over channels only, GELU, no input position encoding, mixer "
            "dropout ...). It cannot be loaded into the current BestRQModel: pre-train it again with the "
            "current code, or load it with the brq_att_alt version that trained it."
        )


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; buffers such as the quantizer are not counted."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

