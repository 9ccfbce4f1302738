#!/usr/bin/env bash
# The demo, on a fresh machine, CPU only:
#   1. install the package and its pinned dependencies,
#   2. build every mixer's base encoder (~95M parameters) and run it on real recordings,
#   3. generate the synthetic espeak-ng corpus (LibriSpeech layout) if absent and pre-train
#      a tiny BEST-RQ Conformer on it (checkpoint in results/brq_<mixer>_tiny/1000),
#   4. probe the frozen checkpoint on the five MP3S tasks (tiny setting) and write the
#      results table to results/mp3s_tiny/results.md.
# Usage: bash scripts/demo.sh [extra train.py arguments, e.g. --attention_type=mamba]
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -e .
python scripts/demo_encoders.py
log=$(mktemp)
python -u train.py hparams/brq_tiny.yaml "$@" | tee "$log"
run=$(tail -n 1 "$log")  # train.py prints its output folder last
rm -f "$log"
python recipes/MP3S/run_all.py --pretrained "$run" --tiny --output results/mp3s_tiny
cat results/mp3s_tiny/results.md
