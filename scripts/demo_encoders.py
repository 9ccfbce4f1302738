#!/usr/bin/env python3
"""Build the BEST-RQ encoder for every mixer and run it on real recordings.

Prints, per mixer: trainable parameters (front end + Conformer + head), the output
shape for a batch of the real recordings, and the forward time on this machine.

    python scripts/demo_encoders.py [--size base|large] [--audio-dir DIR]
"""

import argparse
import time
from pathlib import Path

import torch
from speechbrain.utils.data_utils import batch_pad_right

from brq_att_alt.data import read_audio
from brq_att_alt.features import FbankFeatures
from brq_att_alt.mixers import MIXERS
from brq_att_alt.model import BestRQModel, count_parameters
from brq_att_alt.sizes import TARGET_PARAMS, model_config

DEFAULT_AUDIO = Path(__file__).resolve().parents[1] / "tests" / "samples" / "real_speech"


def load_batch(audio_dir: Path):
    files = sorted(audio_dir.glob("*.wav")) + sorted(audio_dir.glob("*.flac"))
    if not files:
        raise SystemExit(f"No .wav/.flac files in {audio_dir}; pass --audio-dir")
    wavs = [read_audio(f) for f in files]
    batch, wav_lens = batch_pad_right(wavs)
    return batch, wav_lens, sum(len(w) for w in wavs) / 16000


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="base", choices=["base", "large"])
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO)
    parser.add_argument("--mixers", nargs="+", default=list(MIXERS), choices=list(MIXERS))
    args = parser.parse_args()

    wavs, wav_lens, seconds = load_batch(args.audio_dir)
    feats, mask = FbankFeatures()(wavs, wav_lens)
    print(f"{len(wavs)} recordings, {seconds:.1f} s of audio, features {tuple(feats.shape)}; "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"{'mixer':<15}{'d_model':>8}{'params':>10}{'vs ' + args.size + ' target':>18}{'output shape':>20}{'forward s':>11}")
    for name in args.mixers:
        torch.manual_seed(0)
        model = BestRQModel(**model_config(name, args.size)).eval()
        n = count_parameters(model)
        with torch.inference_mode():
            start = time.perf_counter()
            out, out_mask = model.encode(feats, mask)
            elapsed = time.perf_counter() - start
        assert torch.isfinite(out).all()
        off = 100 * (n / TARGET_PARAMS[args.size] - 1)
        print(f"{name:<15}{model.config['d_model']:>8}{n / 1e6:>9.1f}M{off:>+17.1f}%{str(tuple(out.shape)):>20}{elapsed:>11.2f}")


if __name__ == "__main__":
    main()
