"""Statistics of the runs.

Confidence intervals: mean of the runs +- t_{(1+c)/2, n-1} * s / sqrt(n) (Student's t,
s the sample standard deviation), whose coverage is the stated one when run times are
normally distributed, at any n >= 2. (The percentile bootstrap used before covers far
less than its nominal 95% at this benchmark's run counts: in a simulation with normal
run times 49% with 2 runs, 73% with 3, 90% with 10; the t-interval 94.6-95.1%.) Outliers,
such as a run slowed by another process, lower the coverage of any interval: hence the
machine's load average in the outputs. With fewer than ``MIN_RUNS_FOR_CI`` (5) runs the
interval is marked *indicative* (``ci_indicative``): it is wide (t = 12.7 for 2 runs,
3.18 for 4) and rests on a handful of run times whose distribution cannot be checked.
One run gives no interval.

Interleaved runs (``interleaved_summary``): per encoder the best (minimum) or the median
of its rounds; the minimum is the usual choice on a shared machine (interference only
ever adds time). The matmul rate is the probe's FLOPs over its time (same statistic),
and the share of the matmul-bound time is ``(FLOPs / matmul rate) / time``.

Relative numbers: ``100 * (1 - value / value_baseline)`` (positive = faster / leaner) at
the same length. Scaling: the exponent a of ``time ~ T^a`` by least squares on log-log.
"""

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import scipy.stats

from .measure import STATUS_OK, matmul_bound_share

MIN_RUNS_FOR_CI = 5


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (scipy, a SpeechBrain dependency)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    return float(scipy.stats.t.ppf(p, df))


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> Tuple[float, float, float]:
    """Mean of ``values`` and its Student-t confidence interval: (mean, low, high).

    NaN and None values are ignored; no value gives NaNs, one value (mean, NaN, NaN).
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    half = t_quantile((1.0 + confidence) / 2.0, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


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


def _by_configuration(rows: Iterable[dict]) -> List[Tuple[Tuple[str, float], List[dict], List[dict]]]:
    """Per-run rows grouped by (mixer, seconds), in first-seen order: (key, all rows, the ``ok`` ones)."""
    groups: Dict[Tuple[str, float], List[dict]] = {}
    for r in rows:
        groups.setdefault((r["mixer"], float(r["seconds"])), []).append(r)
    return [(key, rs, [r for r in rs if r["status"] == STATUS_OK]) for key, rs in groups.items()]


def summarize(rows: Iterable[dict], baseline: Optional[str] = None, confidence: float = 0.95) -> List[dict]:
    """Per-run rows -> one summary row per (mixer, seconds), in first-seen order.

    Time and memory: mean and t-interval (``mean_ci``) over the ``ok`` runs, with
    ``ci_indicative`` when there are fewer than ``MIN_RUNS_FOR_CI``. ``speedup_pct`` and
    ``mem_saving_pct`` compare the means with the ``baseline`` mixer's at the same length
    (``relative_saving``); NaN where either is missing or failed. Rows read back from a
    CSV (strings) are accepted.
    """
    summary = []
    for (mixer, seconds), rs, ok in _by_configuration(rows):
        status = STATUS_OK if ok else rs[0]["status"]
        t = mean_ci([_as_float(r["time_s"]) for r in ok], confidence)
        m = mean_ci([_as_float(r["peak_mem_mib"]) for r in ok], confidence)
        summary.append(dict(
            mixer=mixer, label=rs[0].get("label", mixer), seconds=seconds, status=status, n_runs=len(ok),
            time_mean_s=t[0], time_ci_low_s=t[1], time_ci_high_s=t[2],
            mem_mean_mib=m[0], mem_ci_low_mib=m[1], mem_ci_high_mib=m[2],
            ci_indicative=len(ok) < MIN_RUNS_FOR_CI if ok else None,
            baseline=baseline or "", speedup_pct=math.nan, mem_saving_pct=math.nan,
            encoder_params_m=_as_float(rs[0].get("encoder_params_m")),
        ))
    ref = {s["seconds"]: s for s in summary if s["mixer"] == baseline and s["status"] == STATUS_OK}
    for s in summary:
        b = ref.get(s["seconds"]) if s["status"] == STATUS_OK else None
        if b is not None:
            s["speedup_pct"] = relative_saving(s["time_mean_s"], b["time_mean_s"])
            s["mem_saving_pct"] = relative_saving(s["mem_mean_mib"], b["mem_mean_mib"])
    return summary


def average_savings(summary: List[dict], exclude: Sequence[str]) -> List[dict]:
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


def train_summary(rows: List[dict], confidence: float = 0.95) -> List[dict]:
    """Per-step rows of ``run_sweep(task="train")`` -> one throughput row per mixer
    (audio seconds per second: mean and t-interval over the steps)."""
    out = []
    for s in summarize(rows, baseline=None, confidence=confidence):
        rs = [r for r in rows if r["mixer"] == s["mixer"] and float(r["seconds"]) == s["seconds"]]
        ok = [r for r in rs if r["status"] == STATUS_OK]
        audio = s["seconds"] * int(rs[0]["batch_size"])
        thr = mean_ci([audio / _as_float(r["time_s"]) for r in ok], confidence)
        out.append(dict(
            mixer=s["mixer"], label=s["label"], seconds=s["seconds"], batch_size=rs[0]["batch_size"],
            status=s["status"], n_steps=s["n_runs"], step_mean_s=s["time_mean_s"], step_ci_low_s=s["time_ci_low_s"],
            step_ci_high_s=s["time_ci_high_s"], audio_s_per_s=thr[0], audio_s_per_s_ci_low=thr[1],
            audio_s_per_s_ci_high=thr[2], ci_indicative=s["ci_indicative"], mem_mean_mib=s["mem_mean_mib"],
            memory_method=ok[0]["memory_method"] if ok else "", device=rs[0]["device"], dtype=rs[0]["dtype"],
            error="" if ok else rs[0].get("error", ""),
        ))
    return out


STATISTICS = ("best", "median")


def _statistic(times: Sequence[float], statistic: str) -> float:
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    if not times:
        return math.nan
    return float(min(times)) if statistic == "best" else float(np.median(times))


def interleaved_summary(rows: Iterable[dict], baseline: Optional[str] = None, statistic: str = "best",
                        matmul_key: str = "matmul") -> List[dict]:
    """Per-call rows of ``sweep.run_interleaved`` -> one row per (encoder, seconds).

    ``time_s``: the ``statistic`` ("best" = minimum, or "median") of the rounds (both are
    also given); ``gflop``: FLOPs per call / 1e9; ``gflop_per_s``: achieved rate; the
    ``matmul_gflop_per_s`` of the probe (``matmul_key``) at the same length and statistic;
    ``matmul_bound_share`` = (FLOPs / matmul rate) / time; ``speedup_x`` = baseline time /
    time (the baseline's own is 1); ``audio_s_per_s`` = seconds x batch / time. Failed
    encoders keep their status and error with NaN numbers.
    """
    out = []
    for (mixer, seconds), rs, ok in _by_configuration(rows):
        times = [_as_float(r["time_s"]) for r in ok]
        flops = next((_as_float(r["flops"]) for r in rs if r.get("flops") not in (None, "")), math.nan)
        batch = rs[0].get("batch_size")
        out.append(dict(
            mixer=mixer, label=rs[0].get("label", mixer), seconds=seconds, batch_size=batch,
            status=STATUS_OK if ok and all(r["status"] == STATUS_OK for r in rs) else
            next(r["status"] for r in rs if r["status"] != STATUS_OK),
            n_rounds=len(ok), statistic=statistic, time_s=_statistic(times, statistic),
            time_best_s=_statistic(times, "best"), time_median_s=_statistic(times, "median"),
            gflop=flops / 1e9, device=rs[0].get("device", ""), dtype=rs[0].get("dtype", ""),
            error=next((r.get("error", "") for r in rs if r["status"] != STATUS_OK), ""),
        ))
    rate = {s["seconds"]: s["gflop"] / s["time_s"] for s in out if s["mixer"] == matmul_key and s["time_s"] > 0}
    ref = {s["seconds"]: s["time_s"] for s in out if s["mixer"] == baseline}
    for s in out:
        t, mm = s["time_s"], rate.get(s["seconds"], math.nan)
        s["gflop_per_s"] = s["gflop"] / t if t > 0 else math.nan
        s["matmul_gflop_per_s"] = mm
        s["matmul_bound_share"] = matmul_bound_share(s["gflop"], mm, t)
        b = ref.get(s["seconds"], math.nan)
        s["baseline"] = baseline or ""
        s["speedup_x"] = b / t if t > 0 and b > 0 else math.nan
        s["audio_s_per_s"] = (s["seconds"] * int(s["batch_size"]) / t
                              if t > 0 and str(s["batch_size"]).strip() not in ("", "None") else math.nan)
    return out
