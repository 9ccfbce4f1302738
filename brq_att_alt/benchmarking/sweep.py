"""The sweep over (variant, length), shortest first; a failure skips the variant's longer lengths."""

import time
from typing import Callable, List, Optional, Sequence

import numpy as np

from .formatting import _fmt_seconds
from .inputs import num_frames
from .status import STATUS_OK, STATUS_SKIPPED
from .variants import VARIANTS
from .workers import run_in_process, run_isolated


def run_sweep(
    variants: Sequence[str],
    lengths: Sequence[float],
    make_spec: Callable[[str, float], dict],
    task: str = "inference",
    isolate: bool = False,
    memory_limit_bytes: Optional[int] = None,
    info: Optional[Callable[[str], dict]] = None,
    log: Callable[[str], None] = lambda msg: None,
) -> List[dict]:
    """Measure every (variant, length), shortest first; return the per-run rows.

    A failed configuration (oom / timeout / error) gives one row with that status, and
    every longer length of the same variant a ``skipped`` row. ``info(variant)`` adds
    fixed columns (label, d_model, ...).
    """
    rows: List[dict] = []
    for variant in variants:
        extra = info(variant) if info else {"label": VARIANTS[variant].label if variant in VARIANTS else variant}
        failed_at = None
        for seconds in sorted(lengths):
            spec = make_spec(variant, seconds)
            base = dict(mixer=variant, seconds=seconds, frames=num_frames(seconds), batch_size=spec["batch_size"],
                        device=spec["device"], dtype=spec["dtype"], **extra)
            if failed_at is not None:
                rows.append({**base, "run": "", "status": STATUS_SKIPPED,
                             "error": f"{failed_at[0]} at {_fmt_seconds(failed_at[1])} s"})
                log(f"[{task} {variant} {_fmt_seconds(seconds)} s] skipped ({failed_at[0]} at a shorter length)")
                continue
            t0 = time.perf_counter()
            result = run_isolated(task, spec, memory_limit_bytes) if isolate else run_in_process(task, spec)
            wall = time.perf_counter() - t0
            if result["status"] != STATUS_OK:
                failed_at = (result["status"], seconds)
                rows.append({**base, "run": "", "status": result["status"], "error": result.get("error", "")})
                log(f"[{task} {variant} {_fmt_seconds(seconds)} s] {result['status'].upper()}: {result.get('error', '')}")
                continue
            for i, (t, m) in enumerate(zip(result["times"], result["mems"]), start=1):
                rows.append({**base, "run": i, "status": STATUS_OK, "time_s": t, "peak_mem_mib": m,
                             "memory_method": result["memory_method"], "error": ""})
            what = "step" if task == "train" else "forward"
            log(f"[{task} {variant} {_fmt_seconds(seconds)} s] {np.mean(result['times']):.4g} s/{what}, "
                f"peak {np.mean(result['mems']):.4g} MiB ({len(result['times'])} runs, {wall:.1f} s wall)")
    return rows
