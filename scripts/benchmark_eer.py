#!/usr/bin/env python
"""Time and peak memory of EER and minDCF (``brq_att_alt.probes.verification``) at trial-list scale.

For each trial count (default: 37,611 = VoxCeleb1-O cleaned, 600,000 ~ VoxCeleb1-E/H), a
fresh Python process draws half target scores N(3.3, 1) and half non-target scores N(0, 1)
(EER about 5%), rounded to float32 as cosine scores are, passed as Python lists as the
VoxCeleb recipe does, then measures for ``compute_eer`` and ``compute_min_dcf``:

  time      the best of --repeats calls (time.perf_counter)
  traced    peak of the Python / numpy allocations during one call (tracemalloc)
  rss       growth of the process's peak resident set (getrusage ru_maxrss) over
            its level before the first call, i.e. what the call added on top of the
            interpreter, numpy and torch

    python scripts/benchmark_eer.py [--trials 37611 600000] [--repeats 5]
"""

import argparse
import json
import os
import subprocess
import sys



def worker(trials: int, repeats: int, seed: int = 0) -> dict:
    """Runs in its own process: one trial count, both metrics."""
    import resource
    import time
    import tracemalloc

    import numpy as np

    from brq_att_alt.probes.verification import compute_eer, compute_min_dcf

    rng = np.random.default_rng(seed)
    n_pos = trials // 2
    pos = rng.normal(3.3, 1.0, n_pos).astype(np.float32).tolist()
    neg = rng.normal(0.0, 1.0, trials - n_pos).astype(np.float32).tolist()
    out = {"trials": trials}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for name, fn in (("eer", compute_eer), ("min_dcf", compute_min_dcf)):
        tracemalloc.start()
        value, threshold = fn(pos, neg)
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(pos, neg)
            times.append(time.perf_counter() - start)
        out[name] = {"value": value, "threshold": threshold, "seconds": min(times), "traced_mib": traced / 2**20}
    out["rss_growth_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    out["rss_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def machine() -> str:
    from brq_att_alt.benchmarking.report import machine_info

    info = machine_info("cpu")
    return (f"{info['cpu']}, {info['usable_cpus']} usable CPUs, {info['memory']} RAM, python {info['python']}, "
            f"numpy {info['numpy']}, load average {info['load_average']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[37611, 600000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeats)))
        return
    print(f"machine: {machine()}")
    print(f"{'trials':>8} {'EER %':>7} {'EER s':>7} {'EER traced':>11} {'minDCF':>7} {'minDCF s':>9} "
          f"{'minDCF traced':>14} {'RSS growth':>11} {'RSS peak':>9}")
    for trials in args.trials:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", str(trials),
                               "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        e, d = r["eer"], r["min_dcf"]
        print(f"{trials:>8} {100 * e['value']:>7.2f} {e['seconds']:>7.3f} {e['traced_mib']:>8.1f} MiB "
              f"{d['value']:>7.4f} {d['seconds']:>9.3f} {d['traced_mib']:>11.1f} MiB "
              f"{r['rss_growth_mib']:>7.1f} MiB {r['rss_peak_mib']:>5.0f} MiB")


if __name__ == "__main__":
    main()
