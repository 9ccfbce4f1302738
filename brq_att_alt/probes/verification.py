"""Speaker verification scoring: cosine scores, EER, minDCF.

EER definition (hand-checkable)
-------------------------------
A trial is accepted when ``score >= t``. For a threshold ``t``:

* FAR(t) = (negative trials with score >= t) / (negative trials)
* FRR(t) = (positive trials with score <  t) / (positive trials)

The candidate thresholds are every observed score plus +inf. The EER is
``(FAR(t*) + FRR(t*)) / 2`` at the candidate ``t*`` where ``|FAR - FRR|`` is
smallest (ties: the smallest mean, then the smallest threshold). With perfectly
separated scores it is 0; with identical score lists it is 0.5.

minDCF definition (SpeechBrain's ``speechbrain.utils.metric_stats.minDCF``)
---------------------------------------------------------------------------
``C_det(t) = c_miss * P_miss(t) * p_target + c_fa * P_fa(t) * (1 - p_target)`` with
``P_miss(t)`` = (positive trials with score <= t) / (positive trials) and ``P_fa(t)`` =
(negative trials with score > t) / (negative trials) (accepted: ``score > t``); minDCF is
its minimum over the observed scores and the midpoints between them (not normalised),
at the smallest threshold reaching it. The defaults are SpeechBrain's and the VoxCeleb
recipes': p_target 0.01, c_miss = c_fa = 1.

Both sort the scores once and count with binary searches: O(n log n) time and O(n)
memory in the number of trials (VoxCeleb1-E/H: ~580k trials in well under a second).

Trials are ``(label, enrol, test)`` tuples (label 1: same speaker), as read from a
VoxCeleb-format trial list by ``brq_att_alt.data.voxceleb.read_trial_list``.
"""

from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

Trial = Tuple[int, str, str]


def cosine_score(enrol: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of embeddings along the last dim ((..., D) x (..., D) -> (...))."""
    return F.cosine_similarity(enrol.float(), test.float(), dim=-1, eps=1e-8)


def _sorted_scores(positive_scores, negative_scores, metric: str) -> Tuple[np.ndarray, np.ndarray]:
    """Both score lists as sorted float64 arrays (lists, numpy arrays or tensors); clear errors."""
    arrays = []
    for scores in (positive_scores, negative_scores):
        if torch.is_tensor(scores):
            scores = scores.detach().cpu().double().numpy()
        arrays.append(np.sort(np.asarray(scores, dtype=np.float64).ravel()))
    pos, neg = arrays
    if pos.size == 0 or neg.size == 0:
        raise ValueError(
            f"{metric} needs positive and negative trials (got {pos.size} positive, {neg.size} negative)"
        )
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError(f"{metric} scores must be finite")
    return pos, neg


def compute_eer(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> Tuple[float, float]:
    """(EER, threshold) of target (positive) and non-target (negative) scores; see the module doc.

    O(n log n) time, O(n) memory: FAR and FRR at every candidate threshold are counts
    of the sorted scores below it (binary search), not a (thresholds x trials) matrix.
    """
    pos, neg = _sorted_scores(positive_scores, negative_scores, "EER")
    thresholds = np.append(np.unique(np.concatenate([pos, neg])), np.inf)
    far = (neg.size - np.searchsorted(neg, thresholds, side="left")) / neg.size  # neg >= t
    frr = np.searchsorted(pos, thresholds, side="left") / pos.size  # pos < t
    gap = np.abs(far - frr)
    mean = (far + frr) / 2
    i = np.lexsort((thresholds, mean, gap))[0]  # smallest gap, then mean, then threshold
    return float(mean[i]), float(thresholds[i])


def compute_min_dcf(positive_scores: Sequence[float], negative_scores: Sequence[float], p_target: float = 0.01,
                    c_miss: float = 1.0, c_fa: float = 1.0) -> Tuple[float, float]:
    """(minDCF, threshold) as SpeechBrain's ``minDCF`` (see the module doc), in O(n log n).

    C_det only changes at observed scores (a midpoint has the C_det of the score below
    it), so the observed scores are the candidates, the smallest reaching the minimum wins.
    """
    if not 0.0 <= p_target <= 1.0:
        raise ValueError(f"p_target must be a probability, got {p_target}")
    pos, neg = _sorted_scores(positive_scores, negative_scores, "minDCF")
    thresholds = np.unique(np.concatenate([pos, neg]))
    p_miss = np.searchsorted(pos, thresholds, side="right") / pos.size  # pos <= t
    p_fa = (neg.size - np.searchsorted(neg, thresholds, side="right")) / neg.size  # neg > t
    c_det = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    i = int(np.argmin(c_det))  # the first (smallest) threshold at the minimum
    return float(c_det[i]), float(thresholds[i])


def score_trials(trials: Sequence[Trial], embeddings: dict) -> Tuple[List[float], List[float]]:
    """Cosine-score every trial from ``{utterance: embedding}``; returns (positive, negative) scores."""
    missing = sorted({u for _, e, t in trials for u in (e, t) if u not in embeddings})
    if missing:
        raise KeyError(f"No embedding for {len(missing)} trial utterance(s), e.g. {missing[:3]}")
    pos, neg = [], []
    for label, enrol, test in trials:
        score = cosine_score(embeddings[enrol].flatten(), embeddings[test].flatten()).item()
        (pos if label == 1 else neg).append(score)
    return pos, neg
