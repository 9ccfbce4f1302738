#!/usr/bin/env python
"""Speed and memory of the BEST-RQ encoders, one per token mixer (papers' Figure 1).

For each mixer: random normalised filterbanks (batch, 100 * seconds, 80) through
``model.encode`` (conv front end + Conformer) in eval mode under
``torch.inference_mode()``; warm-up, then N timed forwards per length. Outputs in --out,
written in this order (the figure last: without matplotlib it is skipped, with a message):

  runs.csv        one row per forward (status ok) or per failed / skipped configuration
  summary.csv     mean and Student-t confidence interval per (mixer, length), marked
                  ci_indicative when too few runs make it indicative only; speed-up and
                  memory saving relative to MHSA (RelPosMHAXL) in percent: 100 * (1 - x / x_MHSA)
  train_throughput.csv   with --train-throughput: audio seconds per second per mixer
  train_runs.csv         and its per-step rows
  interleaved.csv        with --interleaved instead of the above: per mixer and length the best
                         (or median) of --rounds rounds, GFLOP per forward, GFLOP/s, the matmul
                         rate of the same run, the share of the matmul-bound time, the ratio to
                         the baseline (train_interleaved.csv: the same for training steps)
  interleaved_runs.csv   and its per-call rows (round, place in the round)
  summary.md      the same as Markdown (also printed), the linear mixers' mean savings,
                  the scaling exponents a of time ~ T^a, training throughput if asked
  machine.txt     CPU model, cores, torch version, device name, options, wall time
  benchmark.png   time and peak memory against seconds of audio, a line per mixer, CI bands

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
  python scripts/benchmark.py --quick                      # under two minutes on a 2-core CPU
  python scripts/benchmark.py --device cuda --dtype bf16   # the papers' figure (the default sizes and lengths)
  python scripts/benchmark.py --device cuda --long --variants mhsa mhsa_sdpa fastformer pom --log-scale
  python scripts/benchmark.py --device cuda --train-throughput 20 --skip-inference
  python scripts/benchmark.py --config hparams/brq_pom.yaml --config hparams/brq_mhsa.yaml
  python scripts/benchmark.py --interleaved --rounds 3 --seconds 80 --batch-size 1 --threads 1 --device cpu
"""

import argparse
import sys

from brq_att_alt import benchmarking as bm

DEFAULTS = bm.BenchmarkOptions()


def _seconds(values) -> str:
    return " ".join(f"{x:g}" for x in values)


def quick_help() -> str:
    """The --quick help, written from QUICK_PRESET."""
    q = bm.QUICK_PRESET
    return (f"small model ({q['num_layers']} layers, widths x{q['width_scale']:g}, {q['nhead']} heads), lengths "
            f"{_seconds(q['lengths'])} s, batch {q['batch_size']}, {q['runs']} runs (intervals indicative) after "
            f"{q['warmup']} warm-up at the length, {q['threads']} torch thread, time limit {q['time_limit']:g} s, "
            f"training throughput at {q['train_seconds']:g} s ({q['train_steps']} steps), out {q['out']}: under "
            "two minutes on a 2-core CPU; options given explicitly win")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help=f"output folder (default {DEFAULTS.out})")
    p.add_argument("--variants", "--mixers", dest="variants", nargs="+", default=None, choices=list(bm.VARIANTS),
                   metavar="VARIANT", help=f"encoder variants to run: a token mixer, or mhsa_sdpa (MHSA with "
                   f"implementation: sdpa); from {', '.join(bm.VARIANTS)} (default: all)")
    p.add_argument("--config", dest="configs", action="append", default=None, metavar="FILE",
                   help="model config (brq_model.json or a recipe YAML such as hparams/brq_pom.yaml); "
                        "repeatable; replaces --variants")
    p.add_argument("--size", default=None, choices=["base", "large"],
                   help=f"parameter-matched size table (default {DEFAULTS.size})")
    p.add_argument("--width-scale", type=float, default=None,
                   help="scale every mixer's d_model, d_ffn and mixer hidden sizes (keeps the parameter matching)")
    p.add_argument("--d-model", type=int, default=None, help="override d_model (same for every mixer)")
    p.add_argument("--num-layers", type=int, default=None)
    p.add_argument("--nhead", type=int, default=None)
    p.add_argument("--d-ffn", type=int, default=None)
    p.add_argument("--lengths", "--seconds", dest="lengths", type=float, nargs="+", default=None, metavar="SECONDS",
                   help=f"seconds of audio per utterance (default {_seconds(DEFAULTS.lengths)})")
    p.add_argument("--long", action="store_true", help=f"long inputs: lengths {_seconds(bm.LONG_LENGTHS)} s")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"utterances per batch (default {DEFAULTS.batch_size})")
    p.add_argument("--runs", type=int, default=None, help=f"timed forwards per length (default {DEFAULTS.runs}; "
                   f"fewer than {bm.MIN_RUNS_FOR_CI} make the confidence intervals indicative only)")
    p.add_argument("--warmup", type=int, default=None, help=f"untimed forwards first (default {DEFAULTS.warmup})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default cuda if available)")
    p.add_argument("--dtype", default=None, choices=list(bm.DTYPES),
                   help="fp16 / bf16: autocast (mixed precision, fp32 weights), inference and training "
                        f"(default {DEFAULTS.dtype})")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, all cores)")
    p.add_argument("--time-limit", type=float, default=None,
                   help=f"seconds one forward may take before the configuration is a timeout "
                        f"(default {DEFAULTS.time_limit:g}; 0 = none)")
    p.add_argument("--memory-limit-gb", type=float, default=None,
                   help="CPU workers: address-space limit above the model's (default 80%% of available; 0 = none)")
    p.add_argument("--isolate", choices=["auto", "always", "never"], default="auto",
                   help="a fresh process per configuration (auto: on CPU only)")
    p.add_argument("--padding-mask", action="store_true", default=None,
                   help="pass an all-valid padding mask instead of None (exercises the masked code paths)")
    p.add_argument("--baseline", default=None,
                   help=f"variant (or --config file stem) the percentages compare with (default {DEFAULTS.baseline}; "
                        "with --config files: the first one of its mixer)")
    p.add_argument("--confidence", type=float, default=None,
                   help=f"confidence level of the intervals (default {DEFAULTS.confidence:g})")
    p.add_argument("--fit-from", type=float, default=None, help="fit the exponents on lengths >= SECONDS")
    p.add_argument("--log-scale", action="store_true", default=None, help="log-log axes in the plot")
    p.add_argument("--seed", type=int, default=None, help=f"seed of the inputs and models (default {DEFAULTS.seed})")
    p.add_argument("--train-throughput", dest="train_seconds", type=float, default=None, metavar="SECONDS",
                   help="also measure BEST-RQ training steps (forward + backward) on utterances of SECONDS")
    p.add_argument("--train-batch-size", type=int, default=None, help="default: --batch-size")
    p.add_argument("--train-steps", type=int, default=None,
                   help=f"timed training steps (default {DEFAULTS.train_steps})")
    p.add_argument("--skip-inference", action="store_true", default=None, help="only the training throughput")
    p.add_argument("--title", default=None, help="plot title")
    p.add_argument("--interleaved", action="store_true", default=None,
                   help="time the encoders in turn in this process, --rounds times per length, with FLOPs, the "
                        "achieved FLOP rate, the machine's matmul rate in the same run and the share of the "
                        "matmul-bound time (no memory, no figure); also for --train-throughput")
    p.add_argument("--compile-scan", action="store_true", default=None,
                   help="run the Mamba scan's steps through torch.compile (needs a C++ compiler; compiles for "
                        "seconds on first use; falls back to the eager scan with a warning)")
    p.add_argument("--rounds", type=int, default=None, help=f"interleaved rounds (default {DEFAULTS.rounds})")
    p.add_argument("--statistic", default=None, choices=list(bm.STATISTICS),
                   help=f"interleaved: best (minimum) or median of the rounds (default {DEFAULTS.statistic})")
    p.add_argument("--quick", action="store_true", help=quick_help())
    return p.parse_args(argv)


def options_from_args(a: argparse.Namespace) -> bm.BenchmarkOptions:
    """BenchmarkOptions from the command line: only what was given overrides the defaults (or --quick)."""
    given = dict(vars(a))
    quick, long_inputs, isolate = given.pop("quick"), given.pop("long"), given.pop("isolate")
    if long_inputs and given["lengths"] is None:
        given["lengths"] = bm.LONG_LENGTHS
    given["isolate"] = {"auto": None, "always": True, "never": False}[isolate]
    return bm.make_options(quick=quick, **given)


def main(argv=None) -> int:
    opts = options_from_args(parse_args(argv))
    result = bm.run_benchmark(opts, log=lambda msg: print(msg, flush=True))
    print(f"\nWrote {opts.out}/: {' '.join(p.name for p in result['written'])}")
    if result["errors"]:
        print(f"{len(result['errors'])} configuration(s) failed with an error (see the error column).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
