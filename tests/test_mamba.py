"""Bidirectional Mamba: the PyTorch selective scan, padding-exactness, CUDA-kernel dispatch."""

import math
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

from brq_att_alt.mixers import mamba as mamba_module
from brq_att_alt.mixers.mamba import BiMamba, Mamba, selective_scan, selective_scan_reference
from helpers import padded_batch

D_MODEL = 16




def scan_inputs(batch=2, d_inner=6, d_state=4, T=37, seed=0, delta_scale=1.0):
    """Random selective-scan arguments: u, delta (B, D, T), A (D, N), B, C (B, N, T), D, z."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, d_inner, T, generator=g)
    delta = delta_scale * torch.randn(batch, d_inner, T, generator=g)
    A = -torch.exp(torch.randn(d_inner, d_state, generator=g))
    B = torch.randn(batch, d_state, T, generator=g)
    C = torch.randn(batch, d_state, T, generator=g)
    D = torch.randn(d_inner, generator=g)
    z = torch.randn(batch, d_inner, T, generator=g)
    delta_bias = torch.randn(d_inner, generator=g)
    return u, delta, A, B, C, D, z, delta_bias


def make(d_model=D_MODEL, **kwargs):
    torch.manual_seed(0)
    return BiMamba(d_model, **kwargs)


def mamba_params(d_model, d_state=16, d_conv=4, expand=2):
    """Parameter count of one unidirectional block, written out from the architecture."""
    d_inner, rank = expand * d_model, math.ceil(d_model / 16)
    return (
        d_model * 2 * d_inner  # in_proj
        + d_inner * d_conv + d_inner  # depthwise conv + bias
        + d_inner * (rank + 2 * d_state)  # x_proj
        + rank * d_inner + d_inner  # dt_proj
        + d_inner * d_state + d_inner  # A_log, D
        + d_inner * d_model  # out_proj
    )


# --------------------------------------------------------------------------- the scan


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 37, 64, 256])
@pytest.mark.parametrize("gate", [False, True])
def test_chunked_scan_matches_reference(chunk_size, gate):
    u, delta, A, B, C, D, z, bias = scan_inputs()
    z = z if gate else None
    want = selective_scan_reference(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    got = selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True,
                         chunk_size=chunk_size)
    assert got.shape == u.shape
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_cpu_block_cap_keeps_the_result(monkeypatch):
    u, delta, A, B, C, D, z, bias = scan_inputs(T=21)
    want = selective_scan(u, delta, A, B, C, D, z, bias, True, chunk_size=256)
    monkeypatch.setattr(mamba_module, "CPU_BLOCK_BYTES", 1)  # forces 1-frame blocks
    got = selective_scan(u, delta, A, B, C, D, z, bias, True, chunk_size=256)
    assert torch.allclose(got, want, atol=1e-5)


def test_scan_without_skip_nor_softplus():
    u, delta, A, B, C, _, _, _ = scan_inputs(T=23)
    delta = delta.abs()
    want = selective_scan_reference(u, delta, A, B, C)
    assert torch.allclose(selective_scan(u, delta, A, B, C, chunk_size=8), want, atol=1e-5)


def test_scan_stable_under_strong_long_decay():
    """cumsum(delta * A) reaches ~ -1e5 here: exp(-cumsum) tricks overflow, this must not."""
    u, delta, A, B, C, D, _, _ = scan_inputs(T=600, delta_scale=5.0)
    delta = delta.abs() + 2.0
    want = selective_scan_reference(u, delta, A, B, C, D)
    got = selective_scan(u, delta, A, B, C, D, chunk_size=256)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("checkpoint_blocks", [True, False])
def test_scan_gradients_match_reference(checkpoint_blocks):
    args = [t.double().requires_grad_() for t in scan_inputs(T=19)]
    u, delta, A, B, C, D, z, bias = args
    weights = torch.randn(u.shape, dtype=torch.double)

    def grads(fn, **kw):
        out = fn(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True, **kw)
        return torch.autograd.grad((out * weights).sum(), args)

    got_grads = grads(selective_scan, chunk_size=6, checkpoint_blocks=checkpoint_blocks)
    for got, want in zip(got_grads, grads(selective_scan_reference)):
        assert torch.allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("dtype, ulps", [(torch.float32, 4), (torch.float64, 4)])
def test_fast_softplus_is_softplus_to_float_rounding(dtype, ulps):
    """The scan's softplus (vectorised log1p) against F.softplus over its whole range."""
    x = torch.cat([torch.linspace(-120, 120, 20001), torch.tensor([-1e-8, 0.0, 1e-8, 19.999, 20.0, 20.001, 1e4])])
    x = x.to(dtype)
    got, want = mamba_module._softplus_values(x), F.softplus(x)
    eps, tiny = torch.finfo(dtype).eps, torch.finfo(dtype).tiny  # below tiny: denormals, flushed or not
    small = x <= mamba_module.SOFTPLUS_THRESHOLD
    assert torch.all((got - want)[small].abs() <= ulps * eps * want[small].abs() + tiny)
    assert torch.allclose(got[~small], want[~small], rtol=0, atol=4e-9)  # x above the threshold
    xg = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(mamba_module._Softplus.apply(xg).sum(), xg)
    xr = x.clone().requires_grad_()
    (want_grad,) = torch.autograd.grad(F.softplus(xr).sum(), xr)
    assert torch.all((grad - want_grad).abs() <= 2 * eps * want_grad.abs() + tiny)


@pytest.mark.parametrize("checkpoint_blocks", [True, False])
def test_scan_output_when_autograd_records_matches_reference(checkpoint_blocks):
    """Training: the blocks' forward (without autograd when checkpointed) gives the reference's values."""
    args = [t.requires_grad_() for t in scan_inputs(T=29)]
    u, delta, A, B, C, D, z, bias = args
    got = selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True, chunk_size=8,
                         checkpoint_blocks=checkpoint_blocks)
    with torch.no_grad():
        want = selective_scan_reference(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    assert got.requires_grad and torch.allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.fixture
def compiled_scan_state():
    """Restores the compiled-scan switch and cache after the test."""
    saved = dict(mamba_module._COMPILED)
    yield mamba_module._COMPILED
    mamba_module._COMPILED.clear()
    mamba_module._COMPILED.update(saved)


@pytest.mark.parametrize("failure", ["at compile", "at first call"])
def test_compiled_scan_falls_back_to_eager_with_one_warning(monkeypatch, compiled_scan_state, failure):
    """No compiler (torch.compile raising, or the compiled function failing when first run):
    one RuntimeWarning, then the eager scan, with the reference's result."""
    def broken_compile(fn, **kwargs):
        if failure == "at compile":
            raise RuntimeError("no C++ compiler")

        def fails(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    compiled_scan_state.update(enabled=True, fn=None)
    u, delta, A, B, C, D, z, bias = scan_inputs(T=45)
    want = selective_scan_reference(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    with pytest.warns(RuntimeWarning, match="compiled Mamba scan is unavailable"):
        got = selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # failed once: eager from then on, silently
        assert torch.allclose(selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True), got)


def test_compiled_scan_is_off_unless_asked(monkeypatch, compiled_scan_state):
    compiled_scan_state.update(enabled=None, fn=None)
    monkeypatch.delenv(mamba_module.COMPILE_ENV, raising=False)
    assert not mamba_module._compiled_scan_wanted()
    monkeypatch.setenv(mamba_module.COMPILE_ENV, "1")
    assert mamba_module._compiled_scan_wanted()
    mamba_module.use_compiled_scan(False)
    assert not mamba_module._compiled_scan_wanted()


@pytest.mark.slow
def test_compiled_scan_matches_reference(compiled_scan_state):
    """With torch.compile working here: the compiled steps (3 blocks of 16 frames and an
    eager tail) give the reference's result; without a compiler, the eager fallback does."""
    compiled_scan_state.update(enabled=True, fn=None)
    u, delta, A, B, C, D, z, bias = scan_inputs(T=53)
    want = selective_scan_reference(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            got = selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_scan_keeps_low_precision_dtype():
    u, delta, A, B, C, D, z, bias = scan_inputs(T=12)
    out = selective_scan(u.bfloat16(), delta.bfloat16(), A, B.bfloat16(), C.bfloat16(), D, z.bfloat16())
    assert out.dtype == torch.bfloat16


# --------------------------------------------------------------------------- the modules


def test_unidirectional_block_is_causal():
    torch.manual_seed(0)
    block = Mamba(D_MODEL, chunk_size=4).eval()
    x = torch.randn(1, 12, D_MODEL)
    x2 = x.clone()
    x2[:, 7] += 1.0
    with torch.no_grad():
        diff = (block(x) - block(x2)).abs().amax(dim=-1)[0]
    assert torch.all(diff[:7] == 0)
    assert torch.all(diff[7:] > 0)


def test_initialisation_follows_mamba_simple():
    block = Mamba(D_MODEL, d_state=8)
    assert block.dt_rank == 1 and block.d_inner == 2 * D_MODEL
    assert torch.allclose(block.A_log, torch.log(torch.arange(1.0, 9.0)).expand(2 * D_MODEL, 8))
    assert torch.all(block.D == 1)
    assert block.A_log._no_weight_decay and block.D._no_weight_decay
    dt = F.softplus(block.dt_proj.bias)
    assert dt.min() >= 1e-3 - 1e-7 and dt.max() <= 1e-1 + 1e-7
    assert block.in_proj.bias is None and block.out_proj.bias is None and block.x_proj.bias is None


def test_bimamba_output_shape_and_padded_frames_zero():
    mixer = make(nhead=8).eval()  # nhead is accepted and unused
    x, mask = padded_batch([torch.randn(T, D_MODEL) for T in (10, 4, 7)])
    y = mixer(x, key_padding_mask=mask)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert torch.all(y[mask] == 0)


@pytest.mark.parametrize("d_model", [474, 678])
def test_parameter_count(d_model):
    mixer = BiMamba(d_model, rmsnorm_residual=False)
    assert sum(p.numel() for p in mixer.parameters()) == 2 * mamba_params(d_model)
    assert not set(map(id, mixer.fwd.parameters())) & set(map(id, mixer.bwd.parameters()))
    # the default wrapping adds the RMSNorm weight of mamba_ssm's Block
    assert sum(p.numel() for p in BiMamba(d_model).parameters()) == 2 * mamba_params(d_model) + d_model


def test_wrapped_as_the_authors_block():
    """Default: y = x + m(RMSNorm(x)) with m the bare bidirectional mixer (mamba_ssm Block with
    RMSNorm eps 1e-5, fused_add_norm False, no residual given: ALT MambaBlock with n_layer=1)."""
    torch.manual_seed(0)
    wrapped = make().eval()
    bare = make(rmsnorm_residual=False).eval()
    bare.load_state_dict({k: v for k, v in wrapped.state_dict().items() if not k.startswith("norm.")})
    assert isinstance(wrapped.norm, torch.nn.RMSNorm) and wrapped.norm.eps == 1e-5
    with torch.no_grad():
        wrapped.norm.weight.uniform_(0.5, 1.5)
        x, mask = padded_batch([torch.randn(T, D_MODEL) for T in (9, 6)])
        got = wrapped(x, key_padding_mask=mask)
        x0 = x.masked_fill(mask.unsqueeze(-1), 0.0)
        rms = x0 * torch.rsqrt(x0.pow(2).mean(-1, keepdim=True) + 1e-5) * wrapped.norm.weight
        want = (x0 + bare(rms, key_padding_mask=mask)).masked_fill(mask.unsqueeze(-1), 0.0)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.all(got[mask] == 0)


def test_registered_as_mamba():
    from brq_att_alt.mixers import MIXER_CLASSES, build_mixer

    assert MIXER_CLASSES["mamba"] is BiMamba
    assert isinstance(build_mixer("mamba", d_model=D_MODEL, nhead=4, chunk_size=8), BiMamba)


@pytest.mark.parametrize("rmsnorm_residual", [True, False])
@pytest.mark.parametrize("chunk_size", [3, 256])
def test_padding_exact(chunk_size, rmsnorm_residual):
    """A sequence alone == the same sequence right-padded inside a longer batch."""
    mixer = make(chunk_size=chunk_size, rmsnorm_residual=rmsnorm_residual).eval()
    torch.manual_seed(1)
    seqs = [torch.randn(T, D_MODEL) for T in (9, 21, 14)]
    x, mask = padded_batch(seqs)
    with torch.no_grad():
        batch_out = mixer(x, key_padding_mask=mask)
        for i, s in enumerate(seqs):
            alone = mixer(s.unsqueeze(0))
            assert torch.allclose(batch_out[i, : len(s)], alone[0], atol=1e-5)


def test_backward_direction_is_used_and_blind_to_padding():
    mixer = make().eval()
    x, mask = padded_batch([torch.randn(12, D_MODEL), torch.randn(8, D_MODEL)])
    with torch.no_grad():
        y = mixer(x, key_padding_mask=mask)
        later_valid = x.clone()
        later_valid[1, 7] += 1.0  # last valid frame of sequence 1
        assert not torch.allclose(mixer(later_valid, key_padding_mask=mask)[1, 0], y[1, 0])
        new_padding = x.clone()
        new_padding[1, 8:] = 1e3 * torch.randn(4, D_MODEL)
        assert torch.equal(mixer(new_padding, key_padding_mask=mask), y)


def test_no_dropout_inside():
    """The authors' Mamba branch has no dropout: train mode gives the eval output."""
    mixer = make(dropout=0.5)
    x, mask = padded_batch([torch.randn(T, D_MODEL) for T in (9, 6)])
    with torch.no_grad():
        assert torch.equal(mixer.train()(x, key_padding_mask=mask), mixer.eval()(x, key_padding_mask=mask))


def test_gradients_reach_every_parameter():
    mixer = make(dropout=0.1, chunk_size=4).train()
    x, mask = padded_batch([torch.randn(T, D_MODEL) for T in (11, 6)])
    mixer(x.requires_grad_(), key_padding_mask=mask).pow(2).sum().backward()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {name}"
    assert x.grad[mask].abs().sum() == 0, "padded input frames must get no gradient"


# --------------------------------------------------------------------------- CUDA kernels


def fake_causal_conv1d_fn(x, weight, bias=None, activation=None):
    """causal_conv1d_fn's contract in PyTorch: x (B, D, T), weight (D, W)."""
    assert x.is_contiguous() and weight.dim() == 2 and activation == "silu"
    out = F.conv1d(F.pad(x, (weight.shape[1] - 1, 0)), weight.unsqueeze(1), bias, groups=x.shape[1])
    return F.silu(out)


def fake_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                           delta_softplus=False, return_last_state=False):
    """selective_scan_fn's contract in PyTorch (mamba_ssm's argument order)."""
    assert B.shape[1] == C.shape[1] == A.shape[1] and u.shape == delta.shape == z.shape
    return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def test_kernel_path_passes_the_right_arguments(monkeypatch):
    """With kernels that compute what mamba_ssm computes, the kernel path equals the PyTorch path."""
    mixer = make().eval()
    x, mask = padded_batch([torch.randn(T, D_MODEL) for T in (10, 5)])
    with torch.no_grad():
        want = mixer(x, key_padding_mask=mask)
        fakes = (fake_selective_scan_fn, fake_causal_conv1d_fn)
        monkeypatch.setattr(Mamba, "_kernels", lambda self, inp: fakes)
        got = mixer(x, key_padding_mask=mask)
    assert torch.allclose(got, want, atol=1e-5)


def test_auto_uses_no_kernel_for_cpu_input(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a CUDA kernel was called on a CPU tensor")

    monkeypatch.setattr(mamba_module, "_load_cuda_kernels", lambda: (boom, boom))
    for option in ("auto", True, False):
        make(use_cuda_kernels=option)(torch.randn(1, 6, D_MODEL))


def test_use_cuda_kernels_true_without_kernels_raises(monkeypatch):
    monkeypatch.setattr(mamba_module, "_load_cuda_kernels", lambda: None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[cuda\]"'):
        BiMamba(D_MODEL, use_cuda_kernels=True)
    BiMamba(D_MODEL, use_cuda_kernels="auto")  # falls back silently
    with pytest.raises(ValueError, match="use_cuda_kernels"):
        BiMamba(D_MODEL, use_cuda_kernels="yes")


def test_cuda_input_without_kernels_warns_once(monkeypatch):
    """use_cuda_kernels 'auto', CUDA input, no kernels: the PyTorch scan and one warning per
    process, however many blocks and calls (simulated: the decision only sees x.is_cuda)."""
    from types import SimpleNamespace

    monkeypatch.setattr(mamba_module, "_load_cuda_kernels", lambda: None)
    mamba_module._warn_pytorch_scan_on_cuda.cache_clear()
    try:
        mixer = make(use_cuda_kernels="auto")
        cuda_like = SimpleNamespace(is_cuda=True)
        with pytest.warns(RuntimeWarning, match=r'slower pure-PyTorch.*pip install -e "\.\[cuda\]"') as record:
            for _ in range(3):
                assert mixer.fwd._kernels(cuda_like) is None and mixer.bwd._kernels(cuda_like) is None
        assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning: CPU input, or the PyTorch scan asked for
            assert mamba_module.kernels_for_input("auto", is_cuda=False) is None
            assert mamba_module.kernels_for_input(False, is_cuda=True) is None
            mamba_module._warn_pytorch_scan_on_cuda.cache_clear()
            make(use_cuda_kernels="auto")(torch.randn(1, 5, D_MODEL))
    finally:
        mamba_module._warn_pytorch_scan_on_cuda.cache_clear()


def test_missing_packages_fall_back_silently(monkeypatch):
    monkeypatch.setitem(sys.modules, "mamba_ssm", None)  # makes `import mamba_ssm` fail
    monkeypatch.setitem(sys.modules, "causal_conv1d", None)
    mamba_module._load_cuda_kernels.cache_clear()
    try:
        assert mamba_module._load_cuda_kernels() is None
        make(use_cuda_kernels="auto")(torch.randn(1, 5, D_MODEL))
    finally:
        mamba_module._load_cuda_kernels.cache_clear()


@pytest.mark.skipif(
    not torch.cuda.is_available() or mamba_module._load_cuda_kernels() is None,
    reason="needs a CUDA device and the mamba_ssm / causal_conv1d kernels",
)
def test_cuda_kernels_match_pytorch_scan():
    x, mask = padded_batch([torch.randn(T, D_MODEL) for T in (50, 31)])
    x, mask = x.cuda(), mask.cuda()
    fast = make(use_cuda_kernels=True).cuda().eval()
    slow = make(use_cuda_kernels=False).cuda().eval()
    slow.load_state_dict(fast.state_dict())
    with torch.no_grad():
        assert torch.allclose(fast(x, key_padding_mask=mask), slow(x, key_padding_mask=mask), atol=1e-4)
