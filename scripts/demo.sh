#!/usr/bin/env bash
# The demo, on a fresh machine, CPU only (about 10 minutes on 2 cores after the installation):
#   1. install the package and its pinned dependencies,
#   2. build every mixer's base encoder (~95M parameters) and run it on real recordings,
#   3. generate the synthetic espeak-ng corpus (LibriSpeech layout) if absent and pre-train a
#      tiny BEST-RQ Conformer on it without dropout (checkpoint in results/brq_<mixer>_tiny/1000),
#      then print its train / validation loss and masked-frame accuracy per epoch and plot them
#      against the optimizer steps (results/demo/pretraining_curves.png),
#   4. probe the frozen checkpoint and its random-initialised twin (same architecture, random
#      weights) on the five synthetic MP3S tasks, one probe per task, and print the comparison:
#      each metric with its 95% bootstrap interval over the test items
#      (results/demo/probes/comparison.md; every figure in results.md / results.csv there).
# Usage: bash scripts/demo.sh [extra train.py arguments, e.g. --attention_type=mamba]
# Recipes run with one torch thread each (OMP_NUM_THREADS, default 1), two probes at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -e .
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
start=$SECONDS
python scripts/demo_encoders.py
log=$(mktemp)
# no dropout here: 800 steps of the tiny model underfit (training and validation masked accuracy alike),
# and dropout on the CPU costs about a quarter of each step (epochs of 15 s instead of 18-22 s)
python -u train.py hparams/brq_tiny.yaml --dropout=0.0 "$@" | tee "$log"
run=$(tail -n 1 "$log")  # train.py prints its output folder last
rm -f "$log"
python -m brq_att_alt.reproduce curves "$run" --out results/demo/pretraining_curves.png
python recipes/MP3S/run_all.py --pretrained "$run" --tiny --random_twin --recipes demo --output results/demo/probes
echo "demo finished in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s after the installation"
