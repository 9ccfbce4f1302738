#!/usr/bin/env bash
# The demo, on a fresh machine, CPU only:
#   1. install the package and its pinned dependencies,
#   2. build every mixer's base encoder and run it on the real recordings,
#   3. generate the synthetic espeak-ng corpus (LibriSpeech layout) if absent and
#      pre-train a tiny BEST-RQ Conformer on it, leaving a checkpoint in
#      results/brq_<mixer>_tiny/1000/save for the downstream recipes.
# Usage: bash scripts/demo.sh [extra train.py arguments, e.g. --attention_type=mamba]
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -e .
python scripts/demo_encoders.py
python train.py hparams/brq_tiny.yaml "$@"
