"""Peak-memory meters, and the wall time and peak memory of one call.

* CUDA (``cuda_max_allocated_minus_before``): ``torch.cuda.reset_peak_memory_stats``
  before each forward, then ``max_memory_allocated`` minus the memory allocated just
  before it (weights and input excluded; activations, workspaces and the output included).
* CPU: the resident-set high-water mark (VmHWM in /proc/self/status) minus a baseline,
  the resident set (VmRSS) after building the model and the input. Before each forward
  the garbage collector runs and glibc's free pages go back to the OS (``malloc_trim``).
  Where /proc/self/clear_refs can be written the mark is reset before each forward
  (``cpu_peak_rss_reset_per_run``), elsewhere it covers all the process's forwards
  (``cpu_peak_rss_per_process``). VmHWM is preferred over ``ru_maxrss``, which also keeps
  the high-water mark of the address space a process had before ``exec``. Sound only
  in a process of its own (``workers.run_isolated``).
"""

import gc
import re
import resource
import sys
import time
from typing import Callable, Optional, Tuple

import torch


def _proc_status_kib(key: str) -> Optional[int]:
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


def _release_free_memory(full: bool = True):
    """Collect garbage (``full``: all generations, else the young ones) and hand the C allocator's free pages back to the OS (glibc
    ``malloc_trim``; a no-op elsewhere), so that a run's peak resident set does not
    include memory kept, and fragmented, by the previous run."""
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


_MALLOC_TRIM = None


def _maxrss_kib() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, KiB on Linux


class CpuPeakMemory:
    """Peak resident memory of this process above a baseline, in MiB (see module doc).

    Sound only in a process of its own: the resident set counts everything the process holds.
    """

    def __init__(self):
        self.resettable = _proc_status_kib("VmHWM") is not None and _reset_peak_rss()
        self.method = "cpu_peak_rss_reset_per_run" if self.resettable else "cpu_peak_rss_per_process"
        self.baseline_kib = 0

    def sync(self):
        pass

    def set_baseline(self):
        """Record the current resident set (model, runtime, input) as the zero."""
        _release_free_memory()
        rss = _proc_status_kib("VmRSS")
        self.baseline_kib = rss if rss is not None else _maxrss_kib()

    def start(self):
        _release_free_memory(full=False)  # a forward's garbage is young
        if self.resettable:
            _reset_peak_rss()

    def peak_mib(self) -> float:
        hwm = _proc_status_kib("VmHWM") if self.resettable else None
        peak = hwm if hwm is not None else max(_maxrss_kib(), _proc_status_kib("VmHWM") or 0)
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
