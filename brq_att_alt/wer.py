"""Word error rate: per-utterance edit operations, corpus WER, bootstrap confidence interval.

Alignments and the substitution / deletion / insertion split are SpeechBrain's
(``speechbrain.utils.edit_distance``: ``op_table`` + ``count_ops``, which follow Kaldi's
``compute-wer``), and ``wer_report`` writes SpeechBrain's ``wer.txt`` layout
(``speechbrain.dataio.wer.print_wer_summary`` and ``print_alignments``) with the
bootstrap interval added after the summary lines.

Corpus WER is the ratio of sums, ``sum(errors) / sum(reference words)`` (not a mean of
per-utterance rates). ``wer_bootstrap_ci`` resamples whole utterances with replacement
and recomputes that ratio (percentile interval, Bisani & Ney 2004).
"""

import io
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from speechbrain.dataio.wer import print_alignments, print_wer_summary
from speechbrain.utils.edit_distance import count_ops, op_table, wer_details_by_utterance, wer_summary

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


def edit_ops(ref: Words, hyp: Words) -> EditOps:
    """Edit operations of the word lists (strings are split on whitespace), as SpeechBrain
    counts them: the fewest errors, and among equally short alignments the one SpeechBrain's
    backtrace picks (``op_table`` + ``count_ops``), so the split matches its ``wer.txt``."""
    r, h = _words(ref), _words(hyp)
    ops = count_ops(op_table(r, h))
    return EditOps(substitutions=ops["substitutions"], deletions=ops["deletions"],
                   insertions=ops["insertions"], ref_words=len(r))


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


def _unique_keys(ids: Sequence[str]) -> List[str]:
    """Utterance ids as keys; a repeated id gets " (2)", " (3)" ... so no utterance is lost."""
    seen: Dict[str, int] = {}
    keys = []
    for uid in map(str, ids):
        seen[uid] = seen.get(uid, 0) + 1
        keys.append(uid if seen[uid] == 1 else f"{uid} ({seen[uid]})")
    return keys


def wer_report(ids: Sequence[str], refs: Sequence[Words], hyps: Sequence[Words], confidence: float = 0.95,
               n_boot: int = 1000, seed: int = 0) -> Tuple[dict, str]:
    """Summary dict and the text of SpeechBrain's ``wer.txt`` (summary, then the alignment of
    every utterance), with the bootstrap confidence interval after the summary lines."""
    if not len(ids) == len(refs) == len(hyps):
        raise ValueError(f"{len(ids)} ids, {len(refs)} references and {len(hyps)} hypotheses")
    keys = _unique_keys(ids)
    ref_words = dict(zip(keys, map(_words, refs)))
    details = wer_details_by_utterance(ref_words, dict(zip(keys, map(_words, hyps))), compute_alignments=True)
    ops = [EditOps(substitutions=d["substitutions"], deletions=d["deletions"], insertions=d["insertions"],
                   ref_words=len(ref_words[d["key"]])) for d in details]
    total_words = sum(o.ref_words for o in ops)
    if total_words == 0:
        raise ValueError("The references hold no word: WER is undefined")
    wer = sum(o.errors for o in ops) / total_words
    _, low, high = wer_bootstrap_ci([o.errors for o in ops], [o.ref_words for o in ops], confidence, n_boot, seed)
    summary = {
        "wer": 100 * wer,
        "ci_low": 100 * low,
        "ci_high": 100 * high,
        "confidence": confidence,
        "n_boot": n_boot,
        "utterances": len(ops),
        "ref_words": total_words,
        "errors": sum(o.errors for o in ops),
        "substitutions": sum(o.substitutions for o in ops),
        "deletions": sum(o.deletions for o in ops),
        "insertions": sum(o.insertions for o in ops),
    }
    text = io.StringIO()
    print_wer_summary(wer_summary(details), file=text)
    text.write(f"{int(round(100 * confidence))}% CI of %WER [ {summary['ci_low']:.2f}, {summary['ci_high']:.2f} ] "
               f"(percentile bootstrap, {n_boot} resamplings of the {len(ops)} utterances)\n")
    print_alignments(details, file=text)
    return summary, text.getvalue()


__all__ = ["EditOps", "corpus_wer", "edit_ops", "wer_bootstrap_ci", "wer_report"]
