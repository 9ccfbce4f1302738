"""Token mixers: drop-in replacements for multi-head self-attention.

Every mixer follows one contract::

    mixer = build_mixer("pom", d_model=256, nhead=4, dropout=0.0, **mixer_specific)
    y = mixer(x, key_padding_mask=mask)
    # x: (B, T, d_model) float; mask: (B, T) bool, True = padded frame, or None
    # y: (B, T, d_model)

and is *padding-exact*: the output on a sequence's valid frames does not depend on
how much padding the batch adds after it.
"""

from typing import Callable, Dict

import torch.nn as nn

from .fastformer import Fastformer
from .hypermixing import HyperMixing
from .mamba import BiMamba
from .mhsa import MHSA
from .pom import PolynomialMixer
from .summarymixing import SummaryMixing

MIXER_CLASSES: Dict[str, Callable[..., nn.Module]] = {
    "mhsa": MHSA,
    "hypermixing": HyperMixing,
    "fastformer": Fastformer,
    "summarymixing": SummaryMixing,
    "mamba": BiMamba,
    "pom": PolynomialMixer,
}
MIXERS = tuple(MIXER_CLASSES)


def check_mixer_name(name: str) -> str:
    """Return ``name`` if it is a registered mixer, else raise a ValueError listing them."""
    if name not in MIXER_CLASSES:
        raise ValueError(
            f"Unknown token mixer {name!r}. Valid names: {', '.join(MIXERS)} "
            "(set it with attention_type in the YAML or --attention_type=NAME)."
        )
    return name


def build_mixer(name: str, d_model: int, nhead: int, dropout: float = 0.0, **kwargs) -> nn.Module:
    """Instantiate the mixer registered as ``name``; kwargs are mixer-specific options.

    An option the mixer does not know raises a TypeError naming it: nothing is ignored.
    """
    cls = MIXER_CLASSES[check_mixer_name(name)]
    try:
        return cls(d_model=d_model, nhead=nhead, dropout=dropout, **kwargs)
    except TypeError as err:
        raise TypeError(f"Bad option for mixer {name!r}: {err}") from err


def mixer_options(options_per_mixer: Dict[str, dict], name: str) -> dict:
    """The options of mixer ``name`` from a {mixer name: options} mapping (YAML ``mixer_options``)."""
    check_mixer_name(name)
    if name not in options_per_mixer:
        raise ValueError(f"mixer_options has no entry for {name!r}; it has: {', '.join(options_per_mixer)}")
    return dict(options_per_mixer[name] or {})


__all__ = ["MIXERS", "MIXER_CLASSES", "build_mixer", "check_mixer_name", "mixer_options"]
