"""The contract every registered mixer must keep (issue 2, section 2)."""

import pytest
import torch

from brq_att_alt.mixers import MIXERS, build_mixer
from helpers import padded_batch

ALL = list(MIXERS) + ["mhsa-sdpa"]


def make(name, d_model=32, nhead=4):
    torch.manual_seed(0)
    if name == "mhsa-sdpa":
        return build_mixer("mhsa", d_model=d_model, nhead=nhead, implementation="sdpa")
    return build_mixer(name, d_model=d_model, nhead=nhead)


def test_registry_names():
    assert set(MIXERS) == {"mhsa", "hypermixing", "fastformer", "summarymixing", "mamba", "pom"}


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        build_mixer("transformer-xxl", d_model=16, nhead=2)
    for name in MIXERS:
        assert name in str(err.value)


def test_unknown_option_is_not_ignored():
    with pytest.raises(TypeError, match="pom"):
        build_mixer("pom", d_model=16, nhead=2, not_an_option=3)


@pytest.mark.parametrize("name", ALL)
def test_shape_and_no_padding_mask(name):
    mixer = make(name).eval()
    x = torch.randn(2, 13, 32)
    y = mixer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert torch.allclose(mixer(x, key_padding_mask=torch.zeros(2, 13, dtype=torch.bool)), y, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_padding_exact(name):
    """A sequence alone == the same sequence right-padded in a longer batch (fp32, atol 1e-5)."""
    mixer = make(name).eval()
    torch.manual_seed(1)
    seqs = [torch.randn(T, 32) for T in (9, 17, 4)]
    x, mask = padded_batch(seqs)
    with torch.no_grad():
        batch_out = mixer(x, key_padding_mask=mask)
        for i, s in enumerate(seqs):
            alone = mixer(s.unsqueeze(0))
            assert torch.allclose(batch_out[i, : s.shape[0]], alone[0], atol=1e-5), name
            assert torch.all(batch_out[i, s.shape[0]:] == 0), "padded output frames must be zero"


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_parameter(name):
    mixer = make(name).train()
    x, mask = padded_batch([torch.randn(T, 32) for T in (11, 6)])
    mixer(x.requires_grad_(), key_padding_mask=mask).pow(2).sum().backward()
    for pname, p in mixer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient for {pname}"


# The references' dropout inside each mixer (the Conformer adds none on the mixer branch):
# MHSA on its attention weights, Fastformer on its pooled summaries, the others nothing.
DROPOUT_INSIDE = {"mhsa": True, "mhsa-sdpa": True, "fastformer": True,
                  "hypermixing": False, "summarymixing": False, "mamba": False, "pom": False}


@pytest.mark.parametrize("name", ALL)
def test_no_dropout_on_the_output(name):
    """dropout=0.5 in train mode: no valid output element is zeroed (an output dropout would zero
    half of them); the mixers whose reference has no dropout give their eval output."""
    assert set(DROPOUT_INSIDE) == set(ALL)
    torch.manual_seed(0)
    kwargs = {"implementation": "sdpa"} if name == "mhsa-sdpa" else {}
    mixer = build_mixer(name.split("-")[0], d_model=32, nhead=4, dropout=0.5, **kwargs)
    x, mask = padded_batch([torch.randn(T, 32) for T in (40, 25)])
    with torch.no_grad():
        train = mixer.train()(x, key_padding_mask=mask)
        evaluation = mixer.eval()(x, key_padding_mask=mask)
    assert (train[~mask] == 0).float().mean() == 0, name
    assert torch.equal(train, evaluation) != DROPOUT_INSIDE[name], name


@pytest.mark.parametrize("name", ALL)
def test_inference_path_equals_the_autograd_path(name):
    """Mixers compute in place where autograd is off (inference): the same output as with
    autograd on, padded batch included."""
    mixer = make(name).eval()
    x, mask = padded_batch([torch.randn(T, 32) for T in (11, 6)])
    with torch.no_grad():
        fast = mixer(x, key_padding_mask=mask)
    with torch.inference_mode():
        inference = mixer(x, key_padding_mask=mask)
    recorded = mixer(x.clone().requires_grad_(), key_padding_mask=mask)
    assert recorded.requires_grad
    assert torch.allclose(fast, recorded.detach(), atol=1e-5), name
    assert torch.equal(fast, inference)
