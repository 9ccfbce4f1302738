"""Measurements of one configuration: timed inference forwards or training steps.

Inference: ``model.encode`` (conv front end + Conformer) in eval mode under
``torch.inference_mode()``; a warm-up forward on 1 s of audio and ``warmup`` forwards
at the measured length, then N timed forwards, each giving a wall time (device
synchronised) and a peak memory. fp16 / bf16 run under autocast (fp32 weights).
"""

from typing import Callable, Optional

import torch

from .inputs import DTYPES, N_MELS, PAD_MULTIPLE, num_frames
from .memory import make_memory_meter, measure_peak_memory
from .models import build_model
from .status import TimeLimitExceeded


def _check_time(elapsed: float, limit: Optional[float], what: str):
    if limit is not None and elapsed > limit:
        raise TimeLimitExceeded(f"{what} took {elapsed:.1f} s > time limit {limit:g} s")


def _autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision as SpeechBrain's ``precision`` option: fp32 weights, ops in ``dtype``
    where autocast allows (SpeechBrain's RelPosMHAXL does not run with half weights)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def _set_threads(threads: Optional[int]):
    if threads and threads != torch.get_num_threads():
        torch.set_num_threads(threads)


def measure_config(spec: dict, progress: Callable[[str], None] = lambda msg: None) -> dict:
    """Time and peak memory of ``spec["warmup"]`` + ``spec["runs"]`` inference forwards.

    spec: model (BestRQModel arguments), seconds, batch_size, runs, warmup, device,
    dtype ("fp32" / "fp16" / "bf16": autocast, fp32 weights), time_limit (seconds per
    forward or None), seed, padding_mask (pass an all-valid mask instead of None),
    threads (CPU threads, None = torch's default).
    Returns {"times": [...], "mems": [...], "memory_method": str}; raises on failure.
    ``progress("forward")`` is called before every forward (the parent's watchdog).
    """
    device, dtype = torch.device(spec["device"]), DTYPES[spec["dtype"]]
    _set_threads(spec.get("threads"))
    torch.manual_seed(spec.get("seed", 0))
    model = build_model(spec["model"]).to(device).eval()
    meter = make_memory_meter(device)
    B, T = spec["batch_size"], num_frames(spec["seconds"])
    n_mels = spec["model"].get("n_mels", N_MELS)
    limit = spec.get("time_limit")
    with torch.inference_mode(), _autocast(device, dtype):
        tiny = torch.randn(B, num_frames(1.0), n_mels, device=device)
        model.encode(tiny, None)  # lazy initialisations (thread pools, kernels) go in the baseline
        del tiny
        feats = torch.randn(B, T, n_mels, device=device)
        mask = torch.zeros(B, T, dtype=torch.bool, device=device) if spec.get("padding_mask") else None
        meter.set_baseline()

        def forward():
            return model.encode(feats, mask)[0]

        return _repeat(forward, meter, spec, limit, "forward", progress)


def measure_train_step(spec: dict, progress: Callable[[str], None] = lambda msg: None) -> dict:
    """Wall time and peak memory of BEST-RQ training steps (forward + backward).

    A step: quantizer targets of the clean features, span masking (15%, spans of 4
    frames, N(0, 0.1) noise), the model in train mode (dropout on), cross-entropy on the
    masked encoder frames, backward; gradients are dropped (set to None) after each step.
    fp16 / bf16 use autocast (mixed precision, fp32 weights) as in pre-training.
    spec as ``measure_config`` (``runs`` = timed steps).
    """
    import torch.nn.functional as F

    from ..masking import apply_span_mask, encoder_frame_mask

    device, dtype = torch.device(spec["device"]), DTYPES[spec["dtype"]]
    _set_threads(spec.get("threads"))
    torch.manual_seed(spec.get("seed", 0))
    gen = torch.Generator().manual_seed(spec.get("seed", 0))
    model = build_model(spec["model"]).to(device).train()
    meter = make_memory_meter(device)
    B, T = spec["batch_size"], num_frames(spec["seconds"])
    n_mels, stack = spec["model"].get("n_mels", N_MELS), spec["model"].get("stack_frames", PAD_MULTIPLE)
    limit = spec.get("time_limit")
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

    meter.set_baseline()
    return _repeat(step, meter, spec, limit, "training step", progress)


def _repeat(fn: Callable[[], object], meter, spec: dict, limit, label: str, progress: Callable[[str], None]) -> dict:
    """``spec["warmup"]`` unmeasured calls, then ``spec["runs"]`` calls of fn, each timed and metered."""
    for _ in range(spec.get("warmup", 1)):
        progress("forward")
        elapsed, _ = measure_peak_memory(fn, meter)
        _check_time(elapsed, limit, f"warm-up {label}")
    times, mems = [], []
    for _ in range(spec["runs"]):
        progress("forward")
        elapsed, peak = measure_peak_memory(fn, meter)
        _check_time(elapsed, limit, label)
        times.append(elapsed)
        mems.append(peak)
    return {"times": times, "mems": mems, "memory_method": meter.method}
