#!/usr/bin/env python
"""Make the synthetic eSpeak NG speech corpus (LibriSpeech layout + labels.csv).

Example:
    python scripts/make_tiny_corpus.py --out data/synth              # default corpus
    python scripts/make_tiny_corpus.py --out /tmp/tiny --speakers 4 \\
        --train-utts 2 --dev-utts 2 --test-utts 2
"""

import argparse
import logging
import sys
import time
from pathlib import Path

try:
    from brq_att_alt.data.synthetic import (
        DEFAULT_NOISE_LEVEL, DEFAULT_NUM_SPEAKERS, DEFAULT_SEED, DEFAULT_UTTS_PER_SPEAKER,
        load_labels, make_synthetic_corpus)
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from brq_att_alt.data.synthetic import (
        DEFAULT_NOISE_LEVEL, DEFAULT_NUM_SPEAKERS, DEFAULT_SEED, DEFAULT_UTTS_PER_SPEAKER,
        load_labels, make_synthetic_corpus)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Synthesise a small LibriSpeech-layout speech corpus with eSpeak NG: "
        "many voices (speaker labels), SLURP-like intent sentences (scenario labels) and "
        "prosody styles (emotion-like labels), listed in <out>/labels.csv.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder of the corpus")
    parser.add_argument("--speakers", type=int, default=DEFAULT_NUM_SPEAKERS,
                        help="number of speakers (voices); every split has every speaker")
    parser.add_argument("--train-utts", type=int,
                        default=DEFAULT_UTTS_PER_SPEAKER["train-clean-100"],
                        help="utterances per speaker in train-clean-100")
    parser.add_argument("--dev-utts", type=int, default=DEFAULT_UTTS_PER_SPEAKER["dev-clean"],
                        help="utterances per speaker in dev-clean")
    parser.add_argument("--test-utts", type=int, default=DEFAULT_UTTS_PER_SPEAKER["test-clean"],
                        help="utterances per speaker in test-clean")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of texts, labels, prosody and noise")
    parser.add_argument("--noise-level", type=float, default=DEFAULT_NOISE_LEVEL,
                        help="std of the white noise floor (full scale 1); 0 for none")
    parser.add_argument("--overwrite", action="store_true",
                        help="regenerate even if a finished corpus with these options exists")
    parser.add_argument("--quiet", action="store_true", help="only print errors")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    out = make_synthetic_corpus(
        args.out, num_speakers=args.speakers,
        utts_per_speaker={"train-clean-100": args.train_utts, "dev-clean": args.dev_utts,
                          "test-clean": args.test_utts},
        seed=args.seed, overwrite=args.overwrite, noise_level=args.noise_level,
    )
    elapsed = time.perf_counter() - start
    rows = load_labels(out)
    minutes = sum(r["duration"] for r in rows) / 60
    if not args.quiet:
        print(f"{out}: {len(rows)} utterances, {minutes:.2f} min of audio, {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
