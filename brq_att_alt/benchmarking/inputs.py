"""Shape and precision of the benchmark inputs.

Random normalised filterbanks (B, 100 * seconds, 80), time padded to a multiple of 4;
fp16 / bf16 run under autocast (fp32 weights).
"""

import torch

N_MELS = 80
FRAMES_PER_SECOND = 100  # 10 ms hop
PAD_MULTIPLE = 4
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def num_frames(seconds: float) -> int:
    """Filterbank frames of ``seconds`` of audio (10 ms hop), padded to a multiple of 4."""
    T = max(int(round(FRAMES_PER_SECOND * seconds)), PAD_MULTIPLE)
    return T + (-T) % PAD_MULTIPLE
