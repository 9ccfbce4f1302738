"""Bidirectional Mamba token mixer (selective state space model, Gu & Dao 2023).

``Mamba`` is one causal selective-SSM block; ``BiMamba`` (registered as ``mamba``)
adds a second block run on each sequence reversed *within its own length*, so the
mixer is padding-exact. On CPU (or on CUDA without the kernels) the selective scan
is pure PyTorch, with time before channels (the layout of the Linear layers around it):
without autograd (inference, and the forward of a checkpointed training block) it steps
through cache-sized blocks of frames, one in-place operation per frame; when autograd
records, time is cut into blocks of ``chunk_size`` frames carrying the state, each
scanned in log depth with O(T) work and recomputed in backward. Optionally
(``use_compiled_scan`` or the environment variable ``BRQ_ATT_ALT_COMPILE_SCAN=1``) the
steps without autograd run as one ``torch.compile``d loop per block (about 3x faster on
CPU); if it cannot be compiled (no C++ compiler, ...) the eager steps are used, with one
warning. On CUDA the kernels of ``mamba-ssm`` and ``causal-conv1d`` are used when they
can be imported; without them a CUDA input takes the PyTorch scan, with one warning per
process.
"""

import functools
import math
import os
import warnings
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..padding import reverse_padded, zero_padded

DEFAULT_CHUNK_SIZE = 128
# On CPU a block's (frames, B, D, N) tensors are kept under this size: bigger ones are
# mmap'ed and page-faulted afresh on every allocation (glibc's 32 MiB mmap threshold),
# which measured ~4x slower per element than heap-reused ones.
CPU_BLOCK_BYTES = 16 * 2**20
# Without autograd the scan steps through sub-blocks whose two (B, frames, D, N) buffers stay
# this small (cache-sized; measured fastest at 2-4 MiB for the base Mamba at 80 s).
FAST_BLOCK_BYTES = 4 * 2**20
CUDA_INSTALL_HINT = 'pip install -e ".[cuda]"'  # from the repository: mamba-ssm, causal-conv1d


# --------------------------------------------------------------------------- scan


def _upcast(u, delta, A, B, C, delta_bias, delta_softplus):
    """Cast the scan inputs to fp32 (fp64 stays fp64); delta gets its bias and softplus."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype).unsqueeze(-1)
    if delta_softplus:
        delta = F.softplus(delta)
    return u.to(dtype), delta, A.to(dtype), B.to(dtype), C.to(dtype)


def _finish(y, u, D, z, dtype):
    """Skip connection ``y + D * u``, gate ``* silu(z)``, cast back to ``dtype``.

    y, u, z: (B, D, T); D: (D,) or None.
    """
    if D is not None:
        y = y + u * D.to(y.dtype).unsqueeze(-1)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(dtype)


SOFTPLUS_THRESHOLD = 20.0  # F.softplus's: above it, softplus(x) = x


def _softplus_values(x: torch.Tensor) -> torch.Tensor:
    """F.softplus(x) (beta 1, threshold 20) to float rounding, with vectorised operations only.

    ATen's softplus calls a scalar log1p (about 10 ns per element on CPU, as much as the rest
    of the scan); here log1p(e), e = exp(x), is log(u) + (e - (u - 1)) / u with u = 1 + e
    (log of the rounded sum, corrected by the rounding error: a few ulps, and e itself where
    1 + e rounds to 1). Above the threshold x is returned: x - 20 is added to softplus(20),
    which is 20 to fp32 rounding (2e-9 more in fp64).
    """
    e = x.clamp(max=SOFTPLUS_THRESHOLD)
    over = x - e if bool(x.max() > SOFTPLUS_THRESHOLD) else None
    e.exp_()
    u = e + 1.0
    correction = torch.sub(u, 1.0).neg_().add_(e).div_(u)  # (e - (u - 1)) / u
    out = u.log_().add_(correction)
    return out if over is None else out.add_(over)


class _Softplus(torch.autograd.Function):
    """softplus with ``_softplus_values`` forward and d/dx = sigmoid(x) (1 above the threshold)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _softplus_values(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.where(x > SOFTPLUS_THRESHOLD, torch.ones_like(x), torch.sigmoid(x))


def _linear_scan_(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """In place, b becomes h: h_t = a_t * h_{t-1} + b_t with h_{-1} = h0 (no autograd).

    a, b: (T, ...) with time first, 0 < a <= 1 (a is only read); h0: (...).
    Log-depth, O(T) work (Blelloch-style): frame pairs (2i, 2i+1) are folded into one
    step (a_o a_e, a_o b_e + b_o) stored on the odd frame, the half-length sequence of
    pairs is scanned recursively (odd frames then hold their states), and each even
    frame takes one more step from the odd frame before it. Only products of numbers
    in (0, 1] appear, so nothing can overflow.
    """
    if a.shape[0] == 1:
        return b.addcmul_(a, h0)
    a_e, a_o = a[0::2], a[1::2]  # ceil(T/2), floor(T/2) frames
    b_e, b_o = b[0::2], b[1::2]
    n, m = a_o.shape[0], a_e.shape[0]
    b_o.addcmul_(a_o, b_e[:n])
    _linear_scan_(a_o * a_e[:n], b_o, h0)
    b_e[1:].addcmul_(a_e[1:], b_o[: m - 1])
    b_e[0].addcmul_(a_e[0], h0)
    return b


class _LinearScanFn(torch.autograd.Function):
    """h = scan of h_t = a_t h_{t-1} + b_t from h0, computed in b's memory (b is
    consumed), with a hand-written backward.

    The adjoint is the same recurrence run backwards in time:
    lam_t = dL/dh_t + a_{t+1} lam_{t+1}; then dL/db_t = lam_t, dL/da_t = lam_t h_{t-1}
    and dL/dh0 = a_0 lam_0.
    """

    @staticmethod
    def forward(ctx, a, b, h0):
        h = _linear_scan_(a, b, h0)
        ctx.mark_dirty(b)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        a_next = torch.cat([torch.zeros_like(a[:1]), a[1:].flip(0)])  # a_{t+1}, reversed
        lam = _linear_scan_(a_next, grad_h.flip(0), torch.zeros_like(h0)).flip(0)
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
        return lam * h_prev, lam, a[0] * lam[0]


class _Recompute(torch.autograd.Function):
    """Activation checkpointing of ``fn(*inputs)``: nothing of fn's graph is kept, the
    backward runs fn again with autograd on. (``torch.utils.checkpoint`` does the same
    but imports torch._dynamo on first use, seconds of start-up.)
    """

    @staticmethod
    def forward(ctx, fn, *inputs):
        ctx.fn = fn
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            return fn(*inputs)

    @staticmethod
    def backward(ctx, *grad_outputs):
        inputs = [x.detach().requires_grad_(x.requires_grad) for x in ctx.saved_tensors]
        with torch.enable_grad(), torch.autocast(inputs[0].device.type, enabled=False):
            outputs = ctx.fn(*inputs)
        wanted = [x for x in inputs if x.requires_grad]
        grads = iter(torch.autograd.grad(outputs, wanted, grad_outputs, allow_unused=True))
        return (None, *(next(grads) if x.requires_grad else None for x in inputs))


def _scan_block(delta, du, A, B, C, h0):
    """Selective scan of one block of frames, starting from state h0, time second.

    delta, du = delta * u: (B, t, D) fp32 (delta after softplus); A: (D, N); B, C: (B, t, N);
    h0: (B, D, N). Returns y (B, t, D) without skip and gate, and the last state (B, D, N).
    With autograd on (training, or the backward's recomputation) the block is scanned in
    log depth on time-first tensors (``_LinearScanFn``); without (inference, and the
    forward of a checkpointed block) by ``_scan_no_grad``.
    """
    if not torch.is_grad_enabled():
        y = du.new_empty(du.shape)
        return y, _scan_no_grad(delta, du, A, B, C, h0, y)
    delta, du, B, C = [x.transpose(0, 1).contiguous() for x in (delta, du, B, C)]  # (t, B, ...)
    decay = (delta.unsqueeze(-1) * A).exp()  # (t, B, D, N), in (0, 1]
    drive = du.unsqueeze(-1) * B.unsqueeze(2)  # (t, B, D, N)
    h = _LinearScanFn.apply(decay, drive, h0)
    y = torch.matmul(h, C.unsqueeze(-1)).squeeze(-1)  # (t, B, D): C_t . h_t
    return y.transpose(0, 1), h[-1].clone()  # a copy, so that the block's states can be freed


def _block_frames(batch: int, d_inner: int, d_state: int, limit_bytes: int, chunk_size: int) -> int:
    """Frames per block such that a (B, frames, D, N) fp32 tensor stays under ``limit_bytes``."""
    return max(1, min(chunk_size, limit_bytes // (batch * d_inner * d_state * 4)))


COMPILE_ENV = "BRQ_ATT_ALT_COMPILE_SCAN"
COMPILED_BLOCK_FRAMES = 16  # frames per call of the compiled loop (unrolled into one kernel)
_COMPILED = {"enabled": None, "fn": None}  # enabled None: follow COMPILE_ENV; fn False: failed


def use_compiled_scan(enabled: Optional[bool] = True) -> None:
    """Run the scan's no-autograd steps through ``torch.compile`` (True), eagerly (False), or as
    the environment variable ``BRQ_ATT_ALT_COMPILE_SCAN`` says (None, the default; "1" = on).
    Off by default: the first call per shape compiles for seconds and needs a C++ compiler."""
    _COMPILED["enabled"] = enabled


def _compiled_scan_wanted() -> bool:
    enabled = _COMPILED["enabled"]
    if enabled is None:
        enabled = os.environ.get(COMPILE_ENV, "0") not in ("", "0", "false", "False")
    return bool(enabled) and _COMPILED["fn"] is not False


def _scan_frames(delta, du, A, B, C, h):
    """The recurrence frame by frame (written for torch.compile, which fuses the unrolled
    frames into one loop over the state): delta, du (B, L, D), A (D, N), B, C (B, L, N),
    h (B, D, N) -> y (B, L, D), last state."""
    ys = []
    for t in range(delta.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + du[:, t, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(ys, dim=1), h


def _compiled_frames():
    """The compiled ``_scan_frames`` (built once), or None if compilation is unavailable."""
    if _COMPILED["fn"] is None:
        try:
            _COMPILED["fn"] = torch.compile(_scan_frames, dynamic=False)
        except Exception as err:  # noqa: BLE001 - e.g. torch.compile unsupported here
            _compile_failed(err)
    return _COMPILED["fn"] or None


def _compile_failed(err: BaseException) -> None:
    _COMPILED["fn"] = False
    warnings.warn(f"The compiled Mamba scan is unavailable ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                  "using the eager PyTorch scan.", RuntimeWarning, stacklevel=3)


def _scan_no_grad(delta, du, A, B, C, h, y):
    """The scan without autograd, written into y (B, T, D); returns the last state (B, D, N).

    Sub-blocks of ``FAST_BLOCK_BYTES`` per (B, frames, D, N) buffer (two buffers, reused):
    decay exp(delta A) and drive delta u B are written in place, then each frame takes one
    in-place step h_t = decay_t h_{t-1} + drive_t from the previous one (one operation per
    frame on B x D x N values), and y_t = C_t . h_t is one batched matrix-vector product per
    sub-block. Shapes as ``_scan_block``; h (B, D, N) is the starting state (not modified).
    """
    batch, T, d_inner = du.shape
    d_state = A.shape[1]
    if _compiled_scan_wanted() and T >= COMPILED_BLOCK_FRAMES:
        frames = _compiled_frames()
        done, h0 = T - T % COMPILED_BLOCK_FRAMES, h
        try:
            for start in range(0, done, COMPILED_BLOCK_FRAMES) if frames is not None else ():
                part = slice(start, start + COMPILED_BLOCK_FRAMES)
                y[:, part], h = frames(delta[:, part], du[:, part], A, B[:, part], C[:, part], h)
        except Exception as err:  # noqa: BLE001 - the compiler failed (first use): all eager from here
            _compile_failed(err)
            h = h0
        else:
            if frames is not None:
                if done == T:
                    return h
                return _scan_no_grad(delta[:, done:], du[:, done:], A, B[:, done:], C[:, done:], h, y[:, done:])
    limit = min(FAST_BLOCK_BYTES, CPU_BLOCK_BYTES) if du.device.type == "cpu" else FAST_BLOCK_BYTES
    L = _block_frames(batch, d_inner, d_state, limit, T)
    decay = du.new_empty(batch, L, d_inner, d_state)
    drive = du.new_empty(batch, L, d_inner, d_state)
    for start in range(0, T, L):
        n = min(L, T - start)
        a, b = decay[:, :n], drive[:, :n]
        torch.mul(delta[:, start : start + n, :, None], A, out=a).exp_()
        torch.mul(du[:, start : start + n, :, None], B[:, start : start + n, None, :], out=b)
        steps_a, steps_b = a.unbind(1), b.unbind(1)
        steps_b[0].addcmul_(steps_a[0], h)
        for t in range(1, n):
            steps_b[t].addcmul_(steps_a[t], steps_b[t - 1])
        for i in range(batch):  # y_t = C_t . h_t, as (1, N) @ (N, D) products written straight into y
            torch.bmm(C[i, start : start + n, None, :], b[i].transpose(1, 2), out=y[i, start : start + n, None, :])
        h = steps_b[n - 1].clone()
    return h


def selective_scan_time_major(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    checkpoint_blocks: bool = True,
) -> torch.Tensor:
    """``selective_scan`` with time before channels: u, delta, z (B, T, D); B, C (B, T, N);
    returns y (B, T, D). The layout of the Linear layers around it (no transposed copies)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dtype = u.dtype
    compute = torch.promote_types(dtype, torch.float32)
    u, A, B, C = u.to(compute), A.to(compute), B.to(compute), C.to(compute)
    delta = delta.to(compute)
    if delta_bias is not None:
        delta = delta + delta_bias.to(compute)
    if delta_softplus:
        delta = _Softplus.apply(delta)
    du = delta * u
    batch, T, d_inner = u.shape
    h = u.new_zeros(batch, d_inner, A.shape[1])
    with torch.autocast(u.device.type, enabled=False):  # keep the products in fp32
        if not (torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C))):
            y = u.new_empty(batch, T, d_inner)
            _scan_no_grad(delta, du, A, B, C, h, y)
        else:
            if u.device.type == "cpu":
                chunk_size = _block_frames(batch, d_inner, A.shape[1], CPU_BLOCK_BYTES, chunk_size)
            ys = []
            for start in range(0, T, chunk_size):
                args = [x[:, start : start + chunk_size] for x in (delta, du)] + [A] + [
                    x[:, start : start + chunk_size] for x in (B, C)] + [h]
                if checkpoint_blocks:
                    y_block, h = _Recompute.apply(_scan_block, *args)
                else:
                    y_block, h = _scan_block(*args)
                ys.append(y_block)
            y = torch.cat(ys, dim=1)
    if not torch.is_grad_enabled():  # inference: skip and gate in place
        if D is not None:
            y.addcmul_(u, D.to(compute))
        if z is not None:
            y.mul_(F.silu(z.to(compute)))
        return y.to(dtype)
    if D is not None:
        y = y + u * D.to(compute)
    if z is not None:
        y = y * F.silu(z.to(compute))
    return y.to(dtype)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    checkpoint_blocks: bool = True,
) -> torch.Tensor:
    """Selective scan in pure PyTorch, same arguments and result as mamba-ssm's kernel.

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t;  y_t = C_t . h_t + D u_t;  y_t *= silu(z_t)

    Args:
        u: (B, D, T) input; delta: (B, D, T) step sizes (before ``delta_bias``/softplus).
        A: (D, N), negative; B, C: (B, N, T) input-dependent projections.
        D: (D,) skip, or None; z: (B, D, T) gate, or None.
        delta_bias: (D,) added to delta; delta_softplus: apply softplus to delta.
        chunk_size: frames per block; memory is O(B * chunk_size * D * N), whatever T.
            On CPU a block is also capped at ``CPU_BLOCK_BYTES`` per (B, frames, D, N) tensor.
        checkpoint_blocks: when autograd records, recompute each block in backward
            instead of keeping its (B, D, chunk, N) intermediates (T-independent memory).
    Returns:
        y: (B, D, T), dtype of u. Computed in fp32 (fp64 for fp64 inputs).

    Computed by ``selective_scan_time_major`` on (B, T, .) views of the inputs.
    """
    t = [None if x is None else x.transpose(1, 2) for x in (u, delta, B, C, z)]
    y = selective_scan_time_major(t[0], t[1], A, t[2], t[3], D, t[4], delta_bias, delta_softplus, chunk_size,
                                  checkpoint_blocks)
    return y.transpose(1, 2)


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """Frame-by-frame loop of the same recurrence as ``selective_scan`` (tests only).

    Shapes as in ``selective_scan``; returns y (B, D, T). O(T) Python steps: slow.
    """
    dtype = u.dtype
    u, delta, A, B, C = _upcast(u, delta, A, B, C, delta_bias, delta_softplus)
    h = u.new_zeros(u.shape[0], A.shape[0], A.shape[1])  # (B, D, N)
    ys = []
    for t in range(u.shape[-1]):
        decay = torch.exp(delta[:, :, t, None] * A)  # (B, D, N)
        drive = (delta[:, :, t] * u[:, :, t]).unsqueeze(-1) * B[:, None, :, t]
        h = decay * h + drive
        ys.append((h * C[:, None, :, t]).sum(-1))  # (B, D)
    return _finish(torch.stack(ys, dim=-1), u, D, z, dtype)


# --------------------------------------------------------------------------- CUDA kernels


@functools.lru_cache(maxsize=None)
def _load_cuda_kernels():
    """(selective_scan_fn, causal_conv1d_fn) from mamba-ssm / causal-conv1d, or None.

    Imported lazily and once: a missing or broken install just means None.
    """
    try:
        from causal_conv1d import causal_conv1d_fn
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a build that fails to load its extension
        return None
    return selective_scan_fn, causal_conv1d_fn


@functools.lru_cache(maxsize=None)
def _warn_pytorch_scan_on_cuda() -> None:
    """Once per process (the cache): CUDA input, use_cuda_kernels='auto', no kernels."""
    warnings.warn(
        "Mamba runs on CUDA without the mamba-ssm / causal-conv1d kernels: it uses the slower "
        f"pure-PyTorch selective scan. Install the kernels for speed: `{CUDA_INSTALL_HINT}` "
        "(or set use_cuda_kernels: False to silence this).",
        RuntimeWarning,
        stacklevel=3,
    )


def kernels_for_input(option: Union[bool, str], is_cuda: bool):
    """The CUDA kernels for an input (``is_cuda``: it is on a CUDA device), or None for
    the PyTorch scan. CPU input or ``option`` False: None. CUDA input with ``option``
    "auto" and no kernels: None, and the once-per-process warning."""
    if option is False or not is_cuda:
        return None
    kernels = _load_cuda_kernels()
    if kernels is None:  # "auto": True without kernels raised when the module was built
        _warn_pytorch_scan_on_cuda()
    return kernels


def _check_use_cuda_kernels(option: Union[bool, str]) -> Union[bool, str]:
    """Validate ``use_cuda_kernels``; True without the kernels installed raises."""
    if option not in (True, False, "auto"):
        raise ValueError(f"use_cuda_kernels must be True, False or 'auto', got {option!r}")
    if option is True and _load_cuda_kernels() is None:
        raise ImportError(
            "use_cuda_kernels=True but the Mamba CUDA kernels (mamba_ssm, causal_conv1d) "
            f"cannot be imported: `{CUDA_INSTALL_HINT}` on a CUDA machine, or set "
            "use_cuda_kernels='auto' to fall back to the PyTorch scan."
        )
    return option


# --------------------------------------------------------------------------- modules


class Mamba(nn.Module):
    """One causal (left-to-right) Mamba block: x (B, T, d_model) -> (B, T, d_model).

    Output frame t depends on input frames <= t only, so right padding never changes
    the valid frames. Parameter names and shapes follow mamba-ssm's ``mamba_simple``.

    Args:
        d_model: model width; d_inner = expand * d_model.
        d_state: SSM state size N per channel. d_conv: causal depthwise conv kernel.
        dt_rank: rank of the delta projection, "auto" = ceil(d_model / 16).
        dt_min, dt_max, dt_init_floor: range of the initial step size (softplus(bias)).
        chunk_size: frames per block of the PyTorch scan.
        use_cuda_kernels: "auto" (kernels if installed and input on CUDA), True (require
            them: raises here if not installed), False (always the PyTorch scan). The
            kernels are CUDA-only: CPU inputs always take the PyTorch scan.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: Union[int, str] = "auto",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        use_cuda_kernels: Union[bool, str] = "auto",
    ):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.chunk_size = chunk_size
        self.use_cuda_kernels = _check_use_cuda_kernels(use_cuda_kernels)

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        # Depthwise conv; causality comes from padding d_conv - 1 frames on the left only.
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, bias=True)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

        # S4D-real: A[:, n] = -(n + 1) for every channel, stored as log(-A).
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))  # (d_inner, d_state)
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self._init_dt_proj(dt_min, dt_max, dt_init_floor)

    @torch.no_grad()
    def _init_dt_proj(self, dt_min: float, dt_max: float, dt_init_floor: float):
        """Weights U(+-dt_rank^-0.5); bias such that softplus(bias) is log-uniform in [dt_min, dt_max]."""
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        log_dt = torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dt = torch.exp(log_dt).clamp(min=dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_proj.bias._no_reinit = True  # as mamba_simple: keep it if biases get re-zeroed

    def _kernels(self, x: torch.Tensor):
        """The CUDA kernels to use for input x, or None for the PyTorch path."""
        return kernels_for_input(self.use_cuda_kernels, x.is_cuda)

    def _ssm_inputs(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Conv output x (B, d_inner, T) -> delta (B, d_inner, T) pre-bias, B and C (B, N, T)."""
        x_dbl = self.x_proj(x.transpose(1, 2))  # (B, T, dt_rank + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight)  # (B, T, d_inner); bias goes to the scan
        return tuple(t.transpose(1, 2).contiguous() for t in (delta, B, C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model)."""
        kernels = self._kernels(x)
        if kernels is None:
            return self._forward_pytorch(x)
        # CUDA kernels: the same call as mamba_simple's non-fused path, channels before time
        u, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)  # (B, d_inner, T) each
        scan, conv = kernels
        u = conv(u.contiguous(), self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        z = z.contiguous()
        A, D, dt_bias = -torch.exp(self.A_log.float()), self.D.float(), self.dt_proj.bias.float()
        delta, B, C = self._ssm_inputs(u)
        y = scan(u, delta, A, B, C, D, z=z, delta_bias=dt_bias, delta_softplus=True)
        return self.out_proj(y.transpose(1, 2))

    def _forward_pytorch(self, x: torch.Tensor) -> torch.Tensor:
        """The same block with time before channels throughout (the Linear layers' layout, no
        transposed copies) and the PyTorch scan (``selective_scan_time_major``)."""
        u, z = self.in_proj(x).split(self.d_inner, dim=-1)  # (B, T, d_inner) views
        u = self._causal_conv(u)
        u = F.silu(u, inplace=True) if not torch.is_grad_enabled() else F.silu(u)
        dt, B, C = torch.split(self.x_proj(u), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight)  # (B, T, d_inner); bias goes to the scan
        y = selective_scan_time_major(u, delta, -torch.exp(self.A_log), B, C, self.D, z=z,
                                      delta_bias=self.dt_proj.bias, delta_softplus=True, chunk_size=self.chunk_size)
        return self.out_proj(y)

    def _causal_conv(self, u: torch.Tensor) -> torch.Tensor:
        """Depthwise causal convolution of u (B, T, d_inner) -> (B, T, d_inner), before the SiLU.

        ``conv1d`` on the input padded with d_conv - 1 zero frames on the left, run as a
        (d_conv x 1) Conv2d in channels-last memory format, for which (B, T, d_inner) is the
        layout (the padding is the only copy)."""
        batch, T, d = u.shape
        padded = F.pad(u, (0, 0, self.d_conv - 1, 0)).view(batch, T + self.d_conv - 1, 1, d).permute(0, 3, 1, 2)
        weight = self.conv1d.weight.unsqueeze(-1).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(padded, weight, self.conv1d.bias, groups=d)  # (B, d, T, 1), channels last
        return y.permute(0, 2, 3, 1).reshape(batch, T, d)


class BiMamba(nn.Module):
    """Bidirectional Mamba mixer (registered as ``mamba``), padding-exact.

    m(x) = fwd(x) + R(bwd(R(x))), where R reverses each sequence within its own length
    (padding stays at the end), so the backward block starts on the last *valid* frame.
    With ``rmsnorm_residual`` (default) the two directions are wrapped as the authors'
    code wraps them, in one mamba_ssm ``Block`` (RMSNorm eps 1e-5, its own residual):

        y = x + m(RMSNorm(x))

    otherwise y = m(x). Padded input frames are zeroed first and padded output frames
    are zeroed. There is no dropout (as in the reference; ``dropout`` is unused).

    Args:
        d_model: model width. nhead: accepted for the common mixer contract, unused.
        dropout: unused. d_state, d_conv, expand, dt_rank, chunk_size, use_cuda_kernels:
            see ``Mamba`` (shared by both directions, which have their own parameters).
        rmsnorm_residual: wrap as above (True, the papers' runs) or return m(x) alone.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 1,
        dropout: float = 0.0,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: Union[int, str] = "auto",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        use_cuda_kernels: Union[bool, str] = "auto",
        rmsnorm_residual: bool = True,
    ):
        super().__init__()
        kwargs = dict(
            d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank,
            chunk_size=chunk_size, use_cuda_kernels=use_cuda_kernels,
        )
        self.norm = nn.RMSNorm(d_model, eps=1e-5) if rmsnorm_residual else None
        self.fwd = Mamba(d_model, **kwargs)
        self.bwd = Mamba(d_model, **kwargs)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, d_model), key_padding_mask (B, T) bool True = padded -> (B, T, d_model)."""
        x = zero_padded(x, key_padding_mask)
        u = x if self.norm is None else self.norm(x)
        backward = reverse_padded(self.bwd(reverse_padded(u, key_padding_mask)), key_padding_mask)
        y = self.fwd(u) + backward
        if self.norm is not None:
            y = y + x
        return zero_padded(y, key_padding_mask)
