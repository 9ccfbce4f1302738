"""BEST-RQ span masking on filterbank frames.

One mask for the whole batch, sized by its shortest utterance (as SpeechBrain's
``compute_mask``): ``num_mask = int(mask_prob * min_len + U(0, 1))`` spans (at least
one) start at distinct multiples of ``span`` frames, each covering ``span`` frames.
Masked frames are replaced by N(0, noise_std^2) noise. With 4x subsampling and
span 4, a masked span is exactly one encoder frame.
"""

from typing import Optional, Tuple

import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks


def compute_span_mask(
    num_frames: int,
    min_len: int,
    mask_prob: float = 0.15,
    span: int = 4,
    generator: Optional[torch.Generator] = None,
    device=None,
) -> torch.Tensor:
    """Bool mask (num_frames,) of masked fbank frames, True = masked.

    ``min_len`` is the valid length (frames) of the batch's shortest utterance.
    """
    num_spans = max(min_len // span, 1)
    u = torch.rand((), generator=generator).item()
    num_mask = min(max(int(mask_prob * min_len + u), 1), num_spans)
    starts = torch.randperm(num_spans, generator=generator)[:num_mask] * span
    mask = torch.zeros(num_frames, dtype=torch.bool)
    for offset in range(span):
        mask[(starts + offset).clamp(max=num_frames - 1)] = True
    return mask.to(device) if device is not None else mask


def apply_span_mask(
    feats: torch.Tensor,
    padding_mask: torch.Tensor,
    mask_prob: float = 0.15,
    span: int = 4,
    noise_std: float = 0.1,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mask feats (B, T, n_mels) -> (masked feats, frame mask (T,) bool True = masked)."""
    lengths = (~padding_mask).sum(dim=1)
    frame_mask = compute_span_mask(
        feats.shape[1], int(lengths.min()), mask_prob, span, generator, device=feats.device
    )
    noise = torch.randn(feats.shape, generator=generator).to(feats) * noise_std
    masked = torch.where(frame_mask.view(1, -1, 1), noise, feats)
    return masked, frame_mask


def encoder_frame_mask(frame_mask: torch.Tensor, stack: int = 4) -> torch.Tensor:
    """Fbank-frame mask (T,) -> encoder-frame mask (T / stack,): True where a frame of the
    stacked block is masked. T must be a multiple of ``stack`` (FbankFeatures pads it)."""
    return frame_mask.view(-1, stack).any(dim=1)


@register_checkpoint_hooks
class SpanMasker:
    """Span masking with its own random generator, saved in checkpoints.

    Keeping the generator state in the checkpoint makes a resumed run draw the
    same masks as an uninterrupted one.
    """

    def __init__(self, mask_prob: float = 0.15, span: int = 4, noise_std: float = 0.1, seed: int = 0):
        self.mask_prob, self.span, self.noise_std = mask_prob, span, noise_std
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, feats: torch.Tensor, padding_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, n_mels) -> (masked feats, frame mask (T,) True = masked)."""
        return apply_span_mask(feats, padding_mask, self.mask_prob, self.span, self.noise_std, self.generator)

    @mark_as_saver
    def _save(self, path):
        torch.save(self.generator.get_state(), path)

    @mark_as_loader
    def _load(self, path, end_of_epoch=False):
        del end_of_epoch
        self.generator.set_state(torch.load(path))
