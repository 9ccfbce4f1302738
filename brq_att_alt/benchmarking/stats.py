"""Statistics of the runs.

Mean and percentile-bootstrap confidence interval (seeded numpy RNG); time and memory
relative to the baseline, ``100 * (1 - value / value_baseline)`` (positive = faster /
leaner); the exponent a of ``time ~ T^a`` by least squares on log-log.
"""

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .status import STATUS_OK
from .variants import BASELINE, QUADRATIC


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
