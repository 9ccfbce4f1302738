#!/usr/bin/env python3
"""MP3S VoxCeleb1 speaker verification, ECAPA probe (see ../voxceleb1_sv.py and hparams/ECAPA.yaml).

    python recipes/MP3S/VoxCeleb1_SV/ECAPA/train.py recipes/MP3S/VoxCeleb1_SV/ECAPA/hparams/ECAPA.yaml --pretrained_path PATH
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from voxceleb1_sv import main  # noqa: E402

if __name__ == "__main__":
    main(probe="ECAPA")
