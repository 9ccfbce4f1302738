#!/usr/bin/env python
"""Speed and memory of the BEST-RQ encoders, one per token mixer (papers' Figure 1).

For each mixer: random normalised filterbanks (batch, 100 * seconds, 80) through
``model.encode`` (conv front end + Conformer) in eval mode under
``torch.inference_mode()``; warm-up, then N timed forwards per length. Outputs in --out:

  runs.csv        one row per forward (status ok) or per failed / skipped configuration
  summary.csv     mean and 95% bootstrap CI per (mixer, length), speed-up and memory
                  saving relative to MHSA (RelPosMHAXL) in percent: 100 * (1 - x / x_MHSA)
  summary.md      the same as Markdown (also printed), the linear mixers' mean savings,
                  the scaling exponents a of time ~ T^a, training throughput if asked
  benchmark.png   time and peak memory against seconds of audio, a line per mixer, CI bands
  machine.txt     CPU model, cores, torch version, device name, options, wall time
  train_throughput.csv   with --train-throughput: audio seconds per second per mixer
  train_runs.csv         and its per-step rows

Peak memory (column ``memory_method``):
  CUDA  torch.cuda.reset_peak_memory_stats() before each forward, then
        max_memory_allocated() minus memory_allocated() before it (weights and input
        excluded). Runs in this process; the time limit is checked after each forward.
  CPU   every (mixer, length) runs in a fresh process (forked from a forkserver that has
        only imported the libraries). Baseline: the process's resident set (VmRSS) after
        building the model, a warm-up forward on 1 s of audio and creating the input.
        Before each forward: garbage collection and glibc malloc_trim (no memory kept
        from the previous run). Peak: the resident-set high-water mark (VmHWM = getrusage ru_maxrss of the
        process's own memory), reset before each forward via /proc/self/clear_refs where
        allowed, minus the baseline. The worker has an address-space limit (default 80%
        of the available memory, --memory-limit-gb) so that running out of memory raises
        instead of waking the OOM killer; the time limit kills the worker.
  A configuration that runs out of memory or takes longer than --time-limit seconds for
  one forward is recorded with status oom / timeout; the mixer's longer lengths are
  recorded as skipped.

Examples:
  python scripts/benchmark.py --quick                      # < 2 min on a 2-core CPU
  python scripts/benchmark.py --device cuda --dtype bf16   # the papers' figure: base, 10..80 s, batch 6
  python scripts/benchmark.py --device cuda --long --mixers mhsa mhsa_sdpa fastformer pom --log-scale
  python scripts/benchmark.py --device cuda --train-throughput 20 --skip-inference
  python scripts/benchmark.py --config hparams/pom.yaml --config hparams/mhsa.yaml
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from brq_att_alt import benchmarking as bm  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="output folder (default results/benchmark[_quick])")
    p.add_argument("--mixers", nargs="+", default=None, choices=list(bm.VARIANTS), metavar="MIXER",
                   help=f"variants to run, from {', '.join(bm.VARIANTS)} (default: all)")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="model config (brq_model.json or YAML of BestRQModel arguments); repeatable; replaces --mixers")
    p.add_argument("--size", default="base", choices=["base", "large"], help="parameter-matched size table")
    p.add_argument("--width-scale", type=float, default=None,
                   help="scale every mixer's d_model, d_ffn and mixer hidden sizes (keeps the parameter matching)")
    p.add_argument("--d-model", type=int, default=None, help="override d_model (same for every mixer)")
    p.add_argument("--num-layers", type=int, default=None)
    p.add_argument("--nhead", type=int, default=None)
    p.add_argument("--d-ffn", type=int, default=None)
    p.add_argument("--lengths", type=float, nargs="+", default=None, metavar="SECONDS",
                   help=f"seconds of audio per utterance (default {' '.join(map(str, bm.DEFAULT_LENGTHS))})")
    p.add_argument("--long", action="store_true",
                   help=f"long inputs: lengths {' '.join(map(str, bm.LONG_LENGTHS))} s (up to 10 min)")
    p.add_argument("--batch-size", type=int, default=None, help="utterances per batch (default 6)")
    p.add_argument("--runs", type=int, default=None, help="timed forwards per length (default 10)")
    p.add_argument("--warmup", type=int, default=None, help="untimed forwards first (default 1)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default cuda if available)")
    p.add_argument("--dtype", default="fp32", choices=list(bm.DTYPES),
                   help="fp16 / bf16: autocast (mixed precision, fp32 weights), inference and training")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's, all cores; --quick: 1, robust on a shared machine)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds one forward may take before the configuration is a timeout (default 120; 0 = none)")
    p.add_argument("--memory-limit-gb", type=float, default=None,
                   help="CPU workers: address-space limit above the model's (default 80%% of available; 0 = none)")
    p.add_argument("--isolate", choices=["auto", "always", "never"], default="auto",
                   help="a fresh process per configuration (auto: on CPU only)")
    p.add_argument("--padding-mask", action="store_true",
                   help="pass an all-valid padding mask instead of None (exercises the masked code paths)")
    p.add_argument("--baseline", default=bm.BASELINE,
                   help="variant (or --config file stem) the percentages compare with (default mhsa)")
    p.add_argument("--fit-from", type=float, default=0.0, help="fit the exponents on lengths >= SECONDS")
    p.add_argument("--log-scale", action="store_true", help="log-log axes in the plot")
    p.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-throughput", type=float, default=None, metavar="SECONDS",
                   help="also measure BEST-RQ training steps (forward + backward) on utterances of SECONDS")
    p.add_argument("--train-batch-size", type=int, default=None, help="default: --batch-size")
    p.add_argument("--train-steps", type=int, default=None, help="timed training steps (default 5)")
    p.add_argument("--skip-inference", action="store_true", help="only the training throughput")
    p.add_argument("--title", default=None, help="plot title")
    p.add_argument("--quick", action="store_true",
                   help="small model (2 layers, widths x0.25, 4 heads), lengths 10 20 40 80 160 s, batch 2, "
                        "3 runs, training throughput at 10 s: under two minutes on a 2-core CPU")
    return p.parse_args(argv)


def options_from_args(a) -> bm.BenchmarkOptions:
    import torch

    q = bm.QUICK_PRESET if a.quick else {}

    def pick(value, key, default):
        return value if value is not None else q.get(key, default)

    lengths = a.lengths or (bm.LONG_LENGTHS if a.long else None)
    time_limit = pick(a.time_limit, "time_limit", 120.0)
    return bm.BenchmarkOptions(
        out=a.out or ("results/benchmark_quick" if a.quick else "results/benchmark"),
        mixers=a.mixers or list(bm.VARIANTS), configs=a.config, size=a.size,
        width_scale=pick(a.width_scale, "width_scale", 1.0), d_model=a.d_model,
        num_layers=pick(a.num_layers, "num_layers", None), nhead=pick(a.nhead, "nhead", None), d_ffn=a.d_ffn,
        lengths=lengths or q.get("lengths", bm.DEFAULT_LENGTHS),
        batch_size=pick(a.batch_size, "batch_size", 6), runs=pick(a.runs, "runs", 10),
        warmup=pick(a.warmup, "warmup", 1),
        device=a.device or ("cuda" if torch.cuda.is_available() else "cpu"), dtype=a.dtype,
        threads=pick(a.threads, "threads", None),
        time_limit=time_limit if time_limit and time_limit > 0 else None, memory_limit_gb=a.memory_limit_gb,
        isolate={"auto": None, "always": True, "never": False}[a.isolate], padding_mask=a.padding_mask,
        baseline=a.baseline, n_boot=a.n_boot, seed=a.seed, fit_from=a.fit_from, log_scale=a.log_scale,
        train_seconds=pick(a.train_throughput, "train_seconds", None), train_batch_size=a.train_batch_size,
        train_steps=pick(a.train_steps, "train_steps", 5), skip_inference=a.skip_inference, title=a.title,
    )


def main(argv=None) -> int:
    opts = options_from_args(parse_args(argv))
    result = bm.run_benchmark(opts, log=lambda msg: print(msg, flush=True))
    print(f"\nWrote {opts.out}/: runs.csv summary.csv summary.md benchmark.png machine.txt"
          + (" train_throughput.csv train_runs.csv" if opts.train_seconds else ""))
    if result["errors"]:
        print(f"{len(result['errors'])} configuration(s) failed with an error (see the error column).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
