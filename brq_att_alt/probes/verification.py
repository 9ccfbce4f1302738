"""Speaker verification scoring: cosine scores, EER, VoxCeleb trial lists.

EER definition (hand-checkable)
-------------------------------
A trial is accepted when ``score >= t``. For a threshold ``t``:

* FAR(t) = (negative trials with score >= t) / (negative trials)
* FRR(t) = (positive trials with score <  t) / (positive trials)

The candidate thresholds are every observed score plus +inf. The EER is
``(FAR(t*) + FRR(t*)) / 2`` at the candidate ``t*`` where ``|FAR - FRR|`` is
smallest (ties: the smallest mean, then the smallest threshold). With perfectly
separated scores it is 0; with identical score lists it is 0.5.

Trial lists use the VoxCeleb format, one trial a line: ``label enrol test``
with label 1 (same speaker) or 0, e.g.
``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``.
"""

from pathlib import Path
from typing import Iterable, List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

Trial = Tuple[int, str, str]


def cosine_score(enrol: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of embeddings along the last dim ((..., D) x (..., D) -> (...))."""
    return F.cosine_similarity(enrol.float(), test.float(), dim=-1, eps=1e-8)


def compute_eer(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> Tuple[float, float]:
    """(EER, threshold) of target (positive) and non-target (negative) scores; see the module doc."""
    pos = torch.as_tensor(list(positive_scores), dtype=torch.float64).flatten()
    neg = torch.as_tensor(list(negative_scores), dtype=torch.float64).flatten()
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError(
            f"EER needs positive and negative trials (got {pos.numel()} positive, "
            f"{neg.numel()} negative)"
        )
    if not (torch.isfinite(pos).all() and torch.isfinite(neg).all()):
        raise ValueError("EER scores must be finite")
    thresholds = torch.cat([torch.unique(torch.cat([pos, neg])), torch.tensor([float("inf")], dtype=torch.float64)])
    far = (neg.unsqueeze(0) >= thresholds.unsqueeze(1)).double().mean(dim=1)
    frr = (pos.unsqueeze(0) < thresholds.unsqueeze(1)).double().mean(dim=1)
    gap = (far - frr).abs()
    mean = (far + frr) / 2
    best = None
    for i in range(thresholds.numel()):  # few thousand trials at most in tests; exact ties matter
        key = (gap[i].item(), mean[i].item(), thresholds[i].item())
        if best is None or key < best[0]:
            best = (key, i)
    i = best[1]
    return float(mean[i]), float(thresholds[i])


def read_trial_list(path: Union[str, Path]) -> List[Trial]:
    """Read ``label enrol test`` lines (VoxCeleb format); clear errors on bad lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Trial list not found: {path} (expected 'label enrol test' lines)")
    trials: List[Trial] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or parts[0] not in ("0", "1"):
                raise ValueError(
                    f"{path}:{lineno}: expected 'label enrol test' with label 0 or 1 "
                    f"(VoxCeleb format), got {line.strip()!r}"
                )
            trials.append((int(parts[0]), parts[1], parts[2]))
    if not trials:
        raise ValueError(f"Trial list {path} holds no trial")
    return trials


def write_trial_list(trials: Iterable[Trial], path: Union[str, Path]) -> Path:
    """Write trials as ``label enrol test`` lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for label, enrol, test in trials:
            fh.write(f"{int(label)} {enrol} {test}\n")
    return path


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
