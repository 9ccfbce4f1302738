#!/usr/bin/env python3
"""MP3S IEMOCAP emotion recognition, linear probe (see ../iemocap_er.py and hparams/linear.yaml).

    python recipes/MP3S/IEMOCAP_ER/linear/train.py recipes/MP3S/IEMOCAP_ER/linear/hparams/linear.yaml --pretrained_path PATH
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from iemocap_er import main  # noqa: E402

if __name__ == "__main__":
    main(probe="linear")
