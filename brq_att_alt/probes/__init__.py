"""Downstream probing of frozen BEST-RQ encoders (MP3S): layer mixing, probe heads, scoring."""

from .heads import (
    BiLSTMHead,
    BiLSTMLinear,
    ContextNetHead,
    ECAPAHead,
    EmbeddingClassifier,
    LinearHead,
    MeanPoolLinear,
    XvectorHead,
    length_mask,
    masked_mean,
)
from .verification import compute_eer, cosine_score, read_trial_list, score_trials, write_trial_list
from .weighted_sum import WeightedLayerSum

__all__ = [
    "BiLSTMHead", "BiLSTMLinear", "ContextNetHead", "ECAPAHead", "EmbeddingClassifier",
    "LinearHead", "MeanPoolLinear", "WeightedLayerSum", "XvectorHead", "compute_eer",
    "cosine_score", "length_mask", "masked_mean", "read_trial_list", "score_trials",
    "write_trial_list",
]
