"""The whole benchmark: options (the one place of every default), presets, and
``run_benchmark``, which measures the inference sweep and the training throughput and
writes the outputs: the CSV files and summary.md first, then machine.txt, the figure last
(skipped with a message when matplotlib is missing).

With ``interleaved`` the encoders are instead timed in turn in this process, ``rounds``
times per length (``sweep.run_interleaved``), with FLOPs per call, the achieved FLOP rate,
the machine's matmul rate measured in the same run and the share of the matmul-bound time
(no memory, no figure): ratios between encoders that hold on a shared machine."""

import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, List, Optional

import torch

from ..csv_files import write_csv
from .measure import STATUS_ERROR, set_threads
from .models import BASELINE, DTYPES, VARIANTS, Encoder, config_file_encoders, variant_encoders
from .report import (
    INTERLEAVED_COLUMNS, INTERLEAVED_RUN_COLUMNS, RUN_COLUMNS, SUMMARY_COLUMNS, TRAIN_COLUMNS, averages_markdown,
    exponents_markdown, indicative_note, interleaved_markdown, machine_info, machine_label, memory_note,
    plot_benchmark, summary_markdown, train_markdown,
)
from .stats import STATISTICS, average_savings, interleaved_summary, scaling_exponents, summarize, train_summary
from .sweep import mp_context, run_interleaved, run_sweep, worker_memory_limit

DEFAULT_LENGTHS = [10, 20, 30, 40, 50, 60, 70, 80]
LONG_LENGTHS = [10, 30, 60, 120, 240, 360, 480, 600]
# --quick: 7 encoders x 5 lengths + 7 training configurations in under two minutes on a
# 2-core CPU. Every process still warms up on 1 s of audio; on CPU a first forward at the full
# length is not slower than the next ones (the allocator is trimmed before each).
QUICK_PRESET = dict(out="results/benchmark_quick", lengths=[10, 20, 40, 80, 160], batch_size=1, runs=2, warmup=0,
                    num_layers=2, width_scale=0.25, nhead=4, time_limit=30.0, train_seconds=5.0, train_steps=2,
                    threads=1)


@dataclass
class BenchmarkOptions:
    """Every option of the benchmark with its default (``scripts/benchmark.py`` reads them here)."""

    out: str = "results/benchmark"
    variants: List[str] = field(default_factory=lambda: list(VARIANTS))  # models.VARIANTS keys
    configs: List[str] = field(default_factory=list)  # model config files (replace the variants)
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
    device: Optional[str] = None  # None: cuda if available, else cpu
    dtype: str = "fp32"
    threads: Optional[int] = None  # torch CPU threads (None: torch's default)
    time_limit: Optional[float] = 120.0  # seconds per forward / step; None or 0: none
    memory_limit_gb: Optional[float] = None  # isolated CPU workers; None: 80% of available; 0: none
    isolate: Optional[bool] = None  # None: in fresh processes on CPU, in this process on CUDA
    padding_mask: bool = False
    baseline: str = BASELINE
    confidence: float = 0.95
    seed: int = 0
    fit_from: float = 0.0
    log_scale: bool = False
    train_seconds: Optional[float] = None
    train_batch_size: Optional[int] = None  # None: batch_size
    train_steps: int = 5
    skip_inference: bool = False
    title: Optional[str] = None
    interleaved: bool = False  # time the encoders in turn in this process (see the module doc)
    rounds: int = 3  # interleaved: rounds per length
    statistic: str = "best"  # interleaved: "best" (minimum) or "median" of the rounds
    compile_scan: bool = False  # Mamba's scan steps through torch.compile (mixers.mamba.use_compiled_scan)


def make_options(quick: bool = False, **given) -> BenchmarkOptions:
    """The defaults of ``BenchmarkOptions``, then ``QUICK_PRESET`` if ``quick``, then every
    option given that is not None."""
    names = {f.name for f in fields(BenchmarkOptions)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise TypeError(f"Unknown benchmark options {unknown}; valid: {', '.join(sorted(names))}")
    return BenchmarkOptions(**{**(QUICK_PRESET if quick else {}), **{k: v for k, v in given.items() if v is not None}})


def benchmark_encoders(opts: BenchmarkOptions) -> List[Encoder]:
    """The encoders to measure: the config files if any, else the variants."""
    scaling = dict(width_scale=opts.width_scale, d_model=opts.d_model, num_layers=opts.num_layers, nhead=opts.nhead,
                   d_ffn=opts.d_ffn)
    if opts.configs:
        return config_file_encoders(opts.configs, **scaling)
    unknown = [v for v in opts.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"Unknown variants {unknown}; valid: {', '.join(VARIANTS)}")
    return variant_encoders(opts.variants, opts.size, **scaling)


def _baseline_key(opts: BenchmarkOptions, encoders: List[Encoder]) -> Optional[str]:
    """``opts.baseline`` if measured; with config files, the first one of the baseline's mixer."""
    keys = [e.key for e in encoders]
    if opts.baseline in keys:
        return opts.baseline
    mixer = VARIANTS[opts.baseline].mixer if opts.baseline in VARIANTS else None
    return next((e.key for e in encoders if mixer and e.config.get("mixer") == mixer), None)


def run_benchmark(opts: BenchmarkOptions, log: Callable[[str], None] = print) -> dict:
    """Run the sweep(s) and write under ``opts.out``: runs.csv, summary.csv (and train_runs.csv,
    train_throughput.csv), summary.md, machine.txt, then benchmark.png; print the tables.

    Returns {"rows", "summary", "exponents", "train", "markdown", "errors", "written"}
    (``written``: the files written, in order; benchmark.png is missing when matplotlib is).
    """
    t_start = time.perf_counter()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if opts.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
    if opts.statistic not in STATISTICS or opts.rounds < 1:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)} and rounds >= 1, got "
                         f"{opts.statistic!r} and {opts.rounds}")
    if opts.interleaved:
        return run_interleaved_benchmark(opts, device, log, t_start)
    isolate = (device.type == "cpu") if opts.isolate is None else opts.isolate
    if isolate:
        mp_context()  # the forkserver imports the libraries while this process prepares
    set_threads(opts.threads)
    mem_limit = worker_memory_limit(opts.memory_limit_gb) if isolate and device.type == "cpu" else None
    encoders = benchmark_encoders(opts)
    baseline = _baseline_key(opts, encoders)
    base_label = next((e.label for e in encoders if e.key == baseline), "baseline")
    settings = dict(batch_size=opts.batch_size, runs=opts.runs, warmup=opts.warmup, device=str(device),
                    dtype=opts.dtype, time_limit=opts.time_limit or None, seed=opts.seed,
                    padding_mask=opts.padding_mask, threads=opts.threads, compile_scan=opts.compile_scan)
    conf = f"{opts.confidence:.0%}"

    machine = machine_info(device)
    log(f"# {machine_label(machine)} | isolate={isolate} | memory limit per worker: "
        f"{'none' if mem_limit is None else f'{mem_limit / 2**30:.1f} GiB'}")
    for e in encoders:
        log(f"#   {e.key}: d_model {e.info['d_model']}, {e.info['num_layers']} layers, "
            f"encoder {e.params_m:.2f}M params")

    written: List[Path] = []
    result = dict(rows=[], summary=[], exponents={}, train=[], markdown="", errors=[], written=written)
    md = [f"Machine: {machine_label(machine)}; load average at the start {machine['load_average']} "
          f"(other processes on the machine slow it down).", ""]
    if not opts.skip_inference:
        rows = run_sweep(encoders, opts.lengths, settings, task="inference", isolate=isolate,
                         memory_limit_bytes=mem_limit, log=log)
        summary = summarize(rows, baseline, opts.confidence)
        exps = scaling_exponents(summary, opts.fit_from)
        written += [write_csv(out / "runs.csv", RUN_COLUMNS, rows),
                    write_csv(out / "summary.csv", SUMMARY_COLUMNS, summary)]
        md += _section(f"Encoders: {_describe_model(opts)}. Forward pass (eval, inference mode), batch "
                       f"{opts.batch_size}, {opts.dtype}, {opts.runs} runs after a warm-up on 1 s of audio"
                       f"{f' and {opts.warmup} at the same length' if opts.warmup else ''}; mean and {conf} "
                       f"Student-t confidence interval. Memory: {memory_note(rows)}.",
                       summary_markdown(summary, base_label, opts.confidence), summary, opts.confidence)
        md += [f"Faster / less memory = 100 * (1 - value / value of {base_label}) at the same length.", ""]
        avg = average_savings(summary, exclude=[e.key for e in encoders if e.config.get("mixer") == "mhsa"])
        if baseline and avg:
            md += [f"Mean over the linear mixers (all but the MHSA variants), relative to {base_label}:", "",
                   averages_markdown(avg), ""]
        md += [f"Scaling exponent a of time ~ T^a (least squares on log-log, lengths >= {opts.fit_from:g} s):", "",
               exponents_markdown(exps), ""]
        result.update(rows=rows, summary=summary, exponents=exps)
        result["errors"] += [r for r in rows if r["status"] == STATUS_ERROR]
    if opts.train_seconds:
        tb = opts.train_batch_size or opts.batch_size
        train_settings = {**settings, "batch_size": tb, "runs": opts.train_steps, "warmup": max(opts.warmup, 1)}
        trows = run_sweep(encoders, [opts.train_seconds], train_settings, task="train", isolate=isolate,
                          memory_limit_bytes=mem_limit, log=log)
        tsum = train_summary(trows, opts.confidence)
        written += [write_csv(out / "train_runs.csv", RUN_COLUMNS, trows),
                    write_csv(out / "train_throughput.csv", TRAIN_COLUMNS, tsum)]
        md += _section("Training throughput (BEST-RQ step: masking, forward, cross-entropy on masked frames, "
                       f"backward), {opts.train_seconds:g} s utterances, batch {tb}, {opts.dtype}"
                       f"{' autocast' if opts.dtype != 'fp32' else ''}, {opts.train_steps} steps; mean and {conf} "
                       "Student-t confidence interval:", train_markdown(tsum, opts.confidence), tsum, opts.confidence)
        result["train"] = tsum
        result["errors"] += [r for r in trows if r["status"] == STATUS_ERROR]
    _finish(opts, out, device, machine, md, result, t_start, log)
    if result["summary"]:
        runs = f"{opts.runs} runs" + (", indicative" if any(s["ci_indicative"] for s in result["summary"]) else "")
        title = opts.title or (f"BEST-RQ encoders ({_describe_model(opts)}), forward pass, batch {opts.batch_size}, "
                               f"{opts.dtype}, {conf} t-CI ({runs})\n{machine_label(machine)}")
        try:
            written.append(plot_benchmark(result["summary"], out / "benchmark.png", title=title,
                                          log_scale=opts.log_scale))
        except ImportError as err:
            log(f"Plot skipped: {err.name or 'matplotlib'} is not installed (pip install matplotlib); "
                "the CSV and Markdown files are complete.")
    return result


def run_interleaved_benchmark(opts: BenchmarkOptions, device: torch.device, log: Callable[[str], None],
                              t_start: float) -> dict:
    """The interleaved mode of ``run_benchmark``: writes interleaved_runs.csv, interleaved.csv
    (and train_interleaved_runs.csv, train_interleaved.csv), summary.md, machine.txt."""
    out = Path(opts.out)
    set_threads(opts.threads)
    encoders = benchmark_encoders(opts)
    baseline = _baseline_key(opts, encoders)
    base_label = next((e.label for e in encoders if e.key == baseline), "baseline")
    settings = dict(batch_size=opts.batch_size, warmup=opts.warmup, device=str(device), dtype=opts.dtype,
                    time_limit=opts.time_limit or None, seed=opts.seed, padding_mask=opts.padding_mask,
                    threads=opts.threads, compile_scan=opts.compile_scan)
    machine = machine_info(device)
    log(f"# {machine_label(machine)} | interleaved, {opts.rounds} rounds, {opts.statistic} of rounds")
    for e in encoders:
        log(f"#   {e.key}: d_model {e.info['d_model']}, {e.info['num_layers']} layers, "
            f"encoder {e.params_m:.2f}M params")
    written: List[Path] = []
    result = dict(rows=[], summary=[], exponents={}, train=[], train_rows=[], markdown="", errors=[],
                  written=written)
    md = [f"Machine: {machine_label(machine)}; load average at the start {machine['load_average']} "
          f"(other processes on the machine slow it down).", ""]
    rotation = (f"timed in turn in one process, {opts.rounds} rounds, the order rotated by one place each round, "
                f"{opts.statistic} of the rounds after {max(opts.warmup, 1)} warm-up call(s) each, the first "
                "counting the FLOPs (torch.utils.flop_counter: matrix products, convolutions, attention); "
                "matmul rate: a (2048 x 2048) @ (2048 x 2048) fp32 product timed the same way; share of the "
                "matmul-bound time = (FLOPs / matmul rate) / time")
    if not opts.skip_inference:
        rows = [row for seconds in sorted(opts.lengths)
                for row in run_interleaved(encoders, seconds, settings, "inference", opts.rounds, log)]
        summary = interleaved_summary(rows, baseline, opts.statistic)
        written += [write_csv(out / "interleaved_runs.csv", INTERLEAVED_RUN_COLUMNS, rows),
                    write_csv(out / "interleaved.csv", INTERLEAVED_COLUMNS, summary)]
        md += [f"Encoders: {_describe_model(opts)}. Forward pass (eval, inference mode), batch {opts.batch_size}, "
               f"{opts.dtype}, {rotation}.", "", interleaved_markdown(summary, base_label), ""]
        result.update(rows=rows, summary=summary)
        result["errors"] += [r for r in rows if r["status"] == STATUS_ERROR]
    if opts.train_seconds:
        tb = opts.train_batch_size or opts.batch_size
        trows = run_interleaved(encoders, opts.train_seconds, {**settings, "batch_size": tb}, "train",
                                opts.rounds, log)
        tsum = interleaved_summary(trows, baseline, opts.statistic)
        written += [write_csv(out / "train_interleaved_runs.csv", INTERLEAVED_RUN_COLUMNS, trows),
                    write_csv(out / "train_interleaved.csv", INTERLEAVED_COLUMNS, tsum)]
        md += ["Training throughput (BEST-RQ step: masking, forward, cross-entropy on masked frames, backward), "
               f"{opts.train_seconds:g} s utterances, batch {tb}, {opts.dtype}, {rotation}.", "",
               interleaved_markdown(tsum, base_label, train=True), ""]
        result.update(train=tsum, train_rows=trows)
        result["errors"] += [r for r in trows if r["status"] == STATUS_ERROR]
    return _finish(opts, out, device, machine, md, result, t_start, log)


def _finish(opts: BenchmarkOptions, out: Path, device: torch.device, machine: dict, md: List[str], result: dict,
            t_start: float, log: Callable[[str], None]) -> dict:
    """Write summary.md and machine.txt (wall time, command, options, load at the end) and print."""
    elapsed = time.perf_counter() - t_start
    md.append(f"Total benchmark wall time: {elapsed:.1f} s.")
    text = "\n".join(md)
    (out / "summary.md").write_text(text + "\n", encoding="utf-8")
    machine.update(load_average_end=machine_info(device)["load_average"], command=" ".join(sys.argv),
                   wall_time_s=round(elapsed, 1), options=asdict(opts))
    (out / "machine.txt").write_text("".join(f"{k}: {v}\n" for k, v in machine.items()), encoding="utf-8")
    result["written"] += [out / "summary.md", out / "machine.txt"]
    log("")
    log(text)
    result["markdown"] = text
    return result


def _section(text: str, table: str, rows: List[dict], confidence: float) -> List[str]:
    """Markdown lines: a paragraph, its table, and the note on indicative intervals if any."""
    note = indicative_note(rows, confidence)
    return [text, "", table, ""] + ([note, ""] if note else [])


def _describe_model(opts: BenchmarkOptions) -> str:
    scan = "; Mamba scan compiled (torch.compile)" if opts.compile_scan else ""
    if opts.configs:
        return ", ".join(Path(c).stem for c in opts.configs) + scan
    parts = [opts.size]
    if opts.width_scale != 1.0:
        parts.append(f"width x{opts.width_scale:g}")
    parts += [f"{k} {v}" for k, v in (("d_model", opts.d_model), ("layers", opts.num_layers),
                                        ("heads", opts.nhead), ("d_ffn", opts.d_ffn)) if v is not None]
    return ", ".join(parts) + scan
