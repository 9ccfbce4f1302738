"""Audio reading with clear errors (soundfile + torchaudio resampling)."""

from functools import lru_cache
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch
import torchaudio


class AudioReadError(RuntimeError):
    """An audio file exists but cannot be decoded (corrupt, truncated, not audio)."""


@lru_cache(maxsize=8)
def resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """torchaudio's windowed-sinc resampler from ``orig`` to ``new`` Hz, built once per pair."""
    return torchaudio.transforms.Resample(orig, new)


def read_audio(path: Union[str, Path], sample_rate: int = 16000, check_finite: bool = False) -> torch.Tensor:
    """Read an audio file as a float32 mono tensor of shape (samples,).

    Multi-channel audio is averaged to mono; audio at another rate is resampled
    to ``sample_rate`` (torchaudio's windowed-sinc resampler).

    Raises FileNotFoundError if the file is missing and AudioReadError (naming
    the file) if it is a folder, cannot be decoded or holds no samples, and, with
    ``check_finite`` (inference), if it holds NaN or Inf samples (float WAV files can).
    Training pipelines leave ``check_finite`` off: their step guard skips such a batch.
    """
    path = Path(path)
    if path.is_dir():
        raise AudioReadError(f"{path} is a folder, not an audio file")
    if not path.is_file():
        raise FileNotFoundError(f"Audio file not found: {path}")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError/...
        raise AudioReadError(f"Cannot decode audio file {path}: {err}") from err
    if data.shape[0] == 0:
        raise AudioReadError(f"Audio file {path} holds no samples")
    if check_finite and not np.isfinite(data).all():
        bad = int(data.shape[0] - np.isfinite(data).all(axis=1).sum())
        raise AudioReadError(f"Audio file {path} holds {bad} non-finite (NaN or Inf) samples: it is damaged")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    wav = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    if int(file_rate) != int(sample_rate):
        with torch.no_grad():
            wav = resampler(int(file_rate), int(sample_rate))(wav.unsqueeze(0))[0]
    return wav.contiguous()
