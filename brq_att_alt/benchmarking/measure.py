"""How one configuration is measured: timed calls, peak-memory meters, failure classes.

A configuration is a ``spec`` dict: model (BestRQModel arguments), seconds, batch_size,
runs, warmup, device, dtype ("fp32" / "fp16" / "bf16": autocast, fp32 weights),
time_limit (seconds per call or None), seed, padding_mask (pass an all-valid mask
instead of None), threads (CPU threads, None = torch's default), compile_scan (run the
Mamba scan's steps through torch.compile, ``mixers.mamba.use_compiled_scan``). A task
measures it:

* ``inference``: ``model.encode`` (conv front end + Conformer) in eval mode under
  ``torch.inference_mode()``; a warm-up forward on 1 s of audio and ``warmup`` forwards
  at the measured length, then ``runs`` timed forwards.
* ``train``: BEST-RQ training steps (targets, span masking, forward in train mode,
  cross-entropy on the masked frames, backward), ``warmup`` then ``runs`` timed steps.

Each timed call gives a wall time (device synchronised) and a peak memory:

* CUDA (``cuda_max_allocated_minus_before``): ``torch.cuda.reset_peak_memory_stats``
  before each call, then ``max_memory_allocated`` minus the memory allocated just
  before it (weights and input excluded; activations, workspaces and the output included).
* CPU: the resident-set high-water mark (VmHWM in /proc/self/status) minus a baseline,
  the resident set (VmRSS) after building the model and the input. Before each call
  the garbage collector runs and glibc's free pages go back to the OS (``malloc_trim``).
  Where /proc/self/clear_refs can be written the mark is reset before each call
  (``cpu_peak_rss_reset_per_run``), elsewhere it covers all the process's calls
  (``cpu_peak_rss_per_process``). VmHWM is preferred over ``ru_maxrss``, which also keeps
  the high-water mark of the address space a process had before ``exec``. Sound only
  in a process of its own (``sweep.run_isolated``).

For the interleaved mode (``sweep.run_interleaved``): ``PREPARE[task](spec)`` builds a
task's model and input and returns the call to time; ``count_flops`` counts a call's FLOPs
(``torch.utils.flop_counter``, plus the fused CPU attention it misses); ``matmul_probe`` is
a large fp32 matrix product timed like an encoder (the machine's matmul rate in the same
run); ``matmul_bound_share`` = (FLOPs / matmul rate) / time.

Status of a result: ``ok``; out of memory (``torch.cuda.OutOfMemoryError``,
``MemoryError``, a RuntimeError saying so, or a worker killed by SIGKILL, which the
Linux OOM killer sends) is ``oom``; a call longer than the time limit is ``timeout``;
any other exception is ``error``. The sweep records a failed variant's longer lengths
as ``skipped``.
"""

import gc
import math
import re
import resource
import signal
import sys
import time
from typing import Callable, Optional, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_backward_flop_count, sdpa_flop_count

from .models import DTYPES, N_MELS, PAD_MULTIPLE, build_model, num_frames

STATUS_OK, STATUS_OOM, STATUS_TIMEOUT, STATUS_ERROR, STATUS_SKIPPED = "ok", "oom", "timeout", "error", "skipped"
FAILURES = (STATUS_OOM, STATUS_TIMEOUT, STATUS_ERROR)
OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
                "failed to allocate")


class TimeLimitExceeded(Exception):
    """A forward (or training step) took longer than the configured time limit."""


def classify_exception(exc: BaseException) -> str:
    """``oom``, ``timeout`` or ``error`` for an exception raised by a measurement."""
    if isinstance(exc, TimeLimitExceeded):
        return STATUS_TIMEOUT
    if isinstance(exc, MemoryError):
        return STATUS_OOM
    cuda_oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if cuda_oom is not None and isinstance(exc, cuda_oom):
        return STATUS_OOM
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MESSAGES):
        return STATUS_OOM
    return STATUS_ERROR


def classify_exit_code(code: Optional[int]) -> dict:
    """Failure result of a worker that ended without sending a result. SIGKILL is what the
    Linux OOM killer sends, so it counts as ``oom``; anything else is an ``error``."""
    if code == -signal.SIGKILL:
        return {"status": STATUS_OOM, "error": "worker killed by SIGKILL (the OS's out-of-memory killer?)"}
    if code is not None and code < 0:
        return {"status": STATUS_ERROR, "error": f"worker killed by signal {-code}"}
    return {"status": STATUS_ERROR, "error": f"worker exited with code {code} without a result"}


def failure_result(exc: BaseException) -> dict:
    """The result of a measurement that raised: its status and a one-line error."""
    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return {"status": classify_exception(exc), "error": msg[:300]}


# ----------------------------------------------------------------------------- memory meters
def proc_status_kib(key: str) -> Optional[int]:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM, VmSize...); None where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            m = re.search(rf"^{key}:\s+(\d+)\s+kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    """Reset this process's resident-set high-water mark (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


_MALLOC_TRIM = None


def _release_free_memory(full: bool = True):
    """Collect garbage (``full``: all generations, else the young ones) and hand the C
    allocator's free pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere), so that
    a run's peak resident set does not include memory kept, and fragmented, by the previous run."""
    global _MALLOC_TRIM
    gc.collect() if full else gc.collect(1)
    if _MALLOC_TRIM is None:
        _MALLOC_TRIM = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
            except (OSError, AttributeError):
                pass
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


def _maxrss_kib() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, KiB on Linux


class CpuPeakMemory:
    """Peak resident memory of this process above a baseline, in MiB (see module doc).

    Sound only in a process of its own: the resident set counts everything the process holds.
    """

    def __init__(self):
        self.resettable = proc_status_kib("VmHWM") is not None and _reset_peak_rss()
        self.method = "cpu_peak_rss_reset_per_run" if self.resettable else "cpu_peak_rss_per_process"
        self.baseline_kib = 0

    def sync(self):
        pass

    def set_baseline(self):
        """Record the current resident set (model, runtime, input) as the zero."""
        _release_free_memory()
        rss = proc_status_kib("VmRSS")
        self.baseline_kib = rss if rss is not None else _maxrss_kib()

    def start(self):
        _release_free_memory(full=False)  # a forward's garbage is young
        if self.resettable:
            _reset_peak_rss()

    def peak_mib(self) -> float:
        hwm = proc_status_kib("VmHWM") if self.resettable else None
        peak = hwm if hwm is not None else max(_maxrss_kib(), proc_status_kib("VmHWM") or 0)
        return max(peak - self.baseline_kib, 0) / 1024.0


class CudaPeakMemory:
    """``max_memory_allocated`` during a forward minus the memory allocated before it, in MiB."""

    method = "cuda_max_allocated_minus_before"

    def __init__(self, device):
        self.device = torch.device(device)
        self.before = 0

    def sync(self):
        torch.cuda.synchronize(self.device)

    def set_baseline(self):
        gc.collect()
        self.sync()

    def start(self):
        self.sync()
        torch.cuda.reset_peak_memory_stats(self.device)
        self.before = torch.cuda.memory_allocated(self.device)

    def peak_mib(self) -> float:
        return (torch.cuda.max_memory_allocated(self.device) - self.before) / 2**20


def make_memory_meter(device):
    device = torch.device(device)
    return CudaPeakMemory(device) if device.type == "cuda" else CpuPeakMemory()


def measure_peak_memory(fn: Callable[[], object], meter) -> Tuple[float, float]:
    """Run ``fn`` once; return (wall seconds, peak MiB above ``meter``'s zero).

    The clock starts and stops on a synchronised device; ``fn``'s result is dropped
    after the measurement (it counts in the peak, as the forward produced it)."""
    meter.start()
    t0 = time.perf_counter()
    out = fn()
    meter.sync()
    elapsed = time.perf_counter() - t0
    peak = meter.peak_mib()
    del out
    return elapsed, peak


# ----------------------------------------------------------------------------- tasks
def set_threads(threads: Optional[int]):
    """torch's CPU threads (None or 0: leave them)."""
    if threads and threads != torch.get_num_threads():
        torch.set_num_threads(threads)


def _autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision as SpeechBrain's ``precision`` option: fp32 weights, ops in ``dtype``
    where autocast allows (SpeechBrain's RelPosMHAXL does not run with half weights)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def _no_progress(msg: str):
    pass


def _scan_option(spec: dict):
    """``spec["compile_scan"]``: the compiled Mamba scan on (else left as the environment says)."""
    if spec.get("compile_scan"):
        from ..mixers.mamba import use_compiled_scan

        use_compiled_scan(True)


def prepare_inference(spec: dict) -> Callable[[], torch.Tensor]:
    """Build ``spec``'s model (eval mode) and input; return the forward to time.

    The forward is ``model.encode`` (front end + Conformer) under ``torch.inference_mode()``
    (and autocast for fp16 / bf16). A warm-up forward on 1 s of audio has run (lazy
    initialisations: thread pools, kernels).
    """
    device, dtype = torch.device(spec["device"]), DTYPES[spec["dtype"]]
    _scan_option(spec)
    torch.manual_seed(spec.get("seed", 0))
    model = build_model(spec["model"]).to(device).eval()
    B, T = spec["batch_size"], num_frames(spec["seconds"])
    n_mels = spec["model"].get("n_mels", N_MELS)
    with torch.inference_mode(), _autocast(device, dtype):
        model.encode(torch.randn(B, num_frames(1.0), n_mels, device=device), None)
        feats = torch.randn(B, T, n_mels, device=device)
        mask = torch.zeros(B, T, dtype=torch.bool, device=device) if spec.get("padding_mask") else None

    def forward():
        with torch.inference_mode(), _autocast(device, dtype):
            return model.encode(feats, mask)[0]

    return forward


def prepare_train_step(spec: dict) -> Callable[[], None]:
    """Build ``spec``'s model (train mode) and input; return one BEST-RQ training step to time.

    A step: quantizer targets of the clean features, span masking (15%, spans of 4
    frames, N(0, 0.1) noise), the model in train mode (dropout on), cross-entropy on the
    masked encoder frames, backward; gradients are dropped (set to None) after each step.
    fp16 / bf16 use autocast (mixed precision, fp32 weights) as in pre-training.
    """
    import torch.nn.functional as F

    from ..masking import apply_span_mask, encoder_frame_mask

    device, dtype = torch.device(spec["device"]), DTYPES[spec["dtype"]]
    _scan_option(spec)
    torch.manual_seed(spec.get("seed", 0))
    gen = torch.Generator().manual_seed(spec.get("seed", 0))
    model = build_model(spec["model"]).to(device).train()
    B, T = spec["batch_size"], num_frames(spec["seconds"])
    n_mels, stack = spec["model"].get("n_mels", N_MELS), spec["model"].get("stack_frames", PAD_MULTIPLE)
    feats = torch.randn(B, T, n_mels, device=device)
    pad_mask = torch.zeros(B, T, dtype=torch.bool, device=device)
    amp = _autocast(device, dtype)

    def step():
        masked, frame_mask = apply_span_mask(feats, pad_mask, generator=gen)
        targets = model.targets(feats)  # (B, T / 4)
        with amp:
            logits = model(masked, pad_mask)["logits"]
        on = encoder_frame_mask(frame_mask, stack)[: logits.shape[1]]
        loss = F.cross_entropy(logits[:, on].float().flatten(0, 1), targets[:, on].flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)
        return None

    return step


def measure_inference(spec: dict, progress: Callable[[str], None] = _no_progress) -> dict:
    """Time and peak memory of ``spec["warmup"]`` + ``spec["runs"]`` inference forwards
    (``prepare_inference``).

    Returns {"times": [...], "mems": [...], "memory_method": str}; raises on failure.
    ``progress("forward")`` is called before every forward (the parent's watchdog).
    """
    set_threads(spec.get("threads"))
    meter = make_memory_meter(spec["device"])
    forward = prepare_inference(spec)
    meter.set_baseline()  # model, warm-up and input in the baseline
    return timed_calls(forward, meter, spec, "forward", progress)


def measure_train_step(spec: dict, progress: Callable[[str], None] = _no_progress) -> dict:
    """Wall time and peak memory of BEST-RQ training steps (``prepare_train_step``).

    Returns as ``measure_inference`` (``runs`` = timed steps).
    """
    set_threads(spec.get("threads"))
    meter = make_memory_meter(spec["device"])
    step = prepare_train_step(spec)
    meter.set_baseline()
    return timed_calls(step, meter, spec, "training step", progress)


def timed_calls(fn: Callable[[], object], meter, spec: dict, label: str,
                progress: Callable[[str], None] = _no_progress) -> dict:
    """``spec["warmup"]`` unmeasured calls of fn, then ``spec["runs"]`` calls, each timed and
    metered; a call longer than ``spec["time_limit"]`` raises TimeLimitExceeded."""
    limit = spec.get("time_limit")

    def call(what: str):
        progress("forward")
        elapsed, peak = measure_peak_memory(fn, meter)
        if limit is not None and elapsed > limit:
            raise TimeLimitExceeded(f"{what} took {elapsed:.1f} s > time limit {limit:g} s")
        return elapsed, peak

    for _ in range(spec.get("warmup", 1)):
        call(f"warm-up {label}")
    times, mems = zip(*(call(label) for _ in range(spec["runs"]))) if spec["runs"] else ((), ())
    return {"times": list(times), "mems": list(mems), "memory_method": meter.method}


# A task name -> its measurement; specs name their task so that a child process can run it.
TASKS = {"inference": measure_inference, "train": measure_train_step}
# A task name -> what builds its timed call (the interleaved mode times the calls of all
# encoders in turn in one process).
PREPARE = {"inference": prepare_inference, "train": prepare_train_step}


# ----------------------------------------------------------------------------- FLOPs and the matmul rate
def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                            **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """The input's and the weight's gradients of a convolution, each as many FLOPs as the forward.

    (torch's own formula builds the weight gradient as a convolution over the batch and
    leaves the groups out: a depthwise convolution's backward came out d_model times too big.)"""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


# FlopCounterMode counts the CUDA attention kernels but not the fused CPU one, which
# ``scaled_dot_product_attention`` calls on CPU: the same formulas (two matrix products).
# Grouped convolutions' backward: see ``_conv_backward_flop``.
EXTRA_FLOP_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flop,
    torch.ops.aten.convolution_backward: _conv_backward_flop,
}


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn``, as ``torch.utils.flop_counter`` counts
    them: matrix products, convolutions and attention (2 per multiply-add), nothing else
    (normalisations, activations and element-wise products are not counted). fn runs once."""
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)
    with counter:
        fn()
    return int(counter.get_total_flops())


MATMUL_SIZE = 2048  # n of the probe's (n, n) @ (n, n): 17 GFLOP, large enough for the peak rate


def matmul_probe(device="cpu", n: int = MATMUL_SIZE) -> Tuple[Callable[[], torch.Tensor], int]:
    """A large fp32 matrix product to time like an encoder, and its FLOPs (2 n^3): its time
    gives the machine's matmul rate in the same run (same threads, same load)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)

    def matmul():
        return torch.mm(a, b)

    return matmul, 2 * n**3


def matmul_bound_share(flops: float, matmul_flops_per_s: float, seconds: float) -> float:
    """(flops / matmul rate) / seconds: the fraction of a call's time that its FLOPs would
    take at the machine's matmul rate (1 = as fast as one large matrix product; the rest
    is time spent outside matrix products or in slower ones). NaN if undefined."""
    if not (flops >= 0 and matmul_flops_per_s > 0 and seconds > 0):
        return math.nan
    return flops / matmul_flops_per_s / seconds


def timed_call(fn: Callable[[], object], device) -> float:
    """Wall seconds of one call of fn, the device synchronised before and after."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    del out
    return elapsed


def run_measurement(task: str, spec: dict, progress: Callable[[str], None] = _no_progress) -> dict:
    """``TASKS[task](spec)`` as a result: {"status": "ok", times, mems, memory_method}, or a
    failure (status + error) for any exception; this process's torch threads are restored."""
    threads = torch.get_num_threads()
    try:
        return {"status": STATUS_OK, **TASKS[task](spec, progress)}
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none crashes the sweep
        return failure_result(exc)
    finally:
        set_threads(threads)
