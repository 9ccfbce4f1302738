"""CTC decoding: greedy best path and beam search with an optional kenlm n-gram LM.

``greedy_decode(log_probs, lengths)`` needs nothing but torch. ``BeamSearchDecoder``
wraps SpeechBrain's ``CTCBeamSearcher`` (prefix beam search with shallow fusion of a
kenlm word n-gram, ARPA or binary): ``score = log p_ctc + alpha * log p_lm + beta * words``.
The LM needs the ``lm`` extra (``pip install -e ".[lm]"``: kenlm, pygtrie).
``lm_decoder_or_none`` is what recipes call: without those packages it logs one line
saying so and returns None, and the recipe reports its greedy results only.
"""

import functools
import importlib
import logging
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch

from .padding import relative_to_absolute_lengths
from .text import SPACE, CharTokenizer

logger = logging.getLogger(__name__)

LM_EXTRA_HINT = 'pip install -e ".[lm]" from the repository (kenlm + pygtrie)'
LM_MODULES = ("kenlm", "pygtrie")  # pygtrie: imported by SpeechBrain's kenlm scorer


def absolute_lengths(lengths: Optional[torch.Tensor], batch: int, max_len: int) -> List[int]:
    """Frame counts from ``lengths``: None (all full), integer (absolute) or float (relative, SpeechBrain)."""
    if lengths is None:
        return [max_len] * batch
    lengths = torch.as_tensor(lengths)
    if lengths.numel() != batch:
        raise ValueError(f"{lengths.numel()} lengths for a batch of {batch}")
    if lengths.is_floating_point():
        return relative_to_absolute_lengths(lengths, max_len).tolist()
    return lengths.long().clamp(0, max_len).tolist()


def greedy_decode(log_probs: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                  tokenizer: Optional[CharTokenizer] = None) -> List[str]:
    """Best-path CTC decoding.

    Arguments
    ---------
    log_probs: (B, T, V) log-probabilities (or logits: the arg max is the same).
    lengths: (B,) frame counts (integer dtype) or SpeechBrain relative lengths
        (floating dtype, fraction of T); None = every frame is valid.
    tokenizer: default ``CharTokenizer()`` (blank 0); any tokenizer of ``brq_att_alt.text``.
    """
    tokenizer = tokenizer or CharTokenizer()
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    best = log_probs.argmax(-1).cpu()
    lens = absolute_lengths(lengths, best.shape[0], best.shape[1])
    return [tokenizer.ctc_collapse(best[b, :n]) for b, n in enumerate(lens)]


def missing_lm_modules() -> Tuple[str, ...]:
    """The Python modules that n-gram LM decoding needs (kenlm, pygtrie) and that cannot be imported."""
    missing = []
    for name in LM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return tuple(missing)


def _check_lm_deps():
    missing = missing_lm_modules()
    if missing:
        raise ImportError(f"LM decoding needs the python module(s) {', '.join(missing)}: {LM_EXTRA_HINT}")


@functools.lru_cache(maxsize=None)
def _warn_lm_skipped(missing: Tuple[str, ...]) -> None:
    """One line per process (the cache), however many test sets ask for an LM decoder."""
    logger.warning("n-gram LM decoding skipped: %s not installed (greedy results only); for LM decoding: %s",
                   " and ".join(missing), LM_EXTRA_HINT)


def lm_decoder_or_none(tokenizer: Optional[CharTokenizer], lm_path: Optional[Union[str, Path]],
                       **kwargs) -> Optional["BeamSearchDecoder"]:
    """A ``BeamSearchDecoder`` with the n-gram LM ``lm_path``, or None when there is no LM.

    None when ``lm_path`` is empty, or when kenlm / pygtrie cannot be imported: then one
    warning (per process) names what is missing and how to install it, and the caller
    reports greedy results only. A missing LM *file* is still an error (FileNotFoundError).
    ``kwargs``: ``alpha``, ``beta``, ``beam_size`` ... as in ``BeamSearchDecoder``.
    """
    if lm_path in (None, ""):
        return None
    missing = missing_lm_modules()
    if missing:
        _warn_lm_skipped(missing)
        return None
    return BeamSearchDecoder(tokenizer, lm_path=lm_path, **kwargs)


class BeamSearchDecoder:
    """CTC prefix beam search, optionally with a kenlm word n-gram (shallow fusion).

    Arguments
    ---------
    tokenizer: the tokenizer of the acoustic model (its ``labels`` are the vocab): a
        ``CharTokenizer`` (word separator " ") or a ``SentencePieceTokenizer`` (words start
        with "▁", which ``CTCBeamSearcher`` recognises).
    lm_path: ARPA (``.arpa``) or kenlm binary file; None = no LM (plain CTC beam search).
    alpha: LM weight; beta: word insertion bonus; beam_size: beams kept.
    kwargs: other ``CTCBeamSearcher`` options (``beam_prune_logp``, ``token_prune_min_logp`` ...).

    Call with ``(log_probs (B, T, V), lengths)`` (lengths as in ``greedy_decode``) -> list of str.
    """

    def __init__(self, tokenizer: Optional[CharTokenizer] = None, lm_path: Optional[Union[str, Path]] = None,
                 alpha: float = 0.5, beta: float = 1.0, beam_size: int = 50, **kwargs):
        from speechbrain.decoders.ctc import CTCBeamSearcher

        self.tokenizer = tokenizer or CharTokenizer()
        self.lm_path = None
        if lm_path not in (None, ""):
            lm_path = Path(lm_path).expanduser()
            if not lm_path.is_file():
                raise FileNotFoundError(
                    f"n-gram LM file not found: {lm_path} (give an ARPA or kenlm binary file; "
                    "build one with `python -m brq_att_alt.ngram --text TRANSCRIPTS --out lm.arpa`)"
                )
            _check_lm_deps()
            self.lm_path = str(lm_path)
        self.alpha, self.beta, self.beam_size = alpha, beta, beam_size
        self.searcher = CTCBeamSearcher(
            blank_index=self.tokenizer.blank_index,
            vocab_list=list(self.tokenizer.labels),
            space_token=SPACE,
            kenlm_model_path=self.lm_path,
            alpha=alpha,
            beta=beta,
            beam_size=beam_size,
            **kwargs,
        )

    def __call__(self, log_probs: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> List[str]:
        return self.decode(log_probs, lengths)

    def decode(self, log_probs: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> List[str]:
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
        log_probs = log_probs.detach().float().cpu()
        lens = absolute_lengths(lengths, log_probs.shape[0], log_probs.shape[1])
        out = []
        for b, n in enumerate(lens):
            if n == 0:
                out.append("")
                continue
            hyps = self.searcher(log_probs[b : b + 1, :n])
            text = hyps[0][0].text if hyps and hyps[0] else ""
            out.append(" ".join(text.split()))
        return out


__all__ = ["BeamSearchDecoder", "absolute_lengths", "greedy_decode", "lm_decoder_or_none", "missing_lm_modules"]
