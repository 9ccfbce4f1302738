#!/usr/bin/env python3
"""MP3S SLURP intent classification, linear probe (see ../slurp_ic.py and hparams/linear.yaml).

    python recipes/MP3S/SLURP_IC/linear/train.py recipes/MP3S/SLURP_IC/linear/hparams/linear.yaml --pretrained_path PATH
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from slurp_ic import main  # noqa: E402

if __name__ == "__main__":
    main(probe="linear")
