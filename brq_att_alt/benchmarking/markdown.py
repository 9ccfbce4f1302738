"""Markdown tables: summary per (mixer, length), mean savings, scaling exponents, training throughput."""

import math
from typing import Dict, List

from .formatting import _fmt, _fmt_seconds
from .status import STATUS_OK


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
