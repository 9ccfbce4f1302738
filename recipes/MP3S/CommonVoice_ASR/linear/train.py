#!/usr/bin/env python3
"""MP3S CommonVoice_ASR, linear probe (see ../commonvoice_asr.py, ../../asr.py and hparams/linear.yaml).

    python recipes/MP3S/CommonVoice_ASR/linear/train.py recipes/MP3S/CommonVoice_ASR/linear/hparams/linear.yaml --pretrained_path PATH
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from commonvoice_asr import main  # noqa: E402

if __name__ == "__main__":
    main(probe="linear")
