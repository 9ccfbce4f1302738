"""The whole benchmark: options and presets, the inference sweep and training
throughput, and the output files (CSV, Markdown, plot, machine.txt)."""

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from ..csv_files import write_csv
from .columns import RUN_COLUMNS, SUMMARY_COLUMNS, TRAIN_COLUMNS
from .inputs import DTYPES
from .machine import available_memory_bytes, machine_info, machine_label
from .markdown import averages_markdown, exponents_markdown, summary_markdown, train_markdown
from .measure import _set_threads
from .models import encoder_config, encoder_parameters, load_model_config
from .plot import plot_benchmark
from .stats import average_savings, scaling_exponents, summarize, train_summary
from .status import STATUS_ERROR
from .sweep import run_sweep
from .variants import BASELINE, VARIANTS, Variant
from .workers import _mp_context


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
        write_csv(out / "runs.csv", RUN_COLUMNS, rows)
        write_csv(out / "summary.csv", SUMMARY_COLUMNS, summary)
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
        write_csv(out / "train_runs.csv", RUN_COLUMNS, trows)
        write_csv(out / "train_throughput.csv", TRAIN_COLUMNS, tsum)
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
