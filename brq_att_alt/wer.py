"""Word error rate: per-utterance edit operations, corpus WER, bootstrap confidence interval.

Corpus WER is the ratio of sums, ``sum(errors) / sum(reference words)`` (not a mean of
per-utterance rates). ``wer_bootstrap_ci`` resamples whole utterances with replacement
and recomputes that ratio (percentile interval, Bisani & Ney 2004).
"""

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

Words = Union[str, Sequence[str]]


def _words(x: Words) -> List[str]:
    return x.split() if isinstance(x, str) else list(x)


@dataclass
class EditOps:
    """Edit operations of one utterance (minimum edit distance alignment)."""

    substitutions: int
    deletions: int
    insertions: int
    ref_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else float(self.errors > 0)

    def as_dict(self) -> Dict[str, int]:
        return {**asdict(self), "errors": self.errors}


def edit_ops(ref: Words, hyp: Words) -> EditOps:
    """Levenshtein alignment of word lists (strings are split on whitespace).

    Among alignments with the fewest errors, prefers substitutions over a deletion
    + insertion pair (ties broken as in sclite/SpeechBrain).
    """
    r, h = _words(ref), _words(hyp)
    n, m = len(r), len(h)
    # cost, subs, dels, ins for the best alignment of r[:i] and h[:j]
    prev = [(j, 0, 0, j) for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, m + 1):
            c, s, d, ins = prev[j - 1]
            same = r[i - 1] == h[j - 1]
            best = (c + (0 if same else 1), s + (0 if same else 1), d, ins)
            c, s, d, ins = prev[j]  # delete r[i-1]
            if c + 1 < best[0]:
                best = (c + 1, s, d + 1, ins)
            c, s, d, ins = cur[j - 1]  # insert h[j-1]
            if c + 1 < best[0]:
                best = (c + 1, s, d, ins + 1)
            cur.append(best)
        prev = cur
    _, s, d, ins = prev[m]
    return EditOps(substitutions=s, deletions=d, insertions=ins, ref_words=n)


def corpus_wer(refs: Sequence[Words], hyps: Sequence[Words]) -> Tuple[float, List[EditOps]]:
    """(corpus WER as a fraction, per-utterance EditOps)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    ops = [edit_ops(r, h) for r, h in zip(refs, hyps)]
    total = sum(o.ref_words for o in ops)
    if total == 0:
        raise ValueError("The references hold no word: WER is undefined")
    return sum(o.errors for o in ops) / total, ops


def wer_bootstrap_ci(errors: Sequence[float], ref_words: Sequence[float], confidence: float = 0.95,
                     n_boot: int = 1000, seed: Optional[int] = 0) -> Tuple[float, float, float]:
    """Corpus WER and its bootstrap percentile confidence interval.

    Arguments
    ---------
    errors, ref_words: per-utterance error counts and reference lengths.
    confidence: e.g. 0.95 for a 95 % interval.
    n_boot: bootstrap replicates (utterances drawn with replacement, same count).
    seed: numpy seed (reproducible intervals).

    Returns (wer, low, high) as fractions. A replicate with no reference word
    (only empty references drawn) is left out.
    """
    e = np.asarray(errors, dtype=np.float64)
    w = np.asarray(ref_words, dtype=np.float64)
    if e.shape != w.shape or e.ndim != 1 or e.size == 0:
        raise ValueError("errors and ref_words must be non-empty 1-D sequences of the same length")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if w.sum() <= 0:
        raise ValueError("The references hold no word: WER is undefined")
    point = float(e.sum() / w.sum())
    rng = np.random.default_rng(seed)
    n = e.size
    stats = []
    for start in range(0, n_boot, 256):  # chunks bound the (n_boot, n) index matrix
        idx = rng.integers(0, n, size=(min(256, n_boot - start), n))
        num, den = e[idx].sum(1), w[idx].sum(1)
        stats.append(num[den > 0] / den[den > 0])
    stats = np.concatenate(stats)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return point, float(low), float(high)


def wer_report(ids: Sequence[str], refs: Sequence[Words], hyps: Sequence[Words], confidence: float = 0.95,
               n_boot: int = 1000, seed: int = 0) -> Tuple[dict, str]:
    """Summary dict and a text report (header, then one block per utterance)."""
    wer, ops = corpus_wer(refs, hyps)
    _, low, high = wer_bootstrap_ci([o.errors for o in ops], [o.ref_words for o in ops], confidence, n_boot, seed)
    summary = {
        "wer": 100 * wer,
        "ci_low": 100 * low,
        "ci_high": 100 * high,
        "confidence": confidence,
        "n_boot": n_boot,
        "utterances": len(ops),
        "ref_words": sum(o.ref_words for o in ops),
        "errors": sum(o.errors for o in ops),
        "substitutions": sum(o.substitutions for o in ops),
        "deletions": sum(o.deletions for o in ops),
        "insertions": sum(o.insertions for o in ops),
    }
    lines = [
        f"%WER {summary['wer']:.2f} [ {summary['errors']} / {summary['ref_words']}, "
        f"{summary['insertions']} ins, {summary['deletions']} del, {summary['substitutions']} sub ]",
        f"{int(round(100 * confidence))}% bootstrap CI ({n_boot} resamplings of {len(ops)} utterances): "
        f"[{summary['ci_low']:.2f}, {summary['ci_high']:.2f}]",
        "=" * 80,
    ]
    for uid, r, h, o in zip(ids, refs, hyps, ops):
        lines += [
            f"{uid}, %WER {100 * o.wer:.2f} [ {o.errors} / {o.ref_words}, {o.insertions} ins, "
            f"{o.deletions} del, {o.substitutions} sub ]",
            f"REF: {' '.join(_words(r))}",
            f"HYP: {' '.join(_words(h))}",
            "-" * 80,
        ]
    return summary, "\n".join(lines) + "\n"


__all__ = ["EditOps", "corpus_wer", "edit_ops", "wer_bootstrap_ci", "wer_report"]
