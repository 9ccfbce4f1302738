"""Small helpers shared by the tests (not a test module)."""

import torch


def padded_batch(seqs):
    """List of (T_i, d) tensors -> right-padded (B, T_max, d) batch and mask (B, T_max)."""
    T = max(s.shape[0] for s in seqs)
    x = torch.zeros(len(seqs), T, seqs[0].shape[1])
    mask = torch.ones(len(seqs), T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, : s.shape[0]] = s
        # garbage, not zeros, in the padding: a leak must show up
        x[i, s.shape[0]:] = 100.0 * torch.randn(T - s.shape[0], s.shape[1])
        mask[i, : s.shape[0]] = False
    return x, mask
