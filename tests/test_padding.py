import pytest
import torch

from brq_att_alt.padding import (
    lengths_to_padding_mask,
    masked_mean,
    masked_softmax,
    relative_lengths_to_padding_mask,
    reverse_padded,
)


def test_lengths_to_mask():
    mask = lengths_to_padding_mask(torch.tensor([3, 1]), 4)
    assert mask.tolist() == [[False, False, False, True], [False, True, True, True]]
    rel = relative_lengths_to_padding_mask(torch.tensor([1.0, 0.5]), 4)
    assert rel.tolist() == [[False] * 4, [False, False, True, True]]


def test_masked_mean_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[False, False, True]])
    assert masked_mean(x, mask).item() == 2.0
    assert masked_mean(x, None).item() == pytest.approx(104.0 / 3)


def test_masked_softmax_zero_on_padding():
    s = torch.tensor([[0.0, 0.0, 50.0]])
    p = masked_softmax(s, torch.tensor([[False, False, True]]))
    assert torch.allclose(p, torch.tensor([[0.5, 0.5, 0.0]]))


def test_reverse_within_length_and_involution():
    x = torch.arange(10.0).view(2, 5, 1)
    mask = torch.tensor([[False] * 5, [False, False, False, True, True]])
    r = reverse_padded(x, mask)
    assert r[0, :, 0].tolist() == [4, 3, 2, 1, 0]
    assert r[1, :, 0].tolist() == [7, 6, 5, 8, 9]
    assert torch.equal(reverse_padded(r, mask), x)
