"""Conformer encoder, front end, quantizer and masking."""

import json

import pytest
import torch

from brq_att_alt.conformer import ConformerEncoder, ConformerLayer
from brq_att_alt.frontend import ConvFrontEnd
from brq_att_alt.layers import sinusoidal_positions
from brq_att_alt.masking import apply_span_mask, compute_span_mask, encoder_frame_mask
from brq_att_alt.mixers import MIXERS, mixer_option_names
from brq_att_alt.model import BestRQModel
from brq_att_alt.quantizer import RandomProjectionQuantizer
from helpers import TINY_MODEL, padded_batch


def small_encoder(mixer, **kw):
    torch.manual_seed(0)
    encoder_settings = {k: v for k, v in TINY_MODEL.items() if k != "codebook_size"}
    return ConformerEncoder(**encoder_settings, dropout=0.1, mixer=mixer, **kw)


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


def test_final_norm_eps_is_speechbrains():
    enc = small_encoder("mhsa")
    assert enc.norm.eps == 1e-6 and enc.layers[0].norm.eps == 1e-5  # SpeechBrain's ConformerEncoder / layer


def test_conv_module_sees_neighbours():
    """Valid frames do mix through the convolution (so the padding test is not vacuous)."""
    enc = small_encoder("summarymixing").eval()
    x = torch.randn(1, 12, 32)
    y1 = enc(x)
    x2 = x.clone()
    x2[0, 6] += torch.randn(32)  # not a constant shift: LayerNorm removes those
    assert not torch.allclose(enc(x2)[0, 5], y1[0, 5])


def test_conv_module_equals_its_conv1d_formulation():
    """The convolution module runs as Linear + GLU + channels-last Conv2d: the same values and
    gradients as the Conv1d layers it holds applied as written (LayerNorm, pointwise Conv1d,
    GLU over channels, padded frames zeroed, depthwise Conv1d, LayerNorm, Swish, Linear)."""
    from brq_att_alt.conformer import ConvolutionModule

    torch.manual_seed(0)
    conv = ConvolutionModule(16, 7, 0.0, torch.nn.SiLU)
    x, mask = padded_batch([torch.randn(T, 16) for T in (12, 7)])
    x.requires_grad_()

    def plain(x):
        y = torch.nn.functional.glu(conv.pointwise(conv.norm(x).transpose(1, 2)), dim=1)  # (B, d, T)
        y = conv.depthwise(y.masked_fill(mask.unsqueeze(1), 0.0)).transpose(1, 2)
        return conv.after(y)

    got, want = conv(x, mask), plain(x)
    assert torch.allclose(got, want, atol=1e-5)
    weights = torch.randn_like(got)
    g_got = torch.autograd.grad((got * weights).sum(), [x, *conv.parameters()])
    g_want = torch.autograd.grad((want * weights).sum(), [x, *conv.parameters()])
    for a, b in zip(g_got, g_want):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    with torch.inference_mode():
        assert torch.allclose(conv(x, mask), want, atol=1e-5)


def test_frontend_inference_path_equals_the_autograd_path():
    """The front end pads and activates in place when autograd is off: same output, and
    ConvBlock2d.forward (channels second) equals its channels-last form."""
    torch.manual_seed(0)
    fe = ConvFrontEnd(n_mels=80, d_model=24, dropout=0.1).eval()
    x, mask = padded_batch([torch.randn(T, 80) for T in (40, 28)])
    want, want_mask = fe(x, mask)
    assert want.requires_grad
    with torch.inference_mode():
        got, got_mask = fe(x, mask)
    assert torch.allclose(got, want, atol=1e-5) and torch.equal(got_mask, want_mask)
    block = fe.block1
    feats = torch.randn(2, 1, 40, 80)
    assert torch.allclose(block(feats), block.forward_tfc(feats.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


@pytest.mark.parametrize("mixer", MIXERS)
def test_encoder_inference_path_equals_the_autograd_path(mixer):
    enc = small_encoder(mixer).eval()
    x, mask = padded_batch([torch.randn(T, 32) for T in (10, 6)])
    recorded, hidden = enc(x, mask, return_hidden=True)
    with torch.inference_mode():
        fast, fast_hidden = enc(x, mask, return_hidden=True)
    assert torch.allclose(fast, recorded, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(fast_hidden, hidden))  # no state overwritten


def test_mixer_branch_has_no_dropout():
    """Train mode, dropout 0.5: the Conformer adds the mixer's output to the residual as it is
    (SpeechBrain's Conformer: no dropout on the attention branch), for every mixer."""
    for mixer in MIXERS:
        torch.manual_seed(0)
        layer = ConformerLayer(32, 64, 4, kernel_size=7, dropout=0.5, mixer=mixer).train()
        seen = {}
        layer.ffn1.register_forward_hook(lambda m, i, o: seen.__setitem__("ffn1", o))
        layer.mixer.register_forward_hook(lambda m, i, o: seen.__setitem__("mixer", o))
        layer.conv.register_forward_pre_hook(lambda m, args: seen.__setitem__("conv_in", args[0]))
        x = torch.randn(2, 12, 32)
        with torch.no_grad():
            layer(x)
        assert torch.equal(seen["conv_in"], x + 0.5 * seen["ffn1"] + seen["mixer"]), mixer
        assert not any(isinstance(m, torch.nn.Dropout) for m in layer.mixer.modules()
                       if mixer in ("hypermixing", "summarymixing", "mamba", "pom")), mixer


def test_activation_is_configurable_and_swish_by_default():
    layer = ConformerLayer(32, 64, 4, kernel_size=7)
    acts = [type(m) for m in layer.modules() if isinstance(m, (torch.nn.SiLU, torch.nn.GELU))]
    assert acts == [torch.nn.SiLU] * 3  # FFN, conv module, FFN: Swish as the papers' runs
    layer = ConformerLayer(32, 64, 4, kernel_size=7, activation="gelu")
    assert [type(m) for m in layer.modules() if isinstance(m, (torch.nn.SiLU, torch.nn.GELU))] == [torch.nn.GELU] * 3
    with pytest.raises(ValueError, match="swish"):
        ConformerLayer(32, 64, 4, kernel_size=7, activation="swishh")
    with pytest.raises(ValueError, match="name"):
        BestRQModel("mhsa", d_model=32, num_layers=1, nhead=4, d_ffn=64, activation=torch.nn.GELU)


@pytest.mark.parametrize("mixer, options, expected", [
    ("mhsa", {}, "none"), ("mhsa", {"implementation": "sdpa"}, "sine"), ("hypermixing", {}, "none"),
    ("fastformer", {}, "sine"), ("summarymixing", {}, "sine"), ("mamba", {}, "sine"), ("pom", {}, "sine"),
])
def test_input_position_encoding_auto(mixer, options, expected):
    """"auto": the fixed sin/cos encoding unless the mixer encodes position itself (as the papers' code)."""
    enc = small_encoder(mixer, mixer_kwargs=options)
    assert enc.input_pos_enc == expected
    for choice in ("sine", "none"):
        assert small_encoder(mixer, mixer_kwargs=options, input_pos_enc=choice).input_pos_enc == choice
    with pytest.raises(ValueError, match="auto"):
        small_encoder(mixer, input_pos_enc="learned")


def test_input_position_encoding_is_added_inside_the_encoder_on_valid_frames():
    """Callers of model.encoder (inference) get it too; padded frames stay zero."""
    enc = small_encoder("fastformer").eval()
    x, mask = padded_batch([torch.randn(T, 32) for T in (10, 6)])
    _, hidden = enc(x, mask, return_hidden=True)
    want = (x + sinusoidal_positions(10, 32)).masked_fill(mask.unsqueeze(-1), 0.0)
    assert torch.equal(hidden[0], want)
    no_pe = small_encoder("fastformer", input_pos_enc="none").eval()
    _, hidden = no_pe(x, mask, return_hidden=True)
    assert torch.equal(hidden[0], x.masked_fill(mask.unsqueeze(-1), 0.0))


def test_positions_are_speechbrains():
    from speechbrain.lobes.models.transformer.Transformer import PositionalEncoding

    x = torch.zeros(1, 300, 64)
    assert torch.allclose(sinusoidal_positions(300, 64), PositionalEncoding(64, max_len=400)(x)[0], atol=1e-5)


def test_frontend_is_speechbrains_convolution_front_end():
    """The BEST-RQ recipe's ConvolutionFrontEnd (2 blocks x 1 layer, 128 / 32 channels, k3, s2,
    LayerNorm over (frequency, channels), LeakyReLU, Dropout): same parameters, and with its
    weights the same output on every frame but the first, where SpeechBrain reflects time and
    this front end pads zeros (T a multiple of 4, so the last frame reads no padding)."""
    from speechbrain.lobes.models.convolution import ConvolutionFrontEnd

    torch.manual_seed(0)
    ref = ConvolutionFrontEnd(input_shape=(2, 40, 80), num_blocks=2, num_layers_per_block=1, out_channels=(128, 32),
                              kernel_sizes=(3, 3), strides=(2, 2), residuals=(False, False)).eval()
    ours = ConvFrontEnd(n_mels=80, d_model=24, dropout=0.1).eval()
    assert ours.block1.norm.normalized_shape == (40, 128) and ours.block2.norm.normalized_shape == (20, 32)
    blocks = [ours.block1, ours.block2]
    assert sum(p.numel() for b in blocks for p in b.parameters()) == sum(p.numel() for p in ref.parameters())
    drops = [m.p for m in ours.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.1, 0.1, 0.1]  # after each block (SpeechBrain's) and after the Linear
    refs = [ref.convblock_0.convs, ref.convblock_1.convs]
    with torch.no_grad():
        for block, seq in zip(blocks, refs):
            block.conv.weight.copy_(seq.conv_0.conv.weight.transpose(2, 3))  # SpeechBrain's kernel is (freq, time)
            block.conv.bias.copy_(seq.conv_0.conv.bias)
            block.norm.weight.copy_(torch.rand_like(block.norm.weight))  # not the identity: test the layout
            block.norm.bias.copy_(torch.randn_like(block.norm.bias))
            seq.norm_0.norm.weight.copy_(block.norm.weight)
            seq.norm_0.norm.bias.copy_(block.norm.bias)
        feats = torch.randn(2, 40, 80)
        want = ref(feats)  # (B, T/4, F/4, C)
        got = ours.block2(ours.block1(feats.unsqueeze(1))).permute(0, 2, 3, 1)
    assert got.shape == want.shape == (2, 10, 20, 32)
    assert torch.allclose(got[:, 1:], want[:, 1:], atol=1e-5)
    assert not torch.allclose(got[:, 0], want[:, 0], atol=1e-5)


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
    model = BestRQModel("pom", **TINY_MODEL).eval()
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


def test_config_records_every_choice_and_rebuilds_the_same_model(tmp_path):
    """brq_model.json (model.config) rebuilds exactly the trained model: resolved position
    encoding, activation, every mixer option with its default."""
    torch.manual_seed(0)
    kw = TINY_MODEL
    for mixer in MIXERS:
        model = BestRQModel(mixer, **kw).eval()
        cfg = json.loads(json.dumps(model.config))
        assert cfg["activation"] == "swish" and cfg["input_pos_enc"] in ("sine", "none")
        assert cfg["input_pos_enc"] == model.encoder.input_pos_enc
        assert set(cfg["mixer_kwargs"]) == mixer_option_names(mixer)
        rebuilt = BestRQModel(**cfg).eval()
        assert rebuilt.config == cfg
        rebuilt.load_state_dict(model.state_dict())
        feats = torch.randn(1, 24, 80)
        with torch.no_grad():
            assert torch.equal(rebuilt(feats)["logits"], model(feats)["logits"]), mixer
    pom = BestRQModel("pom", **kw).config["mixer_kwargs"]
    assert pom == {"degree": 3, "expansion": 2, "causal": False, "groups": 2, "output_norm": True}
    assert BestRQModel("mamba", **kw).config["mixer_kwargs"]["rmsnorm_residual"] is True
    summ = BestRQModel("summarymixing", **kw).config["mixer_kwargs"]
    assert summ["summary_hid_dim"] == [1024] and summ["summary_out_dim"] is None and summ["activation"] == "swish"
    with pytest.raises(TypeError, match="degre"):
        BestRQModel("pom", mixer_kwargs={"degre": 2}, **kw)


def test_checkpoint_of_the_old_layout_is_refused_with_a_message():
    model = BestRQModel("mhsa", **{**TINY_MODEL, "num_layers": 1})
    state = model.state_dict()
    state["frontend.block1.norm.weight"] = torch.ones(128)  # channel-only LayerNorm of the old front end
    state["frontend.block1.norm.bias"] = torch.zeros(128)
    with pytest.raises(RuntimeError, match="pre-train it again"):
        model.load_state_dict(state)
