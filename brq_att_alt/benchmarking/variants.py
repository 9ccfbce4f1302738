"""The benchmarked encoder variants (registered mixer, its options, a display label) and the baseline."""

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Variant:
    """A benchmarked encoder: registered mixer name, its options, a display label."""

    mixer: str
    mixer_kwargs: dict
    label: str


VARIANTS: Dict[str, Variant] = {
    "mhsa": Variant("mhsa", {}, "MHSA (RelPosMHAXL)"),
    "mhsa_sdpa": Variant("mhsa", {"implementation": "sdpa"}, "MHSA (SDPA)"),
    "hypermixing": Variant("hypermixing", {}, "HyperMixing"),
    "fastformer": Variant("fastformer", {}, "Fastformer"),
    "summarymixing": Variant("summarymixing", {}, "SummaryMixing"),
    "mamba": Variant("mamba", {}, "Mamba (bidirectional)"),
    "pom": Variant("pom", {}, "PoM"),
}
BASELINE = "mhsa"
QUADRATIC = ("mhsa", "mhsa_sdpa")
