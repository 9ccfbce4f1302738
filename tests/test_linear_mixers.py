"""The four linear-time mixers: HyperMixing, Fastformer, SummaryMixing, PoM.

Besides the generic contract (shape, padding-exactness, gradients), each mixer is
compared with a naive, unbatched, loop-based re-implementation of its formula in
REFERENCE.md, written here from the module's weights. Everything is tiny: CPU only.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from brq_att_alt.mixers.fastformer import Fastformer
from brq_att_alt.mixers.hypermixing import HyperMixing, sinusoidal_positions
from brq_att_alt.mixers.pom import PolynomialMixer
from brq_att_alt.mixers.summarymixing import SummaryMixing
from helpers import padded_batch

D = 16
CASES = {
    "hypermixing": lambda: HyperMixing(D, 2, hypernet_size=8),
    "hypermixing-tied": lambda: HyperMixing(D, 2, hypernet_size=8, tied=True),
    "fastformer": lambda: Fastformer(D, 2),
    "summarymixing": lambda: SummaryMixing(
        D, 2, local_proj_hid_dim=[8], local_proj_out_dim=8, summary_hid_dim=[12], summary_out_dim=6
    ),
    "summarymixing-lite": lambda: SummaryMixing(D, 2, summary_hid_dim=[12, 8], summary_out_dim=6, mode="lite"),
    "pom": lambda: PolynomialMixer(D, 2),
    "pom-dense": lambda: PolynomialMixer(D, 1, degree=4, expansion=1, groups=1),
    "pom-causal": lambda: PolynomialMixer(D, 2, causal=True),
    "pom-4-groups-no-norm": lambda: PolynomialMixer(D, 8, groups=4, output_norm=False),
}


def make(name):
    """A case with all parameters redrawn N(0, 0.3^2): non-zero biases, visible mixing at this scale."""
    torch.manual_seed(0)
    mixer = CASES[name]()
    with torch.no_grad():
        for p in mixer.parameters():
            p.normal_(0.0, 0.3)
    return mixer.eval()


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", CASES)
def test_shape(name):
    y = make(name)(torch.randn(2, 7, D))
    assert y.shape == (2, 7, D) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", CASES)
def test_padding_exact(name):
    mixer = make(name)
    seqs = [torch.randn(T, D) for T in (10, 6, 3)]
    x, mask = padded_batch(seqs)
    with torch.no_grad():
        out = mixer(x, key_padding_mask=mask)
        for i, s in enumerate(seqs):
            alone = mixer(s.unsqueeze(0))[0]
            assert torch.allclose(out[i, : len(s)], alone, atol=1e-5), (name, i)
            assert torch.all(out[i, len(s):] == 0)


@pytest.mark.parametrize("name", CASES)
def test_gradients_reach_every_parameter(name):
    mixer = make(name).train()
    x, mask = padded_batch([torch.randn(T, D) for T in (9, 5)])
    mixer(x, key_padding_mask=mask).pow(2).sum().backward()
    for pname, p in mixer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient for {pname}"


@pytest.mark.parametrize("name", CASES)
def test_padded_content_never_reaches_valid_frames(name):
    mixer = make(name)
    x, mask = padded_batch([torch.randn(T, D) for T in (10, 4)])
    other = x.clone()
    other[mask] = 1e4 * torch.randn(int(mask.sum()), D)
    with torch.no_grad():
        a, b = mixer(x, key_padding_mask=mask), mixer(other, key_padding_mask=mask)
    assert torch.equal(a[~mask], b[~mask])


@pytest.mark.parametrize("name", CASES)
def test_mixing_is_global(name):
    """Changing frame 0 changes the output of every other frame (causal PoM: later frames)."""
    mixer = make(name)
    x = torch.randn(1, 8, D)
    other = x.clone()
    other[0, 0] = torch.randn(D)
    with torch.no_grad():
        change = (mixer(x) - mixer(other))[0, 1:].abs().amax(dim=-1)
    assert torch.all(change > 1e-4), change


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


def test_largest_tensor_detects_a_quadratic_op():
    x = torch.randn(1, 256, D)
    with LargestTensor() as rec:
        torch.softmax(x @ x.transpose(1, 2), dim=-1) @ x
    assert rec.numel >= 256 * 256


@pytest.mark.parametrize("name", CASES)
def test_no_T_by_T_tensor(name):
    """Forward and backward at T = 256 never produce a tensor with T * T elements."""
    mixer = make(name).train()
    x, mask = padded_batch([torch.randn(T, D) for T in (256, 200)])
    x = x[:1].requires_grad_()
    with LargestTensor() as rec:
        mixer(x, key_padding_mask=mask[:1]).sum().backward()
    assert rec.numel < 256 * 256, rec.numel


# ----------------------------------------------------------------------------- naive references


def dense(layer):
    """BlockLinear -> its dense (out, in) weight matrix (block-diagonal) and (out,) bias."""
    return torch.block_diag(*layer.weight.transpose(1, 2)), layer.bias.flatten()


def layer_norm(v, norm):
    return (v - v.mean()) / torch.sqrt(v.var(unbiased=False) + norm.eps) * norm.weight + norm.bias


def naive_positions(T, d):
    pe = torch.zeros(T, d)
    for t in range(T):
        for i in range(0, d, 2):
            pe[t, i] = math.sin(t / 10000 ** (i / d))
            pe[t, i + 1] = math.cos(t / 10000 ** (i / d))
    return pe


def naive_hypermixing(m, x):
    """Per head: W = fc2(gelu(fc1(x_t + p_t))) row by row, then Y_h = W2 gelu(W1^T X_h); LayerNorm."""
    T, d = x.shape
    H, dh = m.nhead, d // m.nhead
    z = x + naive_positions(T, d)
    gens = [m.w1_gen, m.w1_gen if m.w2_gen is None else m.w2_gen]
    heads = []
    for h in range(H):
        c = slice(h * dh, (h + 1) * dh)
        W = []
        for gen in gens:
            rows = []
            for t in range(T):
                hid = F.gelu(z[t, c] @ gen.fc1.weight[h] + gen.fc1.bias[h])
                rows.append(hid @ gen.fc2.weight[h] + gen.fc2.bias[h])
            W.append(torch.stack(rows))  # (T, k)
        heads.append(W[1] @ F.gelu(W[0].T @ x[:, c]))
    y = torch.cat(heads, dim=1)
    return torch.stack([layer_norm(y[t], m.norm) for t in range(T)])


def naive_fastformer(m, x):
    T, d = x.shape
    H, dh = m.nhead, d // m.nhead
    q = x @ m.q_proj.weight.T + m.q_proj.bias
    k = x @ m.k_proj.weight.T + m.k_proj.bias
    g = torch.zeros(d)
    for h in range(H):
        alpha = torch.softmax(torch.stack([m.q_score.weight[h] @ q[t] / math.sqrt(dh) for t in range(T)]), 0)
        g[h * dh:(h + 1) * dh] = sum(alpha[t] * q[t, h * dh:(h + 1) * dh] for t in range(T))
    p = k * g
    kg = torch.zeros(d)
    for h in range(H):
        beta = torch.softmax(torch.stack([m.k_score.weight[h] @ p[t] / math.sqrt(dh) for t in range(T)]), 0)
        kg[h * dh:(h + 1) * dh] = sum(beta[t] * p[t, h * dh:(h + 1) * dh] for t in range(T))
    return torch.stack([m.out_proj.weight @ (kg * q[t]) + m.out_proj.bias + q[t] for t in range(T)])


def naive_summarymixing(m, x):
    def mlp(seq, v):
        for layer in seq:
            if hasattr(layer, "weight"):
                W, b = dense(layer)
                v = W @ v + b
            else:
                v = layer(v)
        return v

    T = x.shape[0]
    s_bar = sum(mlp(m.summary_proj, x[t]) for t in range(T)) / T
    W, b = m.merge[0].weight, m.merge[0].bias
    if m.mode == "lite":
        return torch.stack([m.merge[1](W @ s_bar + b) for t in range(T)])
    s_bar = layer_norm(s_bar, m.summary_norm)
    return torch.stack(
        [m.merge[1](W @ torch.cat([layer_norm(mlp(m.local_proj, x[t]), m.local_norm), s_bar]) + b) for t in range(T)]
    )


def naive_pom(m, x):
    """Per frame; W_p and W_s block-diagonal over m.groups; LayerNorm after W_o (speech PoM code)."""
    T, d = x.shape
    Wp, bp = dense(m.po_proj)
    Ws, bs = dense(m.se_proj)
    G, k = m.groups, m.degree
    h = []
    for t in range(T):
        groups = F.gelu(Wp @ x[t] + bp).chunk(G)  # one projection, split by group ...
        out = []
        for u in groups:
            chunks = u.chunk(k)  # ... then in k chunks, multiplied cumulatively
            prod = torch.ones_like(chunks[0])
            for i in range(k):
                prod = prod * chunks[i]
                out.append(prod)
        h.append(torch.cat(out))
    y = []
    for t in range(T):
        H = sum(h[: t + 1]) / (t + 1) if m.causal else sum(h) / T
        out = m.out_proj.weight @ (torch.sigmoid(Ws @ x[t] + bs) * H) + m.out_proj.bias
        y.append(out if m.norm is None else layer_norm(out, m.norm))
    return torch.stack(y)


NAIVE = {
    "hypermixing": naive_hypermixing,
    "hypermixing-tied": naive_hypermixing,
    "fastformer": naive_fastformer,
    "summarymixing": naive_summarymixing,
    "summarymixing-lite": naive_summarymixing,
    "pom": naive_pom,
    "pom-dense": naive_pom,
    "pom-causal": naive_pom,
    "pom-4-groups-no-norm": naive_pom,
}


@pytest.mark.parametrize("name", CASES)
def test_matches_naive_formula(name):
    mixer = make(name)
    x = torch.randn(6, D)
    with torch.no_grad():
        expected = NAIVE[name](mixer, x)
        got = mixer(x.unsqueeze(0))[0]
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


# ----------------------------------------------------------------------------- mixer specific


def test_pom_causal_ignores_the_future():
    x = torch.randn(1, 9, D)
    other = x.clone()
    other[0, 5] = torch.randn(D)
    for causal in (True, False):
        mixer = make("pom-causal" if causal else "pom")
        with torch.no_grad():
            diff = (mixer(x) - mixer(other))[0].abs().amax(dim=-1)
        assert torch.all(diff[5:] > 1e-4)
        assert torch.all(diff[:5] == 0) if causal else torch.all(diff[:5] > 1e-4)


def test_pom_groups_are_block_diagonal():
    """groups divide the W_p and W_s parameters by groups; W_o stays dense; + LayerNorm(d).
    nhead is not the number of groups (the speech PoM code ignores its num_heads)."""
    d, k, e = 32, 3, 2
    h = k * e * d
    dense_count = 2 * (d * h + h) + h * d + d
    assert n_params(PolynomialMixer(d, 8, groups=1, output_norm=False)) == dense_count
    assert n_params(PolynomialMixer(d, 8, groups=4, output_norm=False)) == 2 * (d * h // 4 + h) + h * d + d
    assert n_params(PolynomialMixer(d, 8, groups=4)) == 2 * (d * h // 4 + h) + h * d + d + 2 * d
    two_halves = n_params(PolynomialMixer(d, 8, groups=2))
    assert n_params(PolynomialMixer(d, 1)) == n_params(PolynomialMixer(d, 8)) == two_halves
    with pytest.raises(ValueError, match="groups"):
        PolynomialMixer(33, 1)


def test_pom_default_is_the_speech_code_layout():
    """Two halves, each its own Linear(d/2 -> k e d/2) for W_p and W_s, chunked in k within the
    half; dense W_o; LayerNorm on the output (the speech PoM ``PoM`` + ``PolynomialMixer``)."""
    torch.manual_seed(0)
    m = PolynomialMixer(D, 4).eval()
    assert m.groups == 2 and m.degree == 3 and isinstance(m.norm, torch.nn.LayerNorm)
    x = torch.randn(1, 5, D)
    half = D // 2
    hid = 3 * 2 * half  # k e d/2 per half
    sh = []
    for g in range(2):
        xg = x[0, :, g * half:(g + 1) * half]
        hg = F.gelu(xg @ m.po_proj.weight[g] + m.po_proj.bias[g]).chunk(3, dim=-1)
        hg = torch.cat([hg[0], hg[0] * hg[1], hg[0] * hg[1] * hg[2]], dim=-1).mean(0, keepdim=True)
        sh.append(torch.sigmoid(xg @ m.se_proj.weight[g] + m.se_proj.bias[g]) * hg)
    want = m.norm(m.out_proj(torch.cat(sh, dim=-1)))
    assert m.po_proj.weight.shape == (2, half, hid)
    with torch.no_grad():
        assert torch.allclose(m(x)[0], want, atol=1e-5)


def summarymixing_count(d, n, lh, lo, sh, so):
    """Expected SummaryMixing parameters: block-diagonal MLPs, two LayerNorms, dense merge."""
    def block(i, o):
        return i * o // n + o

    return block(d, lh) + block(lh, lo) + block(d, sh) + block(sh, so) + 2 * lo + 2 * so + (lo + so) * d + d


def test_summarymixing_every_dim_option_changes_the_parameter_count():
    with torch.device("meta"):
        base = n_params(SummaryMixing(64, 4))
        # the defaults: the paper's effective layout, local [512] -> 512, summary [1024] -> d_model
        assert base == summarymixing_count(64, 4, 512, 512, 1024, 64)
        for option, value in [
            ("local_proj_hid_dim", [256]),
            ("local_proj_hid_dim", [512, 512]),
            ("local_proj_out_dim", 256),
            ("summary_hid_dim", [256]),
            ("summary_hid_dim", [512, 512]),
            ("summary_out_dim", 256),
        ]:
            assert n_params(SummaryMixing(64, 4, **{option: value})) != base, option
        assert n_params(SummaryMixing(64, 4, mode="lite")) < base


def test_summarymixing_activation_and_mode_change_the_output():
    x = torch.randn(1, 5, D)
    outs = []
    for kwargs in ({}, {"activation": "relu"}, {"mode": "lite"}):
        torch.manual_seed(0)
        outs.append(SummaryMixing(D, 2, **kwargs).eval()(x))
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])
    with pytest.raises(ValueError):
        SummaryMixing(D, 2, activation="tanhh")
    with pytest.raises(ValueError):
        SummaryMixing(D, 2, mode="summary")


def test_hypermixing_parameter_layout_matches_speechbrain():
    """SpeechBrain's HyperMixing(fix_tm_hidden_size=False): per head d_h -> d_h -> k MLPs, x2, LayerNorm."""
    d, n, size = 672, 8, 2048
    dh, k = d // n, size // n
    per_generator = n * (dh * dh + dh + dh * k + k)
    with torch.device("meta"):
        assert n_params(HyperMixing(d, n)) == 2 * per_generator + 2 * d  # default hypernet_size = 2048
        assert n_params(HyperMixing(d, n, tied=True)) == per_generator + 2 * d


def test_hypermixing_has_no_max_length():
    """T = 5000 (beyond SpeechBrain's 3000-frame position table) works and stays padding-exact."""
    torch.manual_seed(0)
    mixer = HyperMixing(8, 2, hypernet_size=4).eval()
    seqs = [torch.randn(5000, 8), torch.randn(4100, 8)]
    x, mask = padded_batch(seqs)
    with torch.no_grad():
        out = mixer(x, key_padding_mask=mask)
        alone = mixer(seqs[1].unsqueeze(0))[0]
    assert out.shape == (2, 5000, 8) and torch.isfinite(out).all()
    assert torch.allclose(out[1, :4100], alone, atol=1e-5)
    # the hypernetwork's positions are the sin/cos formula up to the last frame
    assert torch.allclose(sinusoidal_positions(5000, 8)[-50:], naive_positions(5000, 8)[-50:], atol=1e-3)


# ----------------------------------------------------------------------------- initialisation


def test_hypermixing_init_is_speechbrains():
    """Same seed, same sizes: the hypernetworks' weights and biases are SpeechBrain's HyperMixing's
    (ParallelMLPs: xavier_uniform, gain sqrt(2), on its 3-D (heads, out, in) weights and its biases)."""
    from speechbrain.nnet.hypermixing import HyperMixing as SBHyperMixing

    d, n, size = 48, 4, 32
    torch.manual_seed(0)
    ref = SBHyperMixing(input_output_dim=d, hypernet_size=size, tied=False, num_heads=n, fix_tm_hidden_size=False)
    torch.manual_seed(0)
    ours = HyperMixing(d, n, hypernet_size=size)
    for gen, ref_gen in ((ours.w1_gen, ref.hyper.w1_gen), (ours.w2_gen, ref.hyper.w2_gen)):
        assert torch.equal(gen.fc1.weight.transpose(1, 2), ref_gen.fc1_weights)
        assert torch.equal(gen.fc1.bias, ref_gen.fc1_biases)
        assert torch.equal(gen.fc2.weight.transpose(1, 2), ref_gen.fc2_weights)
        assert torch.equal(gen.fc2.bias, ref_gen.fc2_biases)
    assert n_params(ours) == sum(p.numel() for p in ref.parameters())


def test_hypermixing_init_bounds_at_paper_size():
    """d_model 672, 8 heads, hypernet 2048: the xavier bounds of SpeechBrain's 3-D tensors."""
    torch.manual_seed(0)
    mixer = HyperMixing(672, 8)
    n, dh, k, gain = 8, 84, 256, math.sqrt(2.0)
    bounds = {
        "fc1.weight": gain * math.sqrt(6 / (dh * dh + n * dh)),  # (n, out, in): fan_in out*in, fan_out n*in
        "fc1.bias": gain * math.sqrt(6 / (dh + n)),
        "fc2.weight": gain * math.sqrt(6 / (k * dh + n * dh)),
        "fc2.bias": gain * math.sqrt(6 / (k + n)),
    }
    for name, bound in bounds.items():
        p = mixer.w1_gen.get_parameter(name)
        assert p.abs().max() <= bound and p.abs().max() > 0.99 * bound, name
        assert abs(p.std().item() / (bound / math.sqrt(3)) - 1) < 0.1, name  # uniform: std = bound / sqrt(3)


def test_summarymixing_init_is_the_reference():
    """Per-head linears as the SummaryMixing ParallelLinear (kaiming_uniform a=sqrt(5) on the 3-D
    (n, in/n, out/n) weight, then on the (n, out/n) bias), merge Linear bias zero."""
    d, n = 64, 4
    torch.manual_seed(0)
    mixer = SummaryMixing(d, n)
    torch.manual_seed(0)
    first = mixer.summary_proj[0]  # the first layer built: summary [1024]
    w = torch.nn.init.kaiming_uniform_(torch.empty(n, d // n, 1024 // n), a=math.sqrt(5))
    b = torch.nn.init.kaiming_uniform_(torch.empty(n, 1024 // n), a=math.sqrt(5))
    assert torch.equal(first.weight, w) and torch.equal(first.bias, b)
    assert torch.all(mixer.merge[0].bias == 0)
    # the bounds at the paper's d_model 632: 1/sqrt((in/n)(out/n)) for weights, 1/sqrt(out/n) for biases
    torch.manual_seed(0)
    big = SummaryMixing(632, 8)
    for layer, (i, o) in ((big.local_proj[0], (79, 64)), (big.summary_proj[0], (79, 128)),
                          (big.summary_proj[2], (128, 79))):
        assert layer.weight.abs().max() <= 1 / math.sqrt(i * o) and layer.weight.abs().max() > 0.99 / math.sqrt(i * o)
        assert layer.bias.abs().max() <= 1 / math.sqrt(o)
    assert torch.all(big.merge[0].bias == 0)
