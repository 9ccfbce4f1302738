"""Padding helpers shared by every mixer and by the encoder.

Convention used everywhere in this package: a padding mask is a bool tensor of
shape (B, T) where ``True`` marks a padded frame. ``None`` means "no padding".
"""

from typing import Optional

import torch


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Absolute lengths (B,) in frames -> padding mask (B, max_len), True = padded."""
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) >= lengths.to(steps.device).unsqueeze(1)


def relative_to_absolute_lengths(rel_lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """SpeechBrain relative lengths (B,) in [0, 1] -> absolute lengths (B,) in frames (long).

    ``round(rel_len * max_len)`` as in SpeechBrain, kept within [1, max_len].
    """
    return torch.round(torch.as_tensor(rel_lens).double() * max_len).long().clamp(min=1, max=max_len)


def relative_lengths_to_padding_mask(rel_lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """SpeechBrain relative lengths (B,) in [0, 1] -> padding mask (B, max_len), True = padded."""
    return lengths_to_padding_mask(relative_to_absolute_lengths(rel_lens, max_len), max_len)


def zero_padded(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Set padded frames of x (B, T, ...) to zero; ``mask`` None leaves x as is."""
    if mask is None:
        return x
    keep = (~mask).to(x.dtype)
    return x * keep.view(*keep.shape, *([1] * (x.dim() - 2)))


def masked_mean(x: torch.Tensor, mask: Optional[torch.Tensor], dim: int = 1) -> torch.Tensor:
    """Mean of x (B, T, ...) over time (``dim``=1) using the valid frames only.

    Returns (B, 1, ...) so that it broadcasts back over time.
    """
    if mask is None:
        return x.mean(dim=dim, keepdim=True)
    x = zero_padded(x, mask)
    count = (~mask).sum(dim=1).clamp(min=1).to(x.dtype)
    count = count.view(-1, *([1] * (x.dim() - 1)))
    return x.sum(dim=dim, keepdim=True) / count


def masked_softmax(scores: torch.Tensor, mask: Optional[torch.Tensor], dim: int = 1) -> torch.Tensor:
    """Softmax of scores (B, T, ...) over time that gives padded frames weight 0."""
    if mask is None:
        return torch.softmax(scores, dim=dim)
    fill = torch.finfo(scores.dtype).min
    m = mask.view(*mask.shape, *([1] * (scores.dim() - 2)))
    return torch.softmax(scores.masked_fill(m, fill), dim=dim).masked_fill(m, 0.0)


def reverse_padded(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Reverse each sequence of x (B, T, ...) in time *within its own length*.

    Valid frames t < L_b go to L_b - 1 - t; padded frames stay where they are.
    Applying it twice gives x back. With ``mask`` None it is a plain flip.
    """
    if mask is None:
        return torch.flip(x, dims=(1,))
    B, T = mask.shape
    lengths = (~mask).sum(dim=1, keepdim=True)  # (B, 1)
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    index = index.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.gather(x, 1, index)
