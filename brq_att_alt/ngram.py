"""Word n-gram LM in ARPA format from transcripts, in pure Python (no lmplz needed).

Interpolated Kneser-Ney (Chen & Goodman 1998) with one absolute discount per order,
``D = n1 / (n1 + 2 n2)`` from the counts-of-counts (clamped to [0.1, 0.9]):

* the highest order uses raw counts; lower orders use continuation counts (number
  of distinct left words), except n-grams that start with ``<s>`` (raw counts);
* ``p(w | h) = max(c(h w) - D, 0) / c(h .) + gamma(h) p(w | h')`` with
  ``gamma(h) = D N1+(h .) / c(h .)``; unigrams are interpolated with the uniform
  distribution over the vocabulary (words, ``</s>``, ``<unk>``);
* the ARPA file stores the interpolated probabilities and ``gamma`` as back-off
  weights, so every distribution sums to one (kenlm loads it as is).

Sentences are padded as ``<s> w1 ... wn </s>``; text is upper-cased and split on
whitespace, matching ``CharTokenizer``.

CLI::

    python -m brq_att_alt.ngram --text transcripts.txt --order 3 --out lm.arpa
    python -m brq_att_alt.ngram --text train.csv --column wrd --order 4 --out lm.arpa
"""

import argparse
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .csv_files import read_csv

logger = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
Ngram = Tuple[str, ...]


def normalize_transcript(text: str) -> List[str]:
    return text.upper().split()


def _discount(counts: Iterable[int]) -> float:
    n1 = n2 = 0
    for c in counts:
        if c == 1:
            n1 += 1
        elif c == 2:
            n2 += 1
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2.0 * n2), 0.1), 0.9)


def kneser_ney(sentences: Iterable[Sequence[str]], order: int = 3) -> Dict[int, Dict[Ngram, Tuple[float, Optional[float]]]]:
    """{n: {ngram: (log10 prob, log10 backoff or None)}} of an interpolated KN model."""
    if order < 2:
        raise ValueError(f"order must be >= 2 (kenlm loads bigram models and up), got {order}")
    raw: Dict[int, Dict[Ngram, int]] = {n: defaultdict(int) for n in range(1, order + 1)}
    num_sentences = 0
    for words in sentences:
        words = list(words)
        if not words:
            continue
        num_sentences += 1
        padded = [BOS] + words + [EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                raw[n][tuple(padded[i : i + n])] += 1
    if num_sentences == 0:
        raise ValueError("No non-empty sentence to build an n-gram LM from")

    # adjusted counts: raw for the top order and <s>-initial n-grams, continuation otherwise
    adjusted: Dict[int, Dict[Ngram, int]] = {order: dict(raw[order])}
    for n in range(order - 1, 0, -1):
        cont: Dict[Ngram, int] = defaultdict(int)
        for gram in raw[n + 1]:
            cont[gram[1:]] += 1
        adjusted[n] = {g: (c if g[0] == BOS else cont.get(g, 0)) for g, c in raw[n].items()}
    adjusted[1].pop((BOS,), None)
    discounts = {n: _discount(adjusted[n].values()) for n in adjusted}

    vocab = sorted({g[0] for g in adjusted[1]} | {EOS, UNK})
    probs: Dict[int, Dict[Ngram, float]] = {}
    gammas: Dict[int, Dict[Ngram, float]] = {}

    # unigrams, interpolated with the uniform distribution
    total = sum(adjusted[1].values())
    d = discounts[1]
    types = sum(1 for c in adjusted[1].values() if c > 0)
    uniform = (d * types / total) / len(vocab)
    probs[1] = {(w,): max(adjusted[1].get((w,), 0) - d, 0.0) / total + uniform for w in vocab}

    for n in range(2, order + 1):
        d = discounts[n]
        ctx_total: Dict[Ngram, int] = defaultdict(int)
        ctx_types: Dict[Ngram, int] = defaultdict(int)
        for gram, c in adjusted[n].items():
            ctx_total[gram[:-1]] += c
            ctx_types[gram[:-1]] += 1
        gammas[n - 1] = {h: d * ctx_types[h] / ctx_total[h] for h in ctx_total}
        probs[n] = {}
        for gram, c in adjusted[n].items():
            h = gram[:-1]
            lower = _interpolated(gram[1:], probs, gammas)
            probs[n][gram] = max(c - d, 0.0) / ctx_total[h] + gammas[n - 1][h] * lower

    model: Dict[int, Dict[Ngram, Tuple[float, Optional[float]]]] = {}
    for n in range(1, order + 1):
        bows = gammas.get(n, {})
        entries = {}
        grams = list(probs[n])
        if n == 1:
            grams = [(BOS,)] + grams
        for gram in grams:
            p = -99.0 if gram == (BOS,) else math.log10(probs[n][gram])
            bow = None
            if n < order and gram[-1] != EOS:
                bow = math.log10(bows[gram]) if gram in bows else 0.0
            entries[gram] = (p, bow)
        model[n] = entries
    return model


def _interpolated(gram: Ngram, probs, gammas) -> float:
    """p(w | h) of the model being built, for a (possibly unseen) n-gram whose lower orders are done."""
    n = len(gram)
    if gram in probs[n]:
        return probs[n][gram]
    if n == 1:
        return probs[1][(UNK,)]
    gamma = gammas.get(n - 1, {}).get(gram[:-1], 1.0)
    return gamma * _interpolated(gram[1:], probs, gammas)


def write_arpa(model: Dict[int, Dict[Ngram, Tuple[float, Optional[float]]]], path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = max(model)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\\data\\\n")
        for n in range(1, order + 1):
            fh.write(f"ngram {n}={len(model[n])}\n")
        for n in range(1, order + 1):
            fh.write(f"\n\\{n}-grams:\n")
            for gram in sorted(model[n]):
                p, bow = model[n][gram]
                line = f"{p:.6f}\t{' '.join(gram)}"
                if bow is not None:
                    line += f"\t{bow:.6f}"
                fh.write(line + "\n")
        fh.write("\n\\end\\\n")
    return path


def build_arpa(transcripts: Iterable[str], out_path: Union[str, Path], order: int = 3) -> Path:
    """Write an interpolated Kneser-Ney ARPA LM of the given order; returns its path."""
    model = kneser_ney((normalize_transcript(t) for t in transcripts), order)
    path = write_arpa(model, out_path)
    logger.info("Wrote %d-gram LM (%s) to %s", order,
                ", ".join(f"{len(model[n])} {n}-grams" for n in sorted(model)), path)
    return path


def read_transcripts(path: Union[str, Path], column: str = "wrd") -> List[str]:
    """Transcripts from a text file (one per line) or from the ``column`` of a CSV manifest."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Transcript file not found: {path}")
    if path.suffix.lower() == ".csv":
        return [row[column] for row in read_csv(path, required=[column]) if row[column].strip()]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build an interpolated Kneser-Ney ARPA LM from transcripts.")
    parser.add_argument("--text", nargs="+", required=True,
                        help="text file(s) with one transcript per line, or CSV manifest(s)")
    parser.add_argument("--column", default="wrd", help="CSV column holding the transcript (default wrd)")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--out", required=True, help="output .arpa file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    texts = []
    for path in args.text:
        texts += read_transcripts(path, args.column)
    build_arpa(texts, args.out, args.order)
    print(f"{args.out}: {args.order}-gram LM from {len(texts)} transcripts")


if __name__ == "__main__":
    main()
