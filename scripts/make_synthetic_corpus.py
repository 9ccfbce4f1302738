#!/usr/bin/env python
"""Make the synthetic eSpeak NG speech corpus (LibriSpeech layout + labels.csv).

By default every LibriSpeech split the recipes read (train-clean-100, train-clean-360,
train-other-500, dev-clean, dev-other, test-clean, test-other), 24 speakers: the corpus
the recipes generate on first use.

Examples:
    python scripts/make_synthetic_corpus.py --out data/synthetic_corpus     # the default corpus
    python scripts/make_synthetic_corpus.py --out /tmp/tiny --speakers 4 \\
        --splits train-clean-100 dev-clean test-clean --utts-per-speaker 2
    python scripts/make_synthetic_corpus.py --out /tmp/c --utts-per-speaker train-clean-100=8 dev-clean=2
"""

import argparse
import logging
import sys
import time
from pathlib import Path

from brq_att_alt.data.synthetic import (
    DEFAULT_NOISE_LEVEL, DEFAULT_NUM_SPEAKERS, DEFAULT_SEED, DEFAULT_UTTS_PER_SPEAKER, KNOWN_SPLITS, load_labels,
    make_synthetic_corpus,
)


def utts_per_speaker(splits, counts):
    """``--splits`` and ``--utts-per-speaker`` (None, ["N"] or ["SPLIT=N", ...]) -> {split: count}."""
    if not counts:
        return {s: DEFAULT_UTTS_PER_SPEAKER[s] for s in splits or DEFAULT_UTTS_PER_SPEAKER}
    if len(counts) == 1 and "=" not in counts[0]:
        return {s: int(counts[0]) for s in splits or DEFAULT_UTTS_PER_SPEAKER}
    if splits:
        raise ValueError("give the splits either with --splits or as SPLIT=N in --utts-per-speaker, not both")
    out = {}
    for item in counts:
        split, sep, n = item.partition("=")
        if not sep or not n.strip().isdigit():
            raise ValueError(f"--utts-per-speaker {item!r}: expected SPLIT=N (or one number N)")
        out[split.strip()] = int(n)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Synthesise a LibriSpeech-layout speech corpus with eSpeak NG: "
        "many voices (speaker labels), SLURP-like intent sentences (scenario labels) and "
        "prosody styles (emotion-like labels), listed in <out>/labels.csv.",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder of the corpus")
    parser.add_argument("--speakers", type=int, default=DEFAULT_NUM_SPEAKERS,
                        help="number of speakers (voices); every split has every speaker "
                             f"(default {DEFAULT_NUM_SPEAKERS})")
    parser.add_argument("--splits", nargs="+", choices=KNOWN_SPLITS, default=None, metavar="SPLIT",
                        help="LibriSpeech splits to write (default: all seven)")
    parser.add_argument("--utts-per-speaker", nargs="+", default=None, metavar="N|SPLIT=N",
                        help="utterances per speaker: one number for every split, or SPLIT=N for each split "
                             "to write (default: " + " ".join(f"{k}={v}" for k, v in DEFAULT_UTTS_PER_SPEAKER.items())
                             + ")")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of texts, labels, prosody and noise (default {DEFAULT_SEED})")
    parser.add_argument("--noise-level", type=float, default=DEFAULT_NOISE_LEVEL,
                        help=f"std of the white noise floor (full scale 1); 0 for none (default {DEFAULT_NOISE_LEVEL})")
    parser.add_argument("--overwrite", action="store_true",
                        help="regenerate even if a finished corpus with these options exists")
    parser.add_argument("--quiet", action="store_true", help="only print errors")
    args = parser.parse_args(argv)
    try:
        counts = utts_per_speaker(args.splits, args.utts_per_speaker)
    except ValueError as err:
        parser.error(str(err))

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    out = make_synthetic_corpus(args.out, num_speakers=args.speakers, utts_per_speaker=counts, seed=args.seed,
                                overwrite=args.overwrite, noise_level=args.noise_level)
    elapsed = time.perf_counter() - start
    rows = load_labels(out)
    minutes = sum(r["duration"] for r in rows) / 60
    if not args.quiet:
        splits = sorted({r["split"] for r in rows}, key=KNOWN_SPLITS.index)
        print(f"{out}: {len(rows)} utterances ({', '.join(splits)}), {minutes:.2f} min of audio, {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
