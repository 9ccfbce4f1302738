"""Conformer encoder, front end, quantizer and masking."""

import pytest
import torch

from brq_att_alt.conformer import ConformerEncoder
from brq_att_alt.frontend import ConvFrontEnd
from brq_att_alt.masking import apply_span_mask, compute_span_mask, encoder_frame_mask
from brq_att_alt.mixers import MIXERS
from brq_att_alt.model import BestRQModel
from brq_att_alt.quantizer import RandomProjectionQuantizer
from helpers import padded_batch


def small_encoder(mixer, **kw):
    torch.manual_seed(0)
    return ConformerEncoder(num_layers=2, d_model=32, d_ffn=64, nhead=4, kernel_size=7, dropout=0.1, mixer=mixer, **kw)


@pytest.mark.parametrize("mixer", MIXERS)
def test_encoder_padding_exact(mixer):
    enc = small_encoder(mixer).eval()
    seqs = [torch.randn(T, 32) for T in (10, 23, 5)]
    x, mask = padded_batch(seqs)
    with torch.no_grad():
        out, hidden = enc(x, mask, return_hidden=True)
        assert len(hidden) == 3 and all(h.shape == x.shape for h in hidden)
        for i, s in enumerate(seqs):
            alone = enc(s.unsqueeze(0))
            assert torch.allclose(out[i, : len(s)], alone[0], atol=1e-5), mixer


def test_encoder_accepts_factory_and_mixer_kwargs():
    from brq_att_alt.mixers.mhsa import MHSA

    enc = small_encoder(MHSA, mixer_kwargs={"implementation": "sdpa"})
    assert enc.layers[0].mixer.implementation == "sdpa"
    with pytest.raises(TypeError):
        small_encoder("mhsa", mixer_kwargs={"no_such_option": 1})


def test_layerdrop_skips_layers_only_in_training():
    enc = small_encoder("fastformer", layerdrop=0.999)
    x = torch.randn(1, 8, 32)
    _, hidden = enc.train()(x, return_hidden=True)
    assert torch.equal(hidden[0], hidden[-1])  # every layer dropped
    _, hidden = enc.eval()(x, return_hidden=True)
    assert not torch.equal(hidden[0], hidden[-1])


def test_conv_module_sees_neighbours():
    """Valid frames do mix through the convolution (so the padding test is not vacuous)."""
    enc = small_encoder("summarymixing").eval()
    x = torch.randn(1, 12, 32)
    y1 = enc(x)
    x2 = x.clone()
    x2[0, 6] += torch.randn(32)  # not a constant shift: LayerNorm removes those
    assert not torch.allclose(enc(x2)[0, 5], y1[0, 5])


def test_frontend_subsamples_and_is_padding_exact():
    torch.manual_seed(0)
    fe = ConvFrontEnd(n_mels=80, d_model=24).eval()
    seqs = [torch.randn(T, 80) for T in (16, 40, 28)]
    x, mask = padded_batch(seqs)
    out, out_mask = fe(x, mask)
    assert out.shape == (3, 10, 24)
    assert (~out_mask).sum(1).tolist() == [4, 10, 7]
    for i, s in enumerate(seqs):
        alone, _ = fe(s.unsqueeze(0))
        assert torch.allclose(out[i, : alone.shape[1]], alone[0], atol=1e-5)


def test_model_padding_exact_end_to_end():
    torch.manual_seed(0)
    model = BestRQModel("pom", d_model=32, num_layers=2, nhead=4, d_ffn=64, kernel_size=7, codebook_size=64).eval()
    seqs = [torch.randn(T, 80) for T in (24, 48)]
    x, mask = padded_batch(seqs)
    with torch.no_grad():
        out = model(x, mask)["logits"]
        alone = model(seqs[0].unsqueeze(0))["logits"]
    assert out.shape == (2, 12, 64)
    assert torch.allclose(out[0, :6], alone[0], atol=1e-4)


def test_quantizer_deterministic_and_seeded():
    q1, q2, q3 = (RandomProjectionQuantizer(320, 16, 512, seed=s) for s in (7, 7, 8))
    assert torch.equal(q1.P, q2.P) and torch.equal(q1.codebook, q2.codebook)
    assert not torch.equal(q1.P, q3.P)
    assert torch.allclose(q1.codebook.norm(dim=-1), torch.ones(512))
    assert "P" in q1.state_dict() and "codebook" in q1.state_dict()
    assert not list(q1.parameters())
    x = torch.randn(2, 5, 320)
    t = q1(x)
    assert t.shape == (2, 5) and t.dtype == torch.long
    # brute-force nearest neighbour in L2
    z = torch.nn.functional.normalize(x @ q1.P, dim=-1)
    dist = ((z.unsqueeze(-2) - q1.codebook) ** 2).sum(-1)
    assert torch.equal(t, dist.argmin(-1))


def test_span_mask_follows_recipe():
    g = torch.Generator().manual_seed(0)
    mask = compute_span_mask(400, min_len=200, mask_prob=0.15, span=4, generator=g)
    n = int(mask.sum())
    assert n % 4 == 0 and n // 4 in (30, 31)  # int(0.15 * 200 + U) spans of 4
    starts = torch.nonzero(mask).flatten()[::4]
    assert torch.all(starts % 4 == 0) and starts.max() < 200
    feats = torch.randn(2, 400, 80)
    pad = torch.zeros(2, 400, dtype=torch.bool)
    pad[1, 300:] = True
    masked, fmask = apply_span_mask(feats, pad, generator=torch.Generator().manual_seed(0))
    assert torch.equal(masked[:, ~fmask], feats[:, ~fmask])
    assert masked[:, fmask].std() < 0.2  # N(0, 0.1) noise


def test_encoder_frame_mask_marks_masked_blocks():
    mask = compute_span_mask(40, min_len=40, mask_prob=0.15, span=4, generator=torch.Generator().manual_seed(1))
    enc = encoder_frame_mask(mask, 4)
    assert enc.shape == (10,)
    assert torch.equal(enc.repeat_interleave(4), mask)  # spans of 4 aligned on 4: blocks all or nothing
