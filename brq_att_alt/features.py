"""Waveforms -> normalised log-mel filterbanks, as in SpeechBrain's BEST-RQ recipe.

80 mel bins, 25 ms window, 10 ms hop at 16 kHz; sentence-level mean/variance
normalisation over each utterance's valid frames; time padded to a multiple of 4
so that the 4x front end maps frames to targets exactly.
"""

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from speechbrain.lobes.features import Fbank

from .padding import lengths_to_padding_mask


class FbankFeatures(nn.Module):
    """(B, samples) waveforms + relative lengths (B,) -> feats (B, T, n_mels), padding mask (B, T)."""

    def __init__(self, n_mels: int = 80, sample_rate: int = 16000, pad_to_multiple: int = 4):
        super().__init__()
        self.fbank = Fbank(n_mels=n_mels, sample_rate=sample_rate)
        self.sample_rate = sample_rate
        self.pad_to_multiple = pad_to_multiple
        self.hop_samples = sample_rate // 100

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames of a waveform of ``num_samples`` samples (STFT with centre padding)."""
        return torch.div(num_samples, self.hop_samples, rounding_mode="floor") + 1

    @torch.no_grad()
    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        feats = self.fbank(wavs.float())  # (B, T, n_mels)
        num_samples = torch.round(wav_lens * wavs.shape[1]).long()
        lengths = self.num_frames(num_samples).clamp(max=feats.shape[1])
        mask = lengths_to_padding_mask(lengths, feats.shape[1])
        valid = (~mask).unsqueeze(-1).float()
        count = lengths.clamp(min=1).view(-1, 1, 1).float()
        mean = (feats * valid).sum(1, keepdim=True) / count
        var = (((feats - mean) * valid) ** 2).sum(1, keepdim=True) / count
        feats = (feats - mean) / torch.sqrt(var + 1e-10) * valid
        pad = (-feats.shape[1]) % self.pad_to_multiple
        if pad:
            feats = F.pad(feats, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=True)
        return feats, mask
