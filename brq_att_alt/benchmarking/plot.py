"""The benchmark figure (the papers' Figure 1): time and peak memory against seconds of audio."""

from pathlib import Path
from typing import List, Optional

from .formatting import _fmt_seconds
from .status import FAILURES, STATUS_OK

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
