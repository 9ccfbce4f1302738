#!/usr/bin/env python3
"""MP3S LibriSpeech_ASR, ContextNet probe (see ../librispeech_asr.py, ../../asr.py and hparams/ContextNet.yaml).

    python recipes/MP3S/LibriSpeech_ASR/ContextNet/train.py recipes/MP3S/LibriSpeech_ASR/ContextNet/hparams/ContextNet.yaml --pretrained_path PATH
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from librispeech_asr import main  # noqa: E402

if __name__ == "__main__":
    main(probe="ContextNet")
