"""Downstream probing of frozen BEST-RQ encoders (MP3S): layer mixing, probe heads, scoring
(``probes.training``: the probe Brains and the training of a probe, for the recipes)."""

from .heads import (
    ECAPAHead,
    FrameBiLSTM,
    FrameContextNet,
    FrameLinear,
    FrameMLP,
    PooledBiLSTM,
    PooledLinear,
    XvectorHead,
)
from .verification import compute_eer, compute_min_dcf, cosine_score, score_trials
from .weighted_sum import WeightedLayerSum

__all__ = [
    "ECAPAHead", "FrameBiLSTM", "FrameContextNet", "FrameLinear", "FrameMLP",
    "PooledBiLSTM", "PooledLinear", "WeightedLayerSum", "XvectorHead", "compute_eer",
    "compute_min_dcf", "cosine_score", "score_trials",
]
