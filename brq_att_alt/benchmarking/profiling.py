"""Where an encoder's forward time goes: per part of the model and per kind of operation.

::

    python -m brq_att_alt.benchmarking.profiling --seconds 80 --threads 1 [--mixers pom mamba] [--out DIR]

For each variant (base size unless told), one warm-up forward, then:

* per part (forward hooks, wall time of one forward): the front end, the FFNs, the
  LayerNorm before the mixer, the mixer, the convolution module, the layers' final
  LayerNorms, and the rest of the layers (residual additions, position encoding, masks);
  the Mamba scan (``selective_scan_time_major``) apart from the rest of its mixer;
* per kind of operation (``torch.profiler``, self CPU time of one forward, each ATen
  operation put into one ``CATEGORIES`` class: matrix products, convolutions,
  normalisations, activations, copies and layout changes, element-wise, reductions ...).

The two tables are printed (Markdown) and, with ``--out``, written as parts.csv and ops.csv.
The profiler adds a little overhead per operation, so the per-part table (no profiler) is
the one to read for times; the per-operation one for shares.
"""

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..csv_files import write_csv
from .measure import set_threads
from .models import N_MELS, VARIANTS, build_model, encoder_config, num_frames

# ATen operation name (without "aten::") -> category; first match of a prefix wins.
CATEGORIES = [
    ("matmul", ("addmm", "mm", "bmm", "matmul", "linear", "einsum", "baddbmm", "_scaled_dot_product",
                "scaled_dot_product")),
    ("convolution", ("convolution", "_convolution", "conv", "mkldnn_convolution", "_nnpack", "thnn_conv",
                     "slow_conv", "_slow_conv")),
    ("normalisation", ("native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm")),
    ("activation", ("silu", "gelu", "glu", "leaky_relu", "sigmoid", "softplus", "relu", "tanh")),
    ("softmax", ("softmax", "_softmax", "log_softmax")),
    ("copy / layout", ("copy_", "contiguous", "clone", "cat", "stack", "flip", "gather", "index", "pad",
                       "constant_pad_nd", "reflection_pad", "as_strided", "repeat", "expand", "_to_copy", "to",
                       "empty", "zeros", "ones", "full", "new_zeros", "new_empty", "fill_", "zero_", "unfold",
                       "narrow", "slice", "select", "transpose", "permute", "view", "reshape", "unsqueeze",
                       "squeeze", "flatten", "unflatten", "t", "split", "chunk", "detach", "alias",
                       "_unsafe_view", "resolve")),
    ("reduction", ("sum", "mean", "cumsum", "cumprod", "max", "min", "amax", "norm", "var", "std")),
    ("element-wise", ("add", "mul", "sub", "div", "exp", "masked_fill", "where", "addcmul", "neg", "rsqrt",
                      "sqrt", "pow", "sin", "cos", "log", "clamp", "arange", "bitwise", "eq", "lt", "ge", "gt",
                      "le", "ne", "logical", "rsub", "reciprocal", "expm1", "_softplus", "dropout", "lerp")),
]


def op_category(name: str) -> str:
    """The ``CATEGORIES`` class of an ATen operation name ("aten::addmm" -> "matmul"): a name of
    the class, itself or in place (``exp_``), or, for names longer than 3 letters, a prefix."""
    op = name.split("::", 1)[-1]
    for category, names in CATEGORIES:
        if any(op in (n, n + "_") or (len(n) > 3 and op.startswith(n)) for n in names):
            return category
    return "other"


class PartTimer:
    """Wall time spent in named modules during forwards (pre/post forward hooks)."""

    def __init__(self):
        self.seconds: Dict[str, float] = defaultdict(float)
        self._start: Dict[int, float] = {}
        self._handles = []

    def watch(self, module: torch.nn.Module, part: str):
        def pre(mod, args):
            self._start[id(mod)] = time.perf_counter()

        def post(mod, args, out):
            self.seconds[part] += time.perf_counter() - self._start.pop(id(mod))

        self._handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def remove(self):
        for h in self._handles:
            h.remove()


def part_times(model, feats: torch.Tensor) -> Dict[str, float]:
    """Seconds per part of one ``model.encode(feats)`` (see the module doc)."""
    from ..mixers import mamba as mamba_module

    timer = PartTimer()
    timer.watch(model.frontend, "front end")
    for layer in model.encoder.layers:
        timer.watch(layer, "layers (all)")
        timer.watch(layer.ffn1, "FFNs")
        timer.watch(layer.ffn2, "FFNs")
        timer.watch(layer.mixer_norm, "LayerNorm before the mixer")
        timer.watch(layer.mixer, "mixer")
        timer.watch(layer.conv, "convolution module")
        timer.watch(layer.norm, "final LayerNorm of the layers")
    scan_seconds = [0.0]
    original = mamba_module.selective_scan_time_major

    def timed_scan(*args, **kwargs):
        t0 = time.perf_counter()
        out = original(*args, **kwargs)
        scan_seconds[0] += time.perf_counter() - t0
        return out

    mamba_module.selective_scan_time_major = timed_scan
    try:
        with torch.inference_mode():
            t0 = time.perf_counter()
            model.encode(feats, None)
            total = time.perf_counter() - t0
    finally:
        mamba_module.selective_scan_time_major = original
        timer.remove()
    s = dict(timer.seconds)
    layers = s.pop("layers (all)", 0.0)
    named = sum(v for k, v in s.items() if k != "front end")
    out = {"total": total, **s, "rest of the layers (residuals, masks)": layers - named,
           "rest of the encoder (input position encoding, final LayerNorm)": total - layers - s.get("front end", 0.0)}
    if scan_seconds[0]:
        out["  of the mixer: Mamba selective scan"] = scan_seconds[0]
    return out


def op_times(model, feats: torch.Tensor, top: int = 12):
    """(seconds per ``op_category``, the ``top`` ATen operations by self CPU time) of one forward."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model.encode(feats, None)
    per_cat: Dict[str, float] = defaultdict(float)
    ops = []
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::"):
            continue
        seconds = evt.self_cpu_time_total / 1e6
        per_cat[op_category(evt.key)] += seconds
        ops.append((evt.key, seconds, evt.count))
    ops.sort(key=lambda x: -x[1])
    return dict(per_cat), ops[:top]


def profile_variants(variants: Sequence[str], seconds: float, size: str = "base", batch_size: int = 1,
                     log=print) -> List[dict]:
    """Rows (variant, kind, name, seconds, share) of ``part_times`` and ``op_times`` per variant."""
    rows = []
    for v in variants:
        torch.manual_seed(0)
        model = build_model(encoder_config(v, size)).eval()
        feats = torch.randn(batch_size, num_frames(seconds), N_MELS)
        with torch.inference_mode():
            model.encode(feats, None)  # warm-up
        parts = part_times(model, feats)
        cats, ops = op_times(model, feats)
        total, prof_total = parts["total"], sum(cats.values())
        log(f"\n### {VARIANTS[v].label}: {total:.2f} s per forward ({seconds:g} s of audio, batch {batch_size})\n")
        log("| part | s | share |\n|---|---:|---:|")
        for name, sec in parts.items():
            log(f"| {name} | {sec:.3f} | {100 * sec / total:.0f}% |")
            rows.append(dict(variant=v, kind="part", name=name, seconds=sec, share=sec / total, count=""))
        log("\n| operation class (profiler, self CPU) | s | share |\n|---|---:|---:|")
        for name, sec in sorted(cats.items(), key=lambda x: -x[1]):
            log(f"| {name} | {sec:.3f} | {100 * sec / prof_total:.0f}% |")
            rows.append(dict(variant=v, kind="op class", name=name, seconds=sec, share=sec / prof_total, count=""))
        log("\n| top operations | s | calls |\n|---|---:|---:|")
        for name, sec, count in ops:
            log(f"| {name} | {sec:.3f} | {count} |")
            rows.append(dict(variant=v, kind="op", name=name, seconds=sec, share=sec / prof_total, count=count))
        del model
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mixers", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="MIXER")
    p.add_argument("--seconds", type=float, default=80.0)
    p.add_argument("--size", default="base", choices=["base", "large"])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="folder for profile.csv")
    a = p.parse_args(argv)
    set_threads(a.threads)
    rows = profile_variants(a.mixers, a.seconds, a.size, a.batch_size)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        write_csv(Path(a.out) / "profile.csv", ["variant", "kind", "name", "seconds", "share", "count"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
