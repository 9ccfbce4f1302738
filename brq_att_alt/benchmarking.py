"""Speed and memory benchmark of the BEST-RQ encoders, one per token mixer.

The protocol follows the papers' Figure 1 (REFERENCE.md, "Speed / memory protocol"),
minus the defects of the public script: random normalised filterbanks
(B, 100 * seconds, 80), time padded to a multiple of 4, through ``model.encode``
(conv front end + Conformer) in eval mode (dropout off) under
``torch.inference_mode()`` (autograd off); a warm-up forward on 1 s of audio and
``warmup`` forwards at the measured length, then N timed forwards per (mixer, length),
each giving a wall time (CUDA synchronised) and a peak memory. fp16 / bf16 run under
autocast (fp32 weights), as SpeechBrain's ``precision`` option.

Peak memory
-----------
* CUDA: ``torch.cuda.reset_peak_memory_stats`` before each forward, then
  ``max_memory_allocated`` minus the memory allocated just before it (weights and
  input excluded; activations, workspaces and the output included).
  Method name ``cuda_max_allocated_minus_before``.
* CPU: every (mixer, length) runs in its own fresh process (a child forked from a
  forkserver that has only imported the libraries, so start-ups are cheap). The child
  builds the model, runs a warm-up forward on a tiny input, creates the input, and
  takes the *baseline*: its current resident set (VmRSS). Before each forward the garbage
  collector runs and the C allocator's free pages go back to the OS (glibc
  ``malloc_trim``), so that a run's peak does not include memory kept from the previous
  run. The peak is the resident-set high-water mark (VmHWM in /proc/self/status, the value ``getrusage().ru_maxrss``
  reports for the process's own memory) minus that baseline. Where
  /proc/self/clear_refs can be written, the high-water mark is reset before each forward
  so that every run has its own peak (method ``cpu_peak_rss_reset_per_run``);
  elsewhere the peak is the process's high-water mark over all its forwards
  (``cpu_peak_rss_per_process``), the same for every run. VmHWM is preferred over
  ``ru_maxrss`` because ``ru_maxrss`` also keeps the high-water mark of the address
  space a process had before ``exec``, which is the parent's when spawned with vfork.
  A child may be given an address-space limit (``RLIMIT_AS``), so that running out of
  memory raises in the child instead of calling the OS's OOM killer on a shared machine.

Failures
--------
Out of memory (``torch.cuda.OutOfMemoryError``, ``MemoryError``, a RuntimeError
saying so, or a child killed by SIGKILL, which the Linux OOM killer sends) gives
status ``oom``; a forward longer than the time limit gives ``timeout`` (hard limit:
the child is killed; in-process runs, as on CUDA, check after each forward); any other
exception gives ``error``. Either way the failure is a row of the CSV, and the longer
lengths of that mixer are recorded as ``skipped``.

Statistics: mean and percentile-bootstrap 95% confidence interval of the runs (seeded
numpy RNG), speed-up and memory saving relative to MHSA (RelPosMHAXL) in percent,
``100 * (1 - value / value_MHSA)`` (positive = faster / leaner), and the exponent a of
``time ~ T^a`` by least squares on log-log.
"""

import csv
import gc
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """A benchmarked encoder: registered mixer name, its options, a display label."""

    mixer: str
    mixer_kwargs: dict
    label: str


VARIANTS: Dict[str, Variant] = {
    "mhsa": Variant("mhsa", {}, "MHSA (RelPosMHAXL)"),
    "mhsa_sdpa": Variant("mhsa", {"implementation": "sdpa"}, "MHSA (SDPA)"),
    "hypermixing": Variant("hypermixing", {}, "HyperMixing"),
    "fastformer": Variant("fastformer", {}, "Fastformer"),
    "summarymixing": Variant("summarymixing", {}, "SummaryMixing"),
    "mamba": Variant("mamba", {}, "Mamba (bidirectional)"),
    "pom": Variant("pom", {}, "PoM"),
}
BASELINE = "mhsa"
QUADRATIC = ("mhsa", "mhsa_sdpa")

N_MELS = 80
FRAMES_PER_SECOND = 100  # 10 ms hop
PAD_MULTIPLE = 4
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

STATUS_OK, STATUS_OOM, STATUS_TIMEOUT, STATUS_ERROR, STATUS_SKIPPED = "ok", "oom", "timeout", "error", "skipped"
FAILURES = (STATUS_OOM, STATUS_TIMEOUT, STATUS_ERROR)

RUN_COLUMNS = [
    "mixer", "label", "seconds", "frames", "batch_size", "run", "status", "time_s", "peak_mem_mib",
    "memory_method", "device", "dtype", "d_model", "num_layers", "encoder_params_m", "error",
]
SUMMARY_COLUMNS = [
    "mixer", "label", "seconds", "status", "n_runs",
    "time_mean_s", "time_ci_low_s", "time_ci_high_s",
    "mem_mean_mib", "mem_ci_low_mib", "mem_ci_high_mib",
    "baseline", "speedup_pct", "mem_saving_pct", "encoder_params_m",
]
TRAIN_COLUMNS = [
    "mixer", "label", "seconds", "batch_size", "status", "n_steps",
    "step_mean_s", "step_ci_low_s", "step_ci_high_s",
    "audio_s_per_s", "audio_s_per_s_ci_low", "audio_s_per_s_ci_high",
    "mem_mean_mib", "memory_method", "device", "dtype", "error",
]


def num_frames(seconds: float) -> int:
    """Filterbank frames of ``seconds`` of audio (10 ms hop), padded to a multiple of 4."""
    T = max(int(round(FRAMES_PER_SECOND * seconds)), PAD_MULTIPLE)
    return T + (-T) % PAD_MULTIPLE


# --------------------------------------------------------------------------- statistics


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> Tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval.

    Resamples the values with replacement ``n_boot`` times (numpy Generator seeded with
    ``seed``, so the result is reproducible) and returns (mean, low, high), the
    (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the resampled means.
    One value gives a zero-width interval; no value gives NaNs. NaNs are ignored.
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # The bootstrap means are averages of the data: keep the interval inside its range
    # (it is already, up to rounding) and around the mean.
    return mean, float(min(low, mean)), float(max(high, mean))


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> Tuple[float, float, float]:
    """Least-squares fit of log y = a log x + log c. Returns (a, c, r2).

    Non-positive or NaN points are dropped; fewer than 2 distinct x give NaNs.
    """
    pts = [(float(u), float(v)) for u, v in zip(x, y) if u > 0 and v > 0 and not (math.isnan(u) or math.isnan(v))]
    if len({u for u, _ in pts}) < 2:
        return math.nan, math.nan, math.nan
    lx = np.log([u for u, _ in pts])
    ly = np.log([v for _, v in pts])
    a, logc = np.polyfit(lx, ly, 1)
    resid = ly - (a * lx + logc)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return float(a), float(math.exp(logc)), r2


def relative_saving(value: float, baseline: float) -> float:
    """100 * (1 - value / baseline): percent less time / memory than the baseline."""
    if value is None or baseline is None or math.isnan(value) or math.isnan(baseline) or baseline <= 0:
        return math.nan
    return 100.0 * (1.0 - value / baseline)


def _as_float(v) -> float:
    if v is None or v == "":
        return math.nan
    return float(v)


def summarize(
    rows: Iterable[dict], baseline: Optional[str] = BASELINE, confidence: float = 0.95,
    n_boot: int = 10_000, seed: int = 0,
) -> List[dict]:
    """Per-run rows -> one summary row per (mixer, seconds), in first-seen order.

    Time and memory: mean with bootstrap CI over the ``ok`` runs. ``speedup_pct`` and
    ``mem_saving_pct`` compare the means with the ``baseline`` mixer's at the same
    length (``relative_saving``); NaN where either is missing or failed. Rows read back
    from a CSV (strings) are accepted.
    """
    groups: Dict[Tuple[str, float], List[dict]] = {}
    for r in rows:
        groups.setdefault((r["mixer"], float(r["seconds"])), []).append(r)
    summary = []
    for (mixer, seconds), rs in groups.items():
        ok = [r for r in rs if r["status"] == STATUS_OK]
        status = STATUS_OK if ok else rs[0]["status"]
        t = bootstrap_ci([_as_float(r["time_s"]) for r in ok], confidence, n_boot, seed)
        m = bootstrap_ci([_as_float(r["peak_mem_mib"]) for r in ok], confidence, n_boot, seed)
        summary.append(dict(
            mixer=mixer, label=rs[0].get("label", mixer), seconds=seconds, status=status, n_runs=len(ok),
            time_mean_s=t[0], time_ci_low_s=t[1], time_ci_high_s=t[2],
            mem_mean_mib=m[0], mem_ci_low_mib=m[1], mem_ci_high_mib=m[2],
            baseline=baseline or "", speedup_pct=math.nan, mem_saving_pct=math.nan,
            encoder_params_m=_as_float(rs[0].get("encoder_params_m")),
        ))
    add_relative(summary, baseline)
    return summary


def add_relative(summary: List[dict], baseline: Optional[str] = BASELINE) -> List[dict]:
    """Fill ``speedup_pct`` / ``mem_saving_pct`` of summary rows against ``baseline`` (in place)."""
    ref = {s["seconds"]: s for s in summary if s["mixer"] == baseline and s["status"] == STATUS_OK}
    for s in summary:
        b = ref.get(s["seconds"])
        ok = s["status"] == STATUS_OK and b is not None
        s["baseline"] = baseline or ""
        s["speedup_pct"] = relative_saving(s["time_mean_s"], b["time_mean_s"]) if ok else math.nan
        s["mem_saving_pct"] = relative_saving(s["mem_mean_mib"], b["mem_mean_mib"]) if ok else math.nan
    return summary


def average_savings(summary: List[dict], exclude: Sequence[str] = QUADRATIC) -> List[dict]:
    """Per length, the mean speed-up and memory saving of the mixers not in ``exclude``
    (the papers' "the alternatives use on average X% less memory" numbers)."""
    out = []
    for seconds in sorted({s["seconds"] for s in summary}):
        sel = [s for s in summary if s["seconds"] == seconds and s["mixer"] not in exclude]
        sp = [s["speedup_pct"] for s in sel if not math.isnan(s["speedup_pct"])]
        ms = [s["mem_saving_pct"] for s in sel if not math.isnan(s["mem_saving_pct"])]
        if sp or ms:
            out.append(dict(seconds=seconds, n_mixers=max(len(sp), len(ms)),
                            speedup_pct=float(np.mean(sp)) if sp else math.nan,
                            mem_saving_pct=float(np.mean(ms)) if ms else math.nan))
    return out


def scaling_exponents(summary: List[dict], min_seconds: float = 0.0) -> Dict[str, dict]:
    """Per mixer, the exponents a of time ~ T^a and memory ~ T^a fitted on its ``ok``
    lengths >= ``min_seconds`` (fixed per-forward overheads bias a below 1 at short lengths)."""
    out = {}
    for mixer in dict.fromkeys(s["mixer"] for s in summary):
        ok = [s for s in summary if s["mixer"] == mixer and s["status"] == STATUS_OK and s["seconds"] >= min_seconds]
        a_t, _, r2_t = fit_power_law([s["seconds"] for s in ok], [s["time_mean_s"] for s in ok])
        a_m, _, _ = fit_power_law([s["seconds"] for s in ok], [s["mem_mean_mib"] for s in ok])
        out[mixer] = dict(label=ok[0]["label"] if ok else mixer, a_time=a_t, r2_time=r2_t, a_mem=a_m,
                          n_points=len(ok), seconds_min=min((s["seconds"] for s in ok), default=math.nan),
                          seconds_max=max((s["seconds"] for s in ok), default=math.nan))
    return out


# --------------------------------------------------------------------------- formatting


def _fmt(v, spec: str = ".3g", signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, ("+" if signed else "") + spec)


def _fmt_seconds(s: float) -> str:
    return f"{s:g}"


def summary_markdown(summary: List[dict], baseline_label: str = "MHSA") -> str:
    """Markdown table: one row per (mixer, length), means with 95% CIs and savings."""
    head = (f"| mixer | audio (s) | time (s) | 95% CI | faster than {baseline_label} | "
            f"peak mem (MiB) | 95% CI | less memory than {baseline_label} | status |")
    lines = [head, "|---|---:|---:|---|---:|---:|---|---:|---|"]
    for s in summary:
        ok = s["status"] == STATUS_OK
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            s["label"], _fmt_seconds(s["seconds"]),
            _fmt(s["time_mean_s"]) if ok else "–",
            f"[{_fmt(s['time_ci_low_s'])}, {_fmt(s['time_ci_high_s'])}]" if ok else "–",
            _fmt(s["speedup_pct"], ".1f", True) + ("%" if not math.isnan(s["speedup_pct"]) else ""),
            _fmt(s["mem_mean_mib"], ".4g") if ok else "–",
            f"[{_fmt(s['mem_ci_low_mib'], '.4g')}, {_fmt(s['mem_ci_high_mib'], '.4g')}]" if ok else "–",
            _fmt(s["mem_saving_pct"], ".1f", True) + ("%" if not math.isnan(s["mem_saving_pct"]) else ""),
            s["status"] if ok else f"**{s['status']}**",
        ))
    return "\n".join(lines)


def averages_markdown(averages: List[dict]) -> str:
    lines = ["| audio (s) | mixers | mean speed-up | mean memory saving |", "|---:|---:|---:|---:|"]
    for a in averages:
        lines.append(f"| {_fmt_seconds(a['seconds'])} | {a['n_mixers']} | {_fmt(a['speedup_pct'], '.1f', True)}% "
                     f"| {_fmt(a['mem_saving_pct'], '.1f', True)}% |")
    return "\n".join(lines)


def exponents_markdown(exps: Dict[str, dict]) -> str:
    lines = ["| mixer | a (time ~ T^a) | R² | a (memory) | lengths (s) |", "|---|---:|---:|---:|---|"]
    for e in exps.values():
        rng = (f"{_fmt_seconds(e['seconds_min'])}–{_fmt_seconds(e['seconds_max'])} ({e['n_points']})"
               if e["n_points"] else "–")
        lines.append(f"| {e['label']} | {_fmt(e['a_time'], '.2f')} | {_fmt(e['r2_time'], '.3f')} "
                     f"| {_fmt(e['a_mem'], '.2f')} | {rng} |")
    return "\n".join(lines)


def train_markdown(rows: List[dict]) -> str:
    lines = ["| mixer | audio per utterance (s) | batch | step (s) | audio s / s | 95% CI | peak mem (MiB) | status |",
             "|---|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        ok = r["status"] == STATUS_OK
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["label"], _fmt_seconds(r["seconds"]), r["batch_size"], _fmt(r["step_mean_s"]) if ok else "–",
            _fmt(r["audio_s_per_s"], ".4g") if ok else "–",
            f"[{_fmt(r['audio_s_per_s_ci_low'], '.4g')}, {_fmt(r['audio_s_per_s_ci_high'], '.4g')}]" if ok else "–",
            _fmt(r["mem_mean_mib"], ".4g") if ok else "–", r["status"] if ok else f"**{r['status']}**"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- writers


def write_csv(path, rows: Iterable[dict], columns: Sequence[str]) -> Path:
    """Write ``rows`` (dicts) with exactly ``columns``; NaN and None become empty cells."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k])) else r[k])
                        for k in columns})
    return path


def read_csv(path) -> List[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


PLOT_STYLE = {  # color, line style: MHSA baselines dashed
    "mhsa": ("black", "--"), "mhsa_sdpa": ("tab:gray", "--"), "hypermixing": ("tab:blue", "-"),
    "fastformer": ("tab:orange", "-"), "summarymixing": ("tab:green", "-"), "mamba": ("tab:red", "-"),
    "pom": ("tab:purple", "-"),
}


def plot_benchmark(summary: List[dict], path, title: Optional[str] = None, log_scale: bool = False) -> Path:
    """Two panels as the papers' Figure 1: forward time and peak memory against seconds of
    audio, a line per mixer with its 95% CI as a band; a mixer's first failed length is
    marked with an x and its status. Uses the Agg canvas directly (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.6))
    FigureCanvasAgg(fig)
    ax_t, ax_m = fig.subplots(1, 2)
    mem_max = max((s["mem_ci_high_mib"] for s in summary if s["status"] == STATUS_OK), default=0.0)
    mem_div, mem_unit = (1024.0, "GiB") if mem_max > 2048 else (1.0, "MiB")
    extra = iter(["tab:brown", "tab:pink", "tab:olive", "tab:cyan"] * 10)
    for mixer in dict.fromkeys(s["mixer"] for s in summary):
        rs = sorted((s for s in summary if s["mixer"] == mixer), key=lambda s: s["seconds"])
        ok = [s for s in rs if s["status"] == STATUS_OK]
        failed = next((s for s in rs if s["status"] in FAILURES), None)
        color, ls = PLOT_STYLE.get(mixer, (next(extra), "-"))
        label = rs[0]["label"] + (f" ({failed['status']} at {_fmt_seconds(failed['seconds'])} s)" if failed else "")
        for ax, key, div in ((ax_t, "time", 1.0), (ax_m, "mem", mem_div)):
            unit = "s" if key == "time" else "mib"
            x = [s["seconds"] for s in ok]
            y = [s[f"{key}_mean_{unit}"] / div for s in ok]
            lo = [s[f"{key}_ci_low_{unit}"] / div for s in ok]
            hi = [s[f"{key}_ci_high_{unit}"] / div for s in ok]
            ax.plot(x, y, ls, marker="o", ms=3.5, color=color, label=label if ax is ax_t else None)
            if x:
                ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
            if failed is not None and y:
                ax.plot([failed["seconds"]], [y[-1]], "x", color=color, ms=9, mew=2)
                ax.annotate(failed["status"].upper(), (failed["seconds"], y[-1]), textcoords="offset points",
                            xytext=(4, 4), fontsize=7, color=color)
    ax_t.set_ylabel("forward time (s)")
    ax_m.set_ylabel(f"peak memory ({mem_unit})")
    for ax in (ax_t, ax_m):
        ax.set_xlabel("audio per utterance (s)")
        ax.grid(True, alpha=0.3)
        if log_scale:
            ax.set_xscale("log")
            ax.set_yscale("log")
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(len(labels), 1)), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 0.92 if title else 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


# --------------------------------------------------------------------------- memory


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


# --------------------------------------------------------------------------- models


def _round_to(x: float, multiple: int) -> int:
    return max(multiple, int(round(x / multiple)) * multiple)


# The mixers' own width options and their defaults, scaled with ``width_scale``.
MIXER_SIZE_OPTIONS = {
    "hypermixing": {"hypernet_size": "d_ffn"},
    "summarymixing": {"local_proj_hid_dim": [512], "local_proj_out_dim": 512,
                      "summary_hid_dim": [512], "summary_out_dim": 512},
}


def encoder_config(
    variant: str, size: str = "base", width_scale: float = 1.0, d_model: Optional[int] = None,
    num_layers: Optional[int] = None, nhead: Optional[int] = None, d_ffn: Optional[int] = None,
    base_config: Optional[dict] = None,
) -> dict:
    """BestRQModel arguments for a variant at a named size (``sizes.model_config``).

    ``width_scale`` scales the parameter-matched d_model of the size table (rounded to
    a multiple of 2 * nhead), and with it d_ffn and the mixers' own hidden sizes
    (HyperMixing's hypernet, SummaryMixing's branches): scaled-down models keep the
    papers' ratios. ``d_model`` / ``num_layers`` / ``nhead`` / ``d_ffn`` override.
    ``base_config`` (from a config file) replaces the size table.
    """
    v = VARIANTS.get(variant, Variant(variant, {}, variant))
    if base_config is None:
        from .sizes import model_config

        cfg = model_config(v.mixer, size)
    else:
        cfg = dict(base_config)
    cfg["mixer_kwargs"] = {**dict(cfg.get("mixer_kwargs") or {}), **v.mixer_kwargs}
    if nhead is not None:
        cfg["nhead"] = nhead
    heads = cfg.get("nhead", 8)
    if width_scale != 1.0:
        cfg["d_model"] = _round_to(cfg["d_model"] * width_scale, 2 * heads)
        full_ffn = cfg.get("d_ffn", 2048)
        cfg["d_ffn"] = _round_to(full_ffn * width_scale, heads)

        def scale(value):
            if isinstance(value, (list, tuple)):
                return [scale(x) for x in value]
            return _round_to(value * width_scale, heads)

        for key, default in MIXER_SIZE_OPTIONS.get(v.mixer, {}).items():
            value = cfg["mixer_kwargs"].get(key, full_ffn if default == "d_ffn" else default)
            cfg["mixer_kwargs"][key] = scale(value)
    for key, val in (("d_model", d_model), ("num_layers", num_layers), ("d_ffn", d_ffn)):
        if val is not None:
            cfg[key] = val
    return cfg


def build_model(config: dict):
    from .model import BestRQModel

    return BestRQModel(**config)


def encoder_parameters(config: dict) -> int:
    """Parameters of what ``encode`` runs (front end + Conformer), built on the meta device."""
    with torch.device("meta"):
        model = build_model(config)
    return sum(p.numel() for m in (model.frontend, model.encoder) for p in m.parameters())


class _YamlTolerantLoader:
    """Builds a PyYAML loader that reads hyperpyyaml tags as plain values (``!ref <k>`` -> "<k>")."""

    @staticmethod
    def make():
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def any_tag(loader, suffix, node):
            if isinstance(node, yaml.MappingNode):
                return loader.construct_mapping(node, deep=True)
            if isinstance(node, yaml.SequenceNode):
                return loader.construct_sequence(node, deep=True)
            return loader.construct_scalar(node)

        Loader.add_multi_constructor("!", any_tag)
        return Loader


CONFIG_ALIASES = {"attention_type": "mixer", "num_encoder_layers": "num_layers"}


def load_model_config(path) -> dict:
    """BestRQModel arguments from a JSON (``brq_model.json``) or (hyperpy)YAML file.

    Keys are BestRQModel's argument names (SpeechBrain's ``attention_type`` and
    ``num_encoder_layers`` are accepted), at the top level or in a nested mapping that
    has ``d_model``; ``!ref <key>`` to a top-level key is resolved, other tags are read
    as plain values. Missing arguments take BestRQModel's defaults.
    """
    import inspect

    from .model import BestRQModel

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.load(text, Loader=_YamlTolerantLoader.make())  # noqa: S506 (safe loader subclass)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of model arguments")

    def resolve(v, depth=0):
        if isinstance(v, str) and re.fullmatch(r"<[\w.]+>", v.strip()) and depth < 10:
            return resolve(data.get(v.strip()[1:-1], v), depth + 1)
        return v

    names = set(inspect.signature(BestRQModel.__init__).parameters) - {"self"}
    scopes = [data] + [v for v in data.values() if isinstance(v, dict) and "d_model" in v]
    cfg = {}
    for scope in scopes:
        for k, v in scope.items():
            k = CONFIG_ALIASES.get(k, k)
            if k in names:
                cfg[k] = resolve(v)
    if "d_model" not in cfg:
        raise ValueError(f"{path}: no d_model found; expected BestRQModel arguments ({', '.join(sorted(names))})")
    return cfg


# --------------------------------------------------------------------------- measurements


class TimeLimitExceeded(Exception):
    """A forward (or training step) took longer than the configured time limit."""


OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
                "failed to allocate")


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

        for _ in range(spec.get("warmup", 1)):
            progress("forward")
            elapsed, _ = measure_peak_memory(forward, meter)
            _check_time(elapsed, limit, "warm-up forward")
        times, mems = [], []
        for _ in range(spec["runs"]):
            progress("forward")
            elapsed, peak = measure_peak_memory(forward, meter)
            _check_time(elapsed, limit, "forward")
            times.append(elapsed)
            mems.append(peak)
    return {"times": times, "mems": mems, "memory_method": meter.method}


def measure_train_step(spec: dict, progress: Callable[[str], None] = lambda msg: None) -> dict:
    """Wall time and peak memory of BEST-RQ training steps (forward + backward).

    A step: quantizer targets of the clean features, span masking (15%, spans of 4
    frames, N(0, 0.1) noise), the model in train mode (dropout on), cross-entropy on the
    masked encoder frames, backward; gradients are dropped (set to None) after each step.
    fp16 / bf16 use autocast (mixed precision, fp32 weights) as in pre-training.
    spec as ``measure_config`` (``runs`` = timed steps).
    """
    import torch.nn.functional as F

    from .masking import apply_span_mask

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
        on = frame_mask.view(-1, stack).any(dim=1)[: logits.shape[1]]  # masked encoder frames
        loss = F.cross_entropy(logits[:, on].float().flatten(0, 1), targets[:, on].flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)
        return None

    meter.set_baseline()
    for _ in range(spec.get("warmup", 1)):
        progress("forward")
        elapsed, _ = measure_peak_memory(step, meter)
        _check_time(elapsed, limit, "warm-up training step")
    times, mems = [], []
    for _ in range(spec["runs"]):
        progress("forward")
        elapsed, peak = measure_peak_memory(step, meter)
        _check_time(elapsed, limit, "training step")
        times.append(elapsed)
        mems.append(peak)
    return {"times": times, "mems": mems, "memory_method": meter.method}


TASKS = {"inference": "measure_config", "train": "measure_train_step"}


def _task_function(task: str) -> Callable:
    return globals()[TASKS[task]]  # looked up at call time (tests monkeypatch these)


def _failure(exc: BaseException) -> dict:
    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return {"status": classify_exception(exc), "error": msg[:300]}


def run_in_process(task: str, spec: dict) -> dict:
    """Run a measurement here; an exception becomes a failure result (status + error)."""
    threads = torch.get_num_threads()
    try:
        result = {"status": STATUS_OK, **_task_function(task)(spec)}
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none crashes the sweep
        result = _failure(exc)
    _set_threads(threads)
    gc.collect()
    if torch.cuda.is_available() and torch.device(spec["device"]).type == "cuda":
        torch.cuda.empty_cache()
    return result


def _child_main(conn, task: str, spec: dict, memory_limit_bytes: Optional[int]):
    """Entry point of an isolated measurement process: results go back through ``conn``."""
    gc.freeze()  # the libraries' objects: later collections (before each run) skip them
    try:
        if memory_limit_bytes:
            size_kib = _proc_status_kib("VmSize") or 0
            limit = size_kib * 1024 + int(memory_limit_bytes)
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        result = {"status": STATUS_OK, **_task_function(task)(spec, progress=lambda msg: conn.send(("progress", msg)))}
    except Exception as exc:  # noqa: BLE001
        result = _failure(exc)
    conn.send(("result", result))
    conn.close()


BUILD_TIMEOUT_S = 900.0
_CONTEXT = None


def _mp_context():
    """Forkserver (children forked from a process that has imported torch and the model:
    fresh address space, start-up in milliseconds); spawn where forkserver is missing."""
    global _CONTEXT
    if _CONTEXT is None:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            from multiprocessing import forkserver

            ctx.set_forkserver_preload(["brq_att_alt.benchmarking", "brq_att_alt.model"])
            # The forkserver does not receive this process's sys.path (CPython ignores it
            # before 3.13): start it with this package importable through PYTHONPATH.
            root = str(Path(__file__).resolve().parents[1])
            old = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = os.pathsep.join([root] + ([old] if old else []))
            try:
                forkserver.ensure_running()
            finally:
                if old is None:
                    del os.environ["PYTHONPATH"]
                else:
                    os.environ["PYTHONPATH"] = old
        _CONTEXT = ctx
    return _CONTEXT


def run_isolated(task: str, spec: dict, memory_limit_bytes: Optional[int] = None,
                 grace_s: float = 5.0) -> dict:
    """Run a measurement in a fresh process with a hard time limit per forward.

    The child reports before each forward; if the next report does not come within
    ``spec["time_limit"]`` + ``grace_s`` it is killed (``timeout``). A child that dies
    by SIGKILL without a result was killed by the OS, presumably for memory (``oom``).
    """
    ctx = _mp_context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(child, task, spec, memory_limit_bytes), daemon=True)
    proc.start()
    child.close()
    limit = spec.get("time_limit")
    deadline = time.monotonic() + max(BUILD_TIMEOUT_S, limit or 0.0)
    result = None
    try:
        while result is None:
            if parent.poll(min(max(deadline - time.monotonic(), 0.0), 1.0)):
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    break
                if kind == "result":
                    result = payload
                elif limit is not None:
                    deadline = time.monotonic() + limit + grace_s
                else:
                    deadline = math.inf
            elif not proc.is_alive():
                break
            elif time.monotonic() > deadline:
                proc.kill()
                result = {"status": STATUS_TIMEOUT,
                          "error": f"killed: no forward finished within the time limit ({limit:g} s)"
                          if limit is not None else "killed: model build took too long"}
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()
    return result if result is not None else classify_exit_code(proc.exitcode)


def classify_exit_code(code: Optional[int]) -> dict:
    """Failure result of a worker that ended without sending a result. SIGKILL is what the
    Linux OOM killer sends, so it counts as ``oom``; anything else is an ``error``."""
    import signal

    if code == -signal.SIGKILL:
        return {"status": STATUS_OOM, "error": "worker killed by SIGKILL (the OS's out-of-memory killer?)"}
    if code is not None and code < 0:
        return {"status": STATUS_ERROR, "error": f"worker killed by signal {-code}"}
    return {"status": STATUS_ERROR, "error": f"worker exited with code {code} without a result"}


def available_memory_bytes() -> Optional[int]:
    """MemAvailable, or the cgroup's remaining limit when that is smaller (Linux); else None."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            m = re.search(r"^MemAvailable:\s+(\d+) kB", f.read(), re.M)
        avail = int(m.group(1)) * 1024 if m else None
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            lim = Path(limit_file).read_text().strip()
            use = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if lim.isdigit() and int(lim) < 2**60:
            free = int(lim) - use
            avail = free if avail is None else min(avail, free)
    return avail


# --------------------------------------------------------------------------- sweeps


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


def train_summary(rows: List[dict], confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> List[dict]:
    """Per-step rows of ``run_sweep(task="train")`` -> one throughput row per mixer."""
    out = []
    for s in summarize(rows, baseline=None, confidence=confidence, n_boot=n_boot, seed=seed):
        rs = [r for r in rows if r["mixer"] == s["mixer"] and float(r["seconds"]) == s["seconds"]]
        ok = [r for r in rs if r["status"] == STATUS_OK]
        audio = s["seconds"] * int(rs[0]["batch_size"])
        thr = bootstrap_ci([audio / _as_float(r["time_s"]) for r in ok], confidence, n_boot, seed)
        out.append(dict(
            mixer=s["mixer"], label=s["label"], seconds=s["seconds"], batch_size=rs[0]["batch_size"],
            status=s["status"], n_steps=s["n_runs"], step_mean_s=s["time_mean_s"], step_ci_low_s=s["time_ci_low_s"],
            step_ci_high_s=s["time_ci_high_s"], audio_s_per_s=thr[0], audio_s_per_s_ci_low=thr[1],
            audio_s_per_s_ci_high=thr[2], mem_mean_mib=s["mem_mean_mib"],
            memory_method=ok[0]["memory_method"] if ok else "", device=rs[0]["device"], dtype=rs[0]["dtype"],
            error="" if ok else rs[0].get("error", ""),
        ))
    return out


# --------------------------------------------------------------------------- machine


def machine_info(device="cpu") -> dict:
    """What the numbers were measured on: CPU model, cores, memory, versions, device name."""
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        if m:
            cpu = m.group(1).strip()
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    mem = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            mm = re.search(r"^MemTotal:\s+(\d+) kB", f.read(), re.M)
        mem = f"{int(mm.group(1)) / 2**20:.1f} GiB" if mm else None
    except OSError:
        pass
    info = {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": usable, "torch_threads": torch.get_num_threads(),
        "memory": mem, "os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "device": str(device),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device_name": cpu if device.type == "cpu" else torch.cuda.get_device_name(device),
    }
    try:
        import speechbrain

        info["speechbrain"] = speechbrain.__version__
    except Exception:  # noqa: BLE001
        pass
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(cuda=torch.version.cuda, gpu_memory=f"{props.total_memory / 2**30:.1f} GiB",
                    cudnn=torch.backends.cudnn.version())
        try:
            import mamba_ssm  # noqa: F401

            info["mamba_cuda_kernels"] = "installed"
        except ImportError:
            info["mamba_cuda_kernels"] = "not installed (pure PyTorch scan)"
    return info


def machine_label(info: dict) -> str:
    if info["device"].startswith("cuda"):
        return f"{info['device_name']} ({info.get('gpu_memory', '')}), torch {info['torch']}"
    threads = info["torch_threads"]
    return (f"{info['cpu']} ({info['usable_cpus']} CPUs, {threads} torch thread{'s' if threads != 1 else ''}, "
            f"{info['memory']}), torch {info['torch']}")


# --------------------------------------------------------------------------- the whole benchmark


# --quick: 7 encoders x 5 lengths + 7 training configurations in about a minute and a half
# on a 2-core CPU. Every process still warms up on 1 s of audio; on CPU a first forward at
# the full length is not slower than the next ones (the allocator is trimmed before each).
QUICK_PRESET = dict(lengths=[10, 20, 40, 80, 160], batch_size=1, runs=2, warmup=0, num_layers=2, width_scale=0.25,
                    nhead=4, time_limit=30.0, train_seconds=5.0, train_steps=2, threads=1)
DEFAULT_LENGTHS = [10, 20, 30, 40, 50, 60, 70, 80]
LONG_LENGTHS = [10, 30, 60, 120, 240, 360, 480, 600]


@dataclass
class BenchmarkOptions:
    out: str = "results/benchmark"
    mixers: List[str] = field(default_factory=lambda: list(VARIANTS))
    configs: List[str] = field(default_factory=list)  # model config files (replace mixers)
    size: str = "base"
    width_scale: float = 1.0
    d_model: Optional[int] = None
    num_layers: Optional[int] = None
    nhead: Optional[int] = None
    d_ffn: Optional[int] = None
    lengths: List[float] = field(default_factory=lambda: list(DEFAULT_LENGTHS))
    batch_size: int = 6
    runs: int = 10
    warmup: int = 1
    device: str = "cpu"
    dtype: str = "fp32"
    threads: Optional[int] = None  # torch CPU threads (None: torch's default)
    time_limit: Optional[float] = 120.0
    memory_limit_gb: Optional[float] = None
    isolate: Optional[bool] = None  # None: in fresh processes on CPU, in this process on CUDA
    padding_mask: bool = False
    baseline: str = BASELINE
    confidence: float = 0.95
    n_boot: int = 10_000
    seed: int = 0
    fit_from: float = 0.0
    log_scale: bool = False
    train_seconds: Optional[float] = None
    train_batch_size: Optional[int] = None
    train_steps: int = 5
    skip_inference: bool = False
    title: Optional[str] = None


def _variant_table(opts: BenchmarkOptions) -> Dict[str, dict]:
    """Variant key -> BestRQModel arguments, from the mixers list or the config files."""
    kw = dict(size=opts.size, width_scale=opts.width_scale, d_model=opts.d_model, num_layers=opts.num_layers,
              nhead=opts.nhead, d_ffn=opts.d_ffn)
    if not opts.configs:
        for m in opts.mixers:
            if m not in VARIANTS:
                raise ValueError(f"Unknown mixer variant {m!r}; valid: {', '.join(VARIANTS)}")
        return {m: encoder_config(m, **kw) for m in opts.mixers}
    table = {}
    for path in opts.configs:
        base = load_model_config(path)
        key = Path(path).stem
        VARIANTS.setdefault(key, Variant(base.get("mixer", "mhsa"), {}, f"{key} ({base.get('mixer', 'mhsa')})"))
        table[key] = encoder_config(key, base_config=base, **{k: v for k, v in kw.items() if k != "size"})
    return table


def run_benchmark(opts: BenchmarkOptions, log: Callable[[str], None] = print) -> dict:
    """Run the sweep(s), write runs.csv, summary.csv, summary.md, benchmark.png,
    machine.txt (and train_throughput.csv) under ``opts.out``, print the tables; return
    {"rows", "summary", "exponents", "train", "markdown", "errors"}."""
    t_start = time.perf_counter()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(opts.device)
    if opts.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
    isolate = (device.type == "cpu") if opts.isolate is None else opts.isolate
    if isolate:
        _mp_context()  # the forkserver imports the libraries while this process prepares
    _set_threads(opts.threads)
    mem_limit = None
    if isolate and device.type == "cpu":
        if opts.memory_limit_gb is not None:
            mem_limit = int(opts.memory_limit_gb * 2**30) if opts.memory_limit_gb > 0 else None
        else:
            avail = available_memory_bytes()
            mem_limit = int(0.8 * avail) if avail else None
    table = _variant_table(opts)
    baseline = opts.baseline if opts.baseline in table else None
    info_cache = {}

    def info(variant):
        if variant not in info_cache:
            cfg = table[variant]
            info_cache[variant] = dict(label=VARIANTS[variant].label, d_model=cfg["d_model"],
                                       num_layers=cfg.get("num_layers", 12),
                                       encoder_params_m=round(encoder_parameters(cfg) / 1e6, 3))
        return info_cache[variant]

    def spec(variant, seconds, batch_size=opts.batch_size, runs=opts.runs):
        return dict(model=table[variant], seconds=seconds, batch_size=batch_size, runs=runs, warmup=opts.warmup,
                    device=str(device), dtype=opts.dtype, time_limit=opts.time_limit, seed=opts.seed,
                    padding_mask=opts.padding_mask, threads=opts.threads)

    machine = machine_info(device)
    log(f"# {machine_label(machine)} | isolate={isolate} | memory limit per worker: "
        f"{'none' if mem_limit is None else f'{mem_limit / 2**30:.1f} GiB'}")
    for v in table:
        i = info(v)
        log(f"#   {v}: d_model {i['d_model']}, {i['num_layers']} layers, encoder {i['encoder_params_m']:.2f}M params")

    result = dict(rows=[], summary=[], exponents={}, train=[], markdown="", errors=[])
    md = [f"Machine: {machine_label(machine)}; load average at the start {machine['load_average']} "
          f"(other processes on the machine slow it down).", ""]
    if not opts.skip_inference:
        rows = run_sweep(list(table), opts.lengths, spec, task="inference", isolate=isolate,
                         memory_limit_bytes=mem_limit, info=info, log=log)
        summary = summarize(rows, baseline, opts.confidence, opts.n_boot, opts.seed)
        exps = scaling_exponents(summary, opts.fit_from)
        write_csv(out / "runs.csv", rows, RUN_COLUMNS)
        write_csv(out / "summary.csv", summary, SUMMARY_COLUMNS)
        title = opts.title or (f"BEST-RQ encoders ({_describe_model(opts)}), forward pass, batch {opts.batch_size}, "
                               f"{opts.dtype}, {opts.runs} runs, 95% CI\n{machine_label(machine)}")
        plot_benchmark(summary, out / "benchmark.png", title=title, log_scale=opts.log_scale)
        base_label = VARIANTS[baseline].label if baseline else "baseline"
        md += [f"Encoders: {_describe_model(opts)}. Forward pass (eval, inference mode), batch {opts.batch_size}, "
               f"{opts.dtype}, {opts.runs} runs after a warm-up on 1 s of audio"
               f"{f' and {opts.warmup} at the same length' if opts.warmup else ''}; mean and 95% bootstrap CI. "
               f"Memory: {_memory_note(rows)}.", "",
               summary_markdown(summary, base_label), "",
               f"Faster / less memory = 100 * (1 - value / value of {base_label}) at the same length.", ""]
        avg = average_savings(summary, exclude=[k for k in table if VARIANTS[k].mixer == "mhsa"])
        if baseline and avg:
            md += [f"Mean over the linear mixers (all but the MHSA variants), relative to {base_label}:", "",
                   averages_markdown(avg), ""]
        md += [f"Scaling exponent a of time ~ T^a (least squares on log-log, lengths >= {opts.fit_from:g} s):", "",
               exponents_markdown(exps), ""]
        result.update(rows=rows, summary=summary, exponents=exps)
        result["errors"] += [r for r in rows if r["status"] == STATUS_ERROR]
    if opts.train_seconds:
        tb = opts.train_batch_size or opts.batch_size
        trows = run_sweep(list(table), [opts.train_seconds],
                          lambda v, s: {**spec(v, s, batch_size=tb, runs=opts.train_steps),
                                        "warmup": max(opts.warmup, 1)}, task="train",
                          isolate=isolate, memory_limit_bytes=mem_limit, info=info, log=log)
        tsum = train_summary(trows, opts.confidence, opts.n_boot, opts.seed)
        write_csv(out / "train_runs.csv", trows, RUN_COLUMNS)
        write_csv(out / "train_throughput.csv", tsum, TRAIN_COLUMNS)
        md += [f"Training throughput (BEST-RQ step: masking, forward, cross-entropy on masked frames, backward), "
               f"{opts.train_seconds:g} s utterances, batch {tb}, {opts.dtype}"
               f"{' autocast' if opts.dtype != 'fp32' else ''}, {opts.train_steps} steps:", "", train_markdown(tsum), ""]
        result["train"] = tsum
        result["errors"] += [r for r in trows if r["status"] == STATUS_ERROR]
    elapsed = time.perf_counter() - t_start
    md.append(f"Total benchmark wall time: {elapsed:.1f} s.")
    text = "\n".join(md)
    (out / "summary.md").write_text(text + "\n", encoding="utf-8")
    machine.update(load_average_end=machine_info(device)["load_average"], command=" ".join(sys.argv),
                   wall_time_s=round(elapsed, 1), options=asdict(opts))
    (out / "machine.txt").write_text("".join(f"{k}: {v}\n" for k, v in machine.items()), encoding="utf-8")
    log("")
    log(text)
    result["markdown"] = text
    return result


def _describe_model(opts: BenchmarkOptions) -> str:
    if opts.configs:
        return ", ".join(Path(c).stem for c in opts.configs)
    parts = [opts.size]
    if opts.width_scale != 1.0:
        parts.append(f"width x{opts.width_scale:g}")
    parts += [f"{k} {v}" for k, v in (("d_model", opts.d_model), ("layers", opts.num_layers),
                                        ("heads", opts.nhead), ("d_ffn", opts.d_ffn)) if v is not None]
    return ", ".join(parts)


def _memory_note(rows: List[dict]) -> str:
    methods = sorted({r["memory_method"] for r in rows if r.get("memory_method")})
    notes = {
        "cpu_peak_rss_reset_per_run": "peak resident set of a fresh process per configuration minus its "
                                      "resident set after building the model and the input (reset per run)",
        "cpu_peak_rss_per_process": "peak resident set of a fresh process per configuration minus its "
                                    "resident set after building the model and the input",
        "cuda_max_allocated_minus_before": "torch.cuda.max_memory_allocated during the forward minus the memory "
                                           "allocated before it",
    }
    return "; ".join(notes.get(m, m) for m in methods) or "n/a"
