"""The reports: CSV columns, Markdown tables, the figure, and the machine description.

Tables and figure state the confidence level and mark intervals of fewer than
``stats.MIN_RUNS_FOR_CI`` runs as indicative (``†`` in Markdown, ``ci_indicative`` in CSV).
"""

import math
import os
import platform
import re
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from .measure import FAILURES, STATUS_OK
from .stats import MIN_RUNS_FOR_CI

RUN_COLUMNS = [
    "mixer", "label", "seconds", "frames", "batch_size", "run", "status", "time_s", "peak_mem_mib",
    "memory_method", "device", "dtype", "d_model", "num_layers", "encoder_params_m", "error",
]
SUMMARY_COLUMNS = [
    "mixer", "label", "seconds", "status", "n_runs",
    "time_mean_s", "time_ci_low_s", "time_ci_high_s",
    "mem_mean_mib", "mem_ci_low_mib", "mem_ci_high_mib", "ci_indicative",
    "baseline", "speedup_pct", "mem_saving_pct", "encoder_params_m",
]
TRAIN_COLUMNS = [
    "mixer", "label", "seconds", "batch_size", "status", "n_steps",
    "step_mean_s", "step_ci_low_s", "step_ci_high_s",
    "audio_s_per_s", "audio_s_per_s_ci_low", "audio_s_per_s_ci_high", "ci_indicative",
    "mem_mean_mib", "memory_method", "device", "dtype", "error",
]
INTERLEAVED_RUN_COLUMNS = [
    "mixer", "label", "seconds", "frames", "batch_size", "round", "place", "status", "time_s", "flops",
    "device", "dtype", "d_model", "num_layers", "encoder_params_m", "error",
]
INTERLEAVED_COLUMNS = [
    "mixer", "label", "seconds", "batch_size", "status", "n_rounds", "statistic", "time_s", "time_best_s",
    "time_median_s", "gflop", "gflop_per_s", "matmul_gflop_per_s", "matmul_bound_share", "baseline", "speedup_x",
    "audio_s_per_s", "device", "dtype", "error",
]
INDICATIVE_MARK = "†"


def _fmt(v, spec: str = ".3g", signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, ("+" if signed else "") + spec)


def _ci(row: dict, low: str, high: str, spec: str = ".3g") -> str:
    if row["status"] != STATUS_OK or math.isnan(row[low]):
        return "–"
    return f"[{_fmt(row[low], spec)}, {_fmt(row[high], spec)}]" + (INDICATIVE_MARK if row["ci_indicative"] else "")


def indicative_note(rows: List[dict], confidence: float = 0.95) -> str:
    """A sentence on the intervals of ``rows`` that are indicative only ("" if none)."""
    few = [r for r in rows if r.get("ci_indicative")]
    if not few:
        return ""
    runs = sorted({r.get("n_runs", r.get("n_steps")) for r in few})
    return (f"{INDICATIVE_MARK} Indicative only: {len(few)} interval(s) from {'/'.join(map(str, runs))} run(s), "
            f"fewer than {MIN_RUNS_FOR_CI}; their {confidence:.0%} coverage assumes normal run times.")


def summary_markdown(summary: List[dict], baseline_label: str = "MHSA", confidence: float = 0.95) -> str:
    """Markdown table: one row per (mixer, length), means with t-intervals and savings."""
    ci = f"{confidence:.0%} CI"
    head = (f"| mixer | audio (s) | time (s) | {ci} | faster than {baseline_label} | "
            f"peak mem (MiB) | {ci} | less memory than {baseline_label} | status |")
    lines = [head, "|---|---:|---:|---|---:|---:|---|---:|---|"]
    for s in summary:
        ok = s["status"] == STATUS_OK
        lines.append("| {} | {:g} | {} | {} | {} | {} | {} | {} | {} |".format(
            s["label"], s["seconds"], _fmt(s["time_mean_s"]) if ok else "–",
            _ci(s, "time_ci_low_s", "time_ci_high_s"),
            _fmt(s["speedup_pct"], ".1f", True) + ("%" if not math.isnan(s["speedup_pct"]) else ""),
            _fmt(s["mem_mean_mib"], ".4g") if ok else "–",
            _ci(s, "mem_ci_low_mib", "mem_ci_high_mib", ".4g"),
            _fmt(s["mem_saving_pct"], ".1f", True) + ("%" if not math.isnan(s["mem_saving_pct"]) else ""),
            s["status"] if ok else f"**{s['status']}**",
        ))
    return "\n".join(lines)


def averages_markdown(averages: List[dict]) -> str:
    lines = ["| audio (s) | mixers | mean speed-up | mean memory saving |", "|---:|---:|---:|---:|"]
    for a in averages:
        lines.append(f"| {a['seconds']:g} | {a['n_mixers']} | {_fmt(a['speedup_pct'], '.1f', True)}% "
                     f"| {_fmt(a['mem_saving_pct'], '.1f', True)}% |")
    return "\n".join(lines)


def exponents_markdown(exps: Dict[str, dict]) -> str:
    lines = ["| mixer | a (time ~ T^a) | R² | a (memory) | lengths (s) |", "|---|---:|---:|---:|---|"]
    for e in exps.values():
        rng = f"{e['seconds_min']:g}–{e['seconds_max']:g} ({e['n_points']})" if e["n_points"] else "–"
        lines.append(f"| {e['label']} | {_fmt(e['a_time'], '.2f')} | {_fmt(e['r2_time'], '.3f')} "
                     f"| {_fmt(e['a_mem'], '.2f')} | {rng} |")
    return "\n".join(lines)


def train_markdown(rows: List[dict], confidence: float = 0.95) -> str:
    lines = [f"| mixer | audio per utterance (s) | batch | step (s) | audio s / s | {confidence:.0%} CI "
             "| peak mem (MiB) | status |", "|---|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        ok = r["status"] == STATUS_OK
        lines.append("| {} | {:g} | {} | {} | {} | {} | {} | {} |".format(
            r["label"], r["seconds"], r["batch_size"], _fmt(r["step_mean_s"]) if ok else "–",
            _fmt(r["audio_s_per_s"], ".4g") if ok else "–",
            _ci(r, "audio_s_per_s_ci_low", "audio_s_per_s_ci_high", ".4g"),
            _fmt(r["mem_mean_mib"], ".4g") if ok else "–", r["status"] if ok else f"**{r['status']}**"))
    return "\n".join(lines)


def interleaved_markdown(rows: List[dict], baseline_label: str = "MHSA (RelPosMHAXL)", train: bool = False,
                         matmul_key: str = "matmul") -> str:
    """Markdown table of ``stats.interleaved_summary`` rows (the probe's row last, as the rate)."""
    stat = rows[0]["statistic"] if rows else "best"
    what = "step" if train else "time"
    head = (f"| variant | audio (s) | {what} ({stat}, s) | median (s) | "
            + ("audio s / s | " if train else "")
            + f"GFLOP | GFLOP/s | share of the matmul-bound time | {baseline_label} / this | status |")
    lines = [head, "|---|---:|---:|---:|" + ("---:|" if train else "") + "---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["mixer"] == matmul_key, r["seconds"])):
        ok = r["status"] == STATUS_OK
        share = r["matmul_bound_share"]
        cells = [r["label"], f"{r['seconds']:g}", _fmt(r["time_s"]) if ok else "–",
                 _fmt(r["time_median_s"]) if ok else "–"]
        if train:
            cells.append(_fmt(r["audio_s_per_s"], ".4g") if ok and r["mixer"] != matmul_key else "–")
        cells += [_fmt(r["gflop"], ".4g"), _fmt(r["gflop_per_s"], ".4g") if ok else "–",
                  "–" if not ok or math.isnan(share) else f"{100 * share:.0f}%",
                  "–" if r["mixer"] == matmul_key or math.isnan(r["speedup_x"]) else f"{r['speedup_x']:.2f}x",
                  r["status"] if ok else f"**{r['status']}**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_MEMORY_METHODS = {
    "cpu_peak_rss_reset_per_run": "peak resident set of a fresh process per configuration minus its "
                                  "resident set after building the model and the input (reset per run)",
    "cpu_peak_rss_per_process": "peak resident set of a fresh process per configuration minus its "
                                "resident set after building the model and the input",
    "cuda_max_allocated_minus_before": "torch.cuda.max_memory_allocated during the forward minus the memory "
                                       "allocated before it",
}


def memory_note(rows: List[dict]) -> str:
    """What the peak-memory numbers of ``rows`` are, in words."""
    methods = sorted({r["memory_method"] for r in rows if r.get("memory_method")})
    return "; ".join(_MEMORY_METHODS.get(m, m) for m in methods) or "n/a"


# ----------------------------------------------------------------------------- figure
_PLOT_STYLE = {  # color, line style: MHSA baselines dashed
    "mhsa": ("black", "--"), "mhsa_sdpa": ("tab:gray", "--"), "hypermixing": ("tab:blue", "-"),
    "fastformer": ("tab:orange", "-"), "summarymixing": ("tab:green", "-"), "mamba": ("tab:red", "-"),
    "pom": ("tab:purple", "-"),
}


def plot_benchmark(summary: List[dict], path, title: Optional[str] = None, log_scale: bool = False) -> Path:
    """Two panels as the papers' Figure 1: forward time and peak memory against seconds of
    audio, a line per mixer with its confidence interval as a band; a mixer's first failed
    length is marked with an x and its status. Uses the Agg canvas directly (no pyplot
    state). Needs matplotlib (ImportError otherwise)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.6))
    FigureCanvasAgg(fig)
    ax_t, ax_m = fig.subplots(1, 2)
    mem_max = max((s["mem_mean_mib"] for s in summary if s["status"] == STATUS_OK), default=0.0)
    mem_div, mem_unit = (1024.0, "GiB") if mem_max > 2048 else (1.0, "MiB")
    extra = iter(["tab:brown", "tab:pink", "tab:olive", "tab:cyan"] * 10)
    for mixer in dict.fromkeys(s["mixer"] for s in summary):
        rs = sorted((s for s in summary if s["mixer"] == mixer), key=lambda s: s["seconds"])
        ok = [s for s in rs if s["status"] == STATUS_OK]
        failed = next((s for s in rs if s["status"] in FAILURES), None)
        color, ls = _PLOT_STYLE.get(mixer, (next(extra), "-"))
        label = rs[0]["label"] + (f" ({failed['status']} at {failed['seconds']:g} s)" if failed else "")
        for ax, key, div in ((ax_t, "time", 1.0), (ax_m, "mem", mem_div)):
            unit = "s" if key == "time" else "mib"
            x = [s["seconds"] for s in ok]
            y = [s[f"{key}_mean_{unit}"] / div for s in ok]
            ax.plot(x, y, ls, marker="o", ms=3.5, color=color, label=label if ax is ax_t else None)
            band = [s for s in ok if not math.isnan(s[f"{key}_ci_low_{unit}"])]
            if band:
                ax.fill_between([s["seconds"] for s in band], [s[f"{key}_ci_low_{unit}"] / div for s in band],
                                [s[f"{key}_ci_high_{unit}"] / div for s in band], color=color, alpha=0.2, linewidth=0)
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


# ----------------------------------------------------------------------------- machine
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
    """One line naming the machine of ``machine_info``."""
    if info["device"].startswith("cuda"):
        return f"{info['device_name']} ({info.get('gpu_memory', '')}), torch {info['torch']}"
    threads = info["torch_threads"]
    return (f"{info['cpu']} ({info['usable_cpus']} CPUs, {threads} torch thread{'s' if threads != 1 else ''}, "
            f"{info['memory']}), torch {info['torch']}")
