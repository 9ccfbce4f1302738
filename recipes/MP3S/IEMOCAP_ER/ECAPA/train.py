#!/usr/bin/env python3
"""MP3S IEMOCAP emotion recognition, ECAPA probe (see ../iemocap_er.py and hparams/ECAPA.yaml).

    python recipes/MP3S/IEMOCAP_ER/ECAPA/train.py recipes/MP3S/IEMOCAP_ER/ECAPA/hparams/ECAPA.yaml --pretrained_path PATH
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from iemocap_er import main  # noqa: E402

if __name__ == "__main__":
    main(probe="ECAPA")
