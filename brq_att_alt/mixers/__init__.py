"""Token mixers: drop-in replacements for multi-head self-attention.

Every mixer follows one contract::

    mixer = build_mixer("pom", d_model=256, nhead=4, dropout=0.0, **mixer_specific)
    y = mixer(x, key_padding_mask=mask)
    # x: (B, T, d_model) float; mask: (B, T) bool, True = padded frame, or None
    # y: (B, T, d_model)

and is *padding-exact*: the output on a sequence's valid frames does not depend on
how much padding the batch adds after it.

``dropout`` is what the mixer drops inside, as its reference does (MHSA: attention
weights; Fastformer: pooled summaries; HyperMixing, SummaryMixing, Mamba, PoM: nothing,
the argument is accepted and unused); the Conformer adds no dropout on the mixer output.
A mixer that encodes position itself sets ``encodes_position = True``, so that the
encoder adds no absolute position encoding to its input (``input_pos_enc: auto``).
Each mixer's option defaults are the papers' values.
"""

import inspect
from typing import Callable, Dict, FrozenSet, Mapping

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


COMMON_ARGUMENTS = frozenset({"d_model", "nhead", "dropout"})


def mixer_option_names(name: str) -> FrozenSet[str]:
    """The mixer-specific options of mixer ``name``: its constructor's arguments but
    d_model, nhead and dropout (the common contract)."""
    params = inspect.signature(MIXER_CLASSES[check_mixer_name(name)].__init__).parameters
    return frozenset(params) - {"self"} - COMMON_ARGUMENTS


def resolved_mixer_options(name, options: Mapping) -> dict:
    """Every option of mixer ``name``: ``options`` with the constructor's defaults filled in.

    An option the mixer does not know raises a TypeError naming it (as ``build_mixer``).
    ``name`` may also be a mixer factory (not a registered name): ``options`` is then
    returned as given.
    """
    if not isinstance(name, str):
        return dict(options)
    params = inspect.signature(MIXER_CLASSES[check_mixer_name(name)].__init__).parameters
    unknown = sorted(set(options) - mixer_option_names(name))
    if unknown:
        raise TypeError(f"Bad option for mixer {name!r}: no option {', '.join(map(repr, unknown))}; "
                        f"its options are: {', '.join(sorted(mixer_option_names(name)))}")
    resolved = {key: params[key].default for key in sorted(mixer_option_names(name))}
    resolved.update(options)
    return {key: list(v) if isinstance(v, tuple) else v for key, v in resolved.items()}


def check_mixer_options(options_per_mixer: Mapping[str, dict]) -> None:
    """Validate a {mixer name: options} mapping (YAML ``mixer_options``) for *every* mixer.

    An unknown mixer name, or an option that mixer's constructor does not take, raises a
    ValueError naming them (a ValueError, not a TypeError, so that HyperPyYAML passes the
    message on unchanged), so that a typo in the options of a mixer other than the
    selected one is not silently ignored.
    """
    if not isinstance(options_per_mixer, Mapping):
        raise ValueError(f"mixer_options must map mixer names to their options, got {options_per_mixer!r}")
    for name, options in options_per_mixer.items():
        if name not in MIXER_CLASSES:
            raise ValueError(f"mixer_options has an entry for unknown mixer {name!r}; valid names: "
                             f"{', '.join(MIXERS)} (e.g. --mixer_options=\"{{pom: {{degree: 2}}}}\")")
        if options is None:
            continue
        if not isinstance(options, Mapping):
            raise ValueError(f"mixer_options[{name!r}] must be a mapping of options, got {options!r}")
        unknown = sorted(set(options) - mixer_option_names(name))
        if unknown:
            raise ValueError(
                f"mixer_options: mixer {name!r} has no option {', '.join(map(repr, unknown))}; "
                f"its options are: {', '.join(sorted(mixer_option_names(name)))}"
            )


def mixer_options(options_per_mixer: Dict[str, dict], name: str) -> dict:
    """The options of mixer ``name`` from a {mixer name: options} mapping (YAML ``mixer_options``).

    Every entry of the mapping is validated first (``check_mixer_options``), not only ``name``'s.
    An option set to null (None) is left out, so the mixer's own default (the papers' value)
    applies: the YAMLs list such options without restating their values.
    """
    check_mixer_name(name)
    check_mixer_options(options_per_mixer)
    if name not in options_per_mixer:
        raise ValueError(f"mixer_options has no entry for {name!r}; it has: {', '.join(options_per_mixer)}")
    return {key: value for key, value in (options_per_mixer[name] or {}).items() if value is not None}


__all__ = [
    "MIXERS", "MIXER_CLASSES", "build_mixer", "check_mixer_name", "check_mixer_options",
    "mixer_option_names", "mixer_options", "resolved_mixer_options",
]
