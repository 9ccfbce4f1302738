#!/usr/bin/env bash
# Set up the environment (idempotent) and run the whole test suite, slow tests included.
# Usage: bash scripts/run_tests.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -e ".[dev]"
python -m pytest -q "$@"
