#!/usr/bin/env python3
"""A laptop-scale reproduction of the papers' comparison, on the synthetic corpus, on a CPU.

    python scripts/reproduce_tiny.py --jobs 2   # the recorded run: 2 seeds in parallel on 2 cores
    python scripts/reproduce_tiny.py [--out results/reproduce_tiny] [--quick] [--seeds 1000 1001]
    python scripts/reproduce_tiny.py --report_only   # the report of what has finished so far

What it does, piece by piece (each piece once: a killed run, started again with the same
command, skips the finished pieces and resumes the unfinished one from its checkpoints):

1. the synthetic corpus (``hparams/brq_tiny.yaml``'s, made if absent);
2. the tiny width of every mixer: the ``d_model`` (multiple of 4) whose BEST-RQ stack
   (front end + Conformer + head, ``brq_tiny.yaml``'s layers and mixer options) has the
   parameter count nearest to the MHSA tiny model's, as ``brq_att_alt.sizes`` matches the
   papers' sizes;
3. per seed and mixer: BEST-RQ pre-training (``train.py hparams/brq_tiny.yaml``), the same
   number of optimizer steps for every mixer;
4. each pre-trained encoder and its random-initialised twin (same architecture, weights drawn
   with the seed) probed on every synthetic MP3S task (``recipes/MP3S/run_all.py``'s
   ``--tiny`` settings with fewer epochs and emotion folds, ``SETTINGS``; one probe per task:
   ``run_all.DEMO_RECIPES``) and fine-tuned with CTC
   (``recipes/finetune_ctc/hparams/finetune_ctc_tiny.yaml``, fewer epochs);
5. the speed and memory of the same encoders against input length (``scripts/benchmark.py
   --config``, one ``brq_model.json`` per mixer);
6. the report in ``<out>/report/``: ``reproduction.md`` / ``.csv`` (Table 1 layout: per task,
   probe and metric, the mean over seeds with its 95% interval for each mixer, pre-trained
   and random init), ``pretraining_curves.png`` (every run's loss and masked-frame accuracy),
   ``benchmark.png`` / ``benchmark.md``, ``README.md`` (what the numbers show and do not
   show, the command, the date, the machine and the load).

``--quick`` runs the same pieces at toy sizes (a few steps and epochs) to check the pipeline
in minutes; its numbers mean nothing. Recipes run one at a time, each with ``--threads``
torch threads (default 1); ``--jobs N`` runs the seeds in N processes of this script at once
(after the corpus and the widths; the benchmark and the report once they are done). Logs: ``<out>/<piece folder>/driver.log`` (pre-training, fine-tuning)
or the recipe folders' ``driver.log`` (probes); piece records in ``<out>/pieces/``.
"""

import argparse
import copy
import datetime
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

from brq_att_alt.csv_files import read_csv, write_csv
from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.hparams import load_hparams_file
from brq_att_alt.mixers import MIXERS
from brq_att_alt.probes.compare import headline_metric
from brq_att_alt.reproduce import PieceRunner, combine_seeds, plot_pretraining, read_train_log

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "hparams" / "brq_tiny.yaml"
FINETUNE_SCRIPT = REPO / "recipes" / "finetune_ctc" / "train.py"
FINETUNE_YAML = REPO / "recipes" / "finetune_ctc" / "hparams" / "finetune_ctc_tiny.yaml"
BENCHMARK_SCRIPT = REPO / "scripts" / "benchmark.py"
INITS = ("pretrained", "random")

# The full setting (about 2 hours on a 2-core CPU with --jobs 2) and --quick (minutes; numbers
# meaningless). probe_overrides go to every probe, recipe_overrides to one recipe ("Task/probe"),
# on top of run_all.py's --tiny settings: fewer epochs and emotion folds than the demo's, so that
# 6 mixers x 2 seeds x 2 initialisations fit the time.
SETTINGS = {
    "full": {"steps": 600, "seeds": [1000, 1001], "finetune_epochs": 6, "probe_overrides": {},
             "recipe_overrides": {"LibriSpeech_ASR/BiLSTM": {"number_of_epochs": 10},
                                  "SLURP_IC/BiLSTM": {"number_of_epochs": 8},
                                  "IEMOCAP_ER/ECAPA": {"number_of_epochs": 10, "folds": "[1,2]"}},
             "pretrain_overrides": {}, "finetune_overrides": {},
             "benchmark": ["--lengths", "5", "10", "20", "40", "80", "160", "--runs", "3", "--warmup", "1"]},
    "quick": {"steps": 6, "seeds": [1000, 1001], "finetune_epochs": 1,
              "probe_overrides": {"number_of_epochs": 1, "train_subset": 16, "valid_subset": 8, "test_subset": 8},
              "recipe_overrides": {"IEMOCAP_ER/ECAPA": {"folds": "[1]"}},
              "pretrain_overrides": {"max_batch_length": 8},
              "finetune_overrides": {"max_batch_length": 8, "test_splits": "[test-clean]"},
              "benchmark": ["--lengths", "1", "2", "--runs", "2", "--warmup", "0"]},
}


def load_run_all():
    """``recipes/MP3S/run_all.py`` as a module (the recipes folder is not a package)."""
    spec = importlib.util.spec_from_file_location("mp3s_run_all", REPO / "recipes" / "MP3S" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ widths
def tiny_parameters(mixer: str, d_model: int, overrides: Optional[dict] = None) -> int:
    """Trainable parameters of ``brq_tiny.yaml``'s model for ``mixer`` at ``d_model`` (meta device)."""
    import torch

    from brq_att_alt.model import count_parameters

    with torch.device("meta"):
        hp = load_hparams_file(str(TINY_YAML), {"attention_type": mixer, "d_model": d_model,
                                                "output_folder": "/nonexistent", **(overrides or {})})
    return count_parameters(hp["model"])


def matched_widths(mixers, reference: str = "mhsa", multiple: int = 4, overrides: Optional[dict] = None) -> dict:
    """{mixer: {"d_model", "parameters", "vs_reference"}}: the multiple of ``multiple`` whose tiny model
    has the parameter count nearest to ``reference``'s at ``brq_tiny.yaml``'s d_model (binary search:
    the count grows with d_model)."""
    base_d = int(load_hparams_file(str(TINY_YAML), {"output_folder": "/nonexistent"})["d_model"])
    target = tiny_parameters(reference, base_d, overrides)
    out = {}
    for mixer in mixers:
        lo, hi = 1, 8 * base_d // multiple  # in units of `multiple`
        while lo < hi:  # smallest width with count >= target
            mid = (lo + hi) // 2
            if tiny_parameters(mixer, mid * multiple, overrides) >= target:
                hi = mid
            else:
                lo = mid + 1
        candidates = {d: tiny_parameters(mixer, d * multiple, overrides) for d in {max(lo - 1, 1), lo}}
        best = min(candidates, key=lambda d: abs(candidates[d] - target))
        out[mixer] = {"d_model": best * multiple, "parameters": candidates[best],
                      "vs_reference": candidates[best] / target - 1.0}
    return out


# ------------------------------------------------------------------ one subprocess
def run_logged(cmd: List[str], log: Path, threads: int) -> None:
    """Run ``cmd`` in the repository with its output in ``log``; RuntimeError naming the log on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "a") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: see {log}")


def overrides_args(overrides: dict) -> List[str]:
    return [f"--{k}={v}" for k, v in overrides.items()]


# ------------------------------------------------------------------ pieces
def pretrain_piece(ctx, mixer: str, seed: int) -> dict:
    folder = ctx.out / "pretrain" / mixer / str(seed)
    width = ctx.widths[mixer]["d_model"]
    cmd = [sys.executable, "train.py", str(TINY_YAML), f"--attention_type={mixer}", f"--d_model={width}",
           f"--seed={seed}", f"--output_folder={folder}", f"--data_folder={ctx.data_folder}",
           "--number_of_epochs=100000", f"--optimizer_step_limit={ctx.settings['steps']}", "--progressbar=False",
           *overrides_args(ctx.settings["pretrain_overrides"])]
    run_logged(cmd, folder / "driver.log", ctx.threads)
    log = read_train_log(folder)
    last = log["epochs"][-1] if log["epochs"] else {}
    return {"run": str(folder), "d_model": width, "parameters": ctx.widths[mixer]["parameters"], "last_epoch": last}


def probe_piece(ctx, mixer: str, seed: int, init: str, recipe) -> dict:
    run = ctx.out / "pretrain" / mixer / str(seed)
    args = copy.copy(ctx.probe_args[seed])  # this recipe's own overrides on top of the common ones
    args.set = list(args.set) + [f"{k}={v}" for k, v in
                                 ctx.settings["recipe_overrides"].get(recipe_key(recipe), {}).items()]
    label = mixer + (ctx.run_all.RANDOM_SUFFIX if init == "random" else "")
    language = "cy" if recipe.task == "CommonVoice_ASR" else None
    job = ctx.run_all.Job(recipe, language, label, str(run.resolve()), init)
    result = ctx.run_all.run_one(job, args)
    if not result["metrics"]:
        raise RuntimeError(f"the recipe failed: see {result['log']}")
    return {"metrics": result["metrics"]["metrics"], "folder": str(ctx.run_all.job_folder(args.output, job))}


def finetune_piece(ctx, mixer: str, seed: int, init: str) -> dict:
    run = ctx.out / "pretrain" / mixer / str(seed)
    folder = ctx.out / "finetune" / mixer / str(seed) / init
    cmd = [sys.executable, str(FINETUNE_SCRIPT), str(FINETUNE_YAML), f"--pretrained_path={run}",
           f"--encoder_init={init}", f"--encoder_init_seed={seed}", f"--seed={seed}", f"--output_folder={folder}",
           f"--data_folder={ctx.data_folder}", f"--number_of_epochs={ctx.settings['finetune_epochs']}",
           "--progressbar=False", *overrides_args(ctx.settings["finetune_overrides"])]
    run_logged(cmd, folder / "driver.log", ctx.threads)
    metrics = {}
    for path in sorted(folder.glob("wer_*.json")):
        report = json.loads(path.read_text())
        for decoding, suffix in (("greedy", ""), ("lm", " +LM")):
            if decoding in report:
                r = report[decoding]
                metrics[f"WER {report['split']}{suffix}"] = {"value": r["wer"], "direction": "lower", "unit": "%",
                                                             "ci95": [r["ci_low"], r["ci_high"]]}
    if not metrics:
        raise RuntimeError(f"no wer_*.json in {folder}")
    return {"metrics": metrics, "folder": str(folder)}


def benchmark_piece(ctx) -> dict:
    folder = ctx.out / "benchmark"
    configs = folder / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    seed = ctx.seeds[0]
    cmd = [sys.executable, str(BENCHMARK_SCRIPT), "--out", str(folder), "--device", "cpu", "--threads", str(ctx.threads),
           "--title", "tiny encoders (reproduce_tiny.py), CPU"]
    for mixer in ctx.mixers:
        path = configs / f"{mixer}.json"  # the benchmark names an encoder by its config file's stem
        shutil.copyfile(ctx.out / "pretrain" / mixer / str(seed) / "save" / "brq_model.json", path)
        cmd += ["--config", str(path)]
    run_logged(cmd + ctx.settings["benchmark"], folder / "driver.log", ctx.threads)
    return {"folder": str(folder), "summary": str(folder / "summary.md")}


# ------------------------------------------------------------------ report
def recipe_key(recipe) -> str:
    return f"{recipe.task}/{recipe.probe}"


def collect(ctx, runner: PieceRunner) -> List[dict]:
    """One row per (task, probe, metric, mixer, init): the seeds' values combined (``combine_seeds``)."""
    per: Dict[tuple, dict] = {}
    order = []
    sources = [(f"probe/{m}/{s}/{i}/{recipe_key(r)}", m, s, i, ctx.run_all.task_title(r.task, None), r.probe)
               for s in ctx.seeds for m in ctx.mixers for i in INITS for r in ctx.recipes]
    sources += [(f"finetune/{m}/{s}/{i}", m, s, i, "CTC fine-tuning (LibriSpeech-like)", "CTC head")
                for s in ctx.seeds for m in ctx.mixers for i in INITS]
    for name, mixer, seed, init, task, probe in sources:
        record = runner.record(name)
        if not record or record.get("status") != "ok":
            continue
        for metric, m in record["result"]["metrics"].items():
            if m.get("value") is None:
                continue
            key = (task, probe, metric)
            if key not in order:
                order.append(key)
            entry = per.setdefault(key + (mixer, init), {"values": [], "intervals": [], "seeds": [],
                                                         "direction": m.get("direction", ""), "unit": m.get("unit", "")})
            entry["values"].append(m["value"])
            entry["intervals"].append(m.get("ci95"))
            entry["seeds"].append(seed)
    rows = []
    for key in order:
        for mixer in ctx.mixers:
            for init in INITS:
                entry = per.get(key + (mixer, init))
                if entry is None:
                    continue
                combined = combine_seeds(entry["values"], entry["intervals"])
                rows.append({"task": key[0], "probe": key[1], "metric": key[2], "direction": entry["direction"],
                             "unit": entry["unit"], "mixer": mixer, "init": init, **combined,
                             "per_seed": " ".join(f"{s}:{v:.2f}" for s, v in zip(entry["seeds"], entry["values"]))})
    return rows


CSV_COLUMNS = ["task", "probe", "metric", "direction", "unit", "mixer", "init", "mean", "low", "high", "min", "max",
               "seeds", "per_seed"]


def _cell(row: Optional[dict]) -> str:
    """mean [low, high]: one decimal for percentages, four for unitless figures (minDCF ~0.01)."""
    if row is None:
        return "-"
    digits = 1 if row.get("unit") == "%" else 4
    ci = f" [{row['low']:.{digits}f}, {row['high']:.{digits}f}]" if row["low"] is not None else ""
    return f"{row['mean']:.{digits}f}{ci}"


def pieces_span(runner: PieceRunner) -> Optional[dict]:
    """When the finished pieces ran, from their record files: the first one's start (its file's
    time less its own duration), the last one's end, and the sum of the pieces' own times
    (larger than the span when pieces ran in parallel); None if none has finished."""
    ends, starts, total = [], [], 0.0
    for name in runner.names:
        record = runner.record(name)
        if record is not None and record.get("status") == "ok":
            end = runner.record_path(name).stat().st_mtime
            seconds = float(record.get("seconds", 0.0))
            ends.append(end)
            starts.append(end - seconds)
            total += seconds
    if not ends:
        return None
    return {"start": min(starts), "end": max(ends), "piece_seconds": total}


def table_markdown(rows: List[dict], mixers: List[str]) -> str:
    """Table 1 layout: a row per task / probe / metric and initialisation, a column per mixer."""
    index = {(r["task"], r["probe"], r["metric"], r["mixer"], r["init"]): r for r in rows}
    keys = list(dict.fromkeys((r["task"], r["probe"], r["metric"]) for r in rows))
    arrow = {"lower": "↓", "higher": "↑"}
    lines = ["| Task | Probe | Metric | encoder | " + " | ".join(mixers) + " |",
             "|---|---|---|---|" + "---:|" * len(mixers)]
    last = None
    for key in keys:
        sample = next(r for r in rows if (r["task"], r["probe"], r["metric"]) == key)
        metric = f"{key[2]} ({sample['unit']}) {arrow.get(sample['direction'], '')}".replace(" ()", "").strip()
        for init in INITS:
            cells = []
            for mixer in mixers:
                row = index.get(key + (mixer, init))
                text = _cell(row)
                other = index.get(key + (mixer, "random" if init == "pretrained" else "pretrained"))
                if init == "pretrained" and row and other and row["low"] is not None and other["low"] is not None:
                    better = row["mean"] > other["mean"] if sample["direction"] == "higher" else row["mean"] < other["mean"]
                    apart = row["low"] > other["high"] or other["low"] > row["high"]
                    text = f"**{text}**" if better and apart else text
                cells.append(text)
            task = key[0] if key[0] != last else ""
            last = key[0]
            name = "pre-trained" if init == "pretrained" else "random init"
            lines.append(f"| {task} | {key[1] if init == 'pretrained' else ''} | "
                         f"{metric if init == 'pretrained' else ''} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def wins(rows: List[dict], mixers: List[str]) -> Dict[str, dict]:
    """Per mixer: the tasks (task / probe, judged by ``headline_metric``) where the pre-trained
    encoder is better than its twin, and where the two intervals do not overlap."""
    out = {m: {"better": 0, "apart": 0, "worse_apart": 0, "rows": 0} for m in mixers}
    index = {(r["task"], r["probe"], r["metric"], r["mixer"], r["init"]): r for r in rows}
    firsts = list(dict.fromkeys((r["task"], r["probe"]) for r in rows))
    for task, probe in firsts:
        metric = headline_metric(dict.fromkeys(r["metric"] for r in rows if (r["task"], r["probe"]) == (task, probe)))
        for mixer in mixers:
            p, q = index.get((task, probe, metric, mixer, "pretrained")), index.get((task, probe, metric, mixer, "random"))
            if not p or not q:
                continue
            out[mixer]["rows"] += 1
            better = p["mean"] > q["mean"] if p["direction"] == "higher" else p["mean"] < q["mean"]
            apart = p["low"] is not None and q["low"] is not None and (p["low"] > q["high"] or q["low"] > p["high"])
            out[mixer]["better"] += better
            out[mixer]["apart"] += better and apart
            out[mixer]["worse_apart"] += (not better) and apart
    return out


def overrides_text(settings: dict) -> str:
    """The setting's changes to the --tiny probe settings, as report text ("" if none)."""
    parts = [f"{k}={v}" for k, v in settings["probe_overrides"].items()]
    parts += [f"{recipe} {k}={v}" for recipe, changes in settings["recipe_overrides"].items()
              for k, v in changes.items()]
    return f", with {', '.join(parts)}" if parts else ""


def write_report(ctx, runner: PieceRunner) -> Path:
    report = ctx.out / "report"
    report.mkdir(parents=True, exist_ok=True)
    rows = collect(ctx, runner)
    fmt = lambda v: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
    write_csv(report / "reproduction.csv", CSV_COLUMNS, [{k: fmt(r.get(k)) for k in CSV_COLUMNS} for r in rows])
    table = table_markdown(rows, ctx.mixers)
    (report / "reproduction.md").write_text(table)
    logs = {}
    for mixer in ctx.mixers:
        for seed in ctx.seeds:
            if runner.finished(f"pretrain/{mixer}/{seed}"):
                logs[f"{mixer} seed {seed}"] = read_train_log(ctx.out / "pretrain" / mixer / str(seed))
    curves = None
    if logs:
        try:
            curves = plot_pretraining(logs, report / "pretraining_curves.png",
                                      f"Tiny BEST-RQ pre-training, {ctx.settings['steps']} steps, every mixer "
                                      "(lines: training, markers: validation)")
        except ImportError:
            print("matplotlib is not installed: no pretraining_curves.png")
    bench = ctx.out / "benchmark"
    for name, target in (("benchmark.png", "benchmark.png"), ("summary.md", "benchmark.md")):
        if (bench / name).is_file():
            shutil.copyfile(bench / name, report / target)
    (report / "README.md").write_text(summary_text(ctx, runner, rows, table, curves))
    return report


def _span_text(span: Optional[dict]) -> str:
    if span is None:
        return "."
    stamp = lambda t: datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    return (f", from {stamp(span['start'])} to {stamp(span['end'])}: {(span['end'] - span['start']) / 60:.0f} min of "
            f"wall time ({span['piece_seconds'] / 60:.0f} min of the pieces' own times added up; a restart's "
            "pause counts in the wall time).")


def summary_text(ctx, runner, rows, table, curves) -> str:
    widths = ctx.widths or {}
    done = sum(runner.finished(n) for n in runner.names)
    score = wins(rows, ctx.mixers)
    pre = {}
    for mixer in ctx.mixers:
        for seed in ctx.seeds:
            record = runner.record(f"pretrain/{mixer}/{seed}")
            if record and record.get("status") == "ok":
                pre.setdefault(mixer, []).append(record["result"]["last_epoch"])
    lines = [
        "# Laptop-scale reproduction (synthetic corpus, tiny encoders)", "",
        f"Command: `{ctx.command}`", "",
        f"Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; pieces finished: {done} of "
        f"{len(runner.names)}" + _span_text(pieces_span(runner)), "",
        f"Machine: {ctx.machine}", "",
        "## Setting", "",
        f"Mixers at one parameter-matched tiny size (`brq_tiny.yaml`: {ctx.tiny_desc}; d_model per mixer "
        "matched to the MHSA model's parameter count):", "",
        "| mixer | d_model | parameters | vs MHSA |", "|---|---:|---:|---:|",
    ]
    lines += [f"| {m} | {w['d_model']} | {w['parameters'] / 1e6:.3f}M | {100 * w['vs_reference']:+.1f}% |"
              for m, w in widths.items()]
    lines += [
        "",
        f"Pre-training: {ctx.settings['steps']} optimizer steps per mixer and seed (seeds {', '.join(map(str, ctx.seeds))}), "
        "the synthetic corpus's train-clean-100. Probes: `run_all.py --tiny`, one per task "
        f"({', '.join(recipe_key(r) for r in ctx.recipes)}), on the pre-trained encoder and on its random-initialised "
        "twin (weights drawn with the seed)" + overrides_text(ctx.settings) + ". CTC fine-tuning: `finetune_ctc_tiny.yaml`, "
        f"{ctx.settings['finetune_epochs']} epochs, 3-gram LM of the training transcripts.", "",
        "Each cell: the mean over the seeds and its 95% interval. Each run's interval is the percentile "
        "bootstrap over its test items (utterances for accuracy and WER, trials for the EER, pooled over the "
        "folds for the emotion task); the mean's interval combines them as independent normal errors "
        "(`brq_att_alt.reproduce.combine_seeds`), so it reflects the test set's size, not the spread between "
        "seeds (`reproduction.csv`: min, max and every seed's value). **Bold**: pre-trained better than its "
        "random twin with the two intervals apart.", "",
        "## Results", "", table,
    ]
    if pre:
        lines += ["Last validation masked-frame accuracy of pre-training (per seed): " + "; ".join(
            f"{m} " + ", ".join(f"{100 * e.get('valid_acc', float('nan')):.1f}%" for e in eps) for m, eps in pre.items())
            + ".", ""]
    if curves is not None:
        lines += ["![pre-training curves](pretraining_curves.png)", ""]
    if (ctx.out / "report" / "benchmark.md").is_file():
        lines += ["Speed and memory of the same tiny encoders: `benchmark.md`, `benchmark.png`.", "",
                  "![benchmark](benchmark.png)", ""]
    lines += ["## What the numbers show, and what they do not", ""]
    if score and any(s["rows"] for s in score.values()):
        lines += ["Pre-trained vs random init, per mixer, over the tasks (the first metric of each; ASR: WER with "
                  "the LM): " + "; ".join(f"{m}: better on {s['better']} of {s['rows']} ({s['apart']} with intervals "
                                        f"apart, {s['worse_apart']} worse with intervals apart)"
                                        for m, s in score.items() if s["rows"]) + ".", ""]
    lines += [
        "- They show that the whole pipeline (pre-training, frozen probes, fine-tuning, benchmark) runs for every "
        "mixer at a matched size, and whether minutes of BEST-RQ pre-training on synthetic speech give "
        "representations that beat the same network with random weights, task by task.",
        "- They do not rank the mixers as the papers do: tiny models (about 0.9M parameters), a few hundred "
        f"steps, minutes of eSpeak speech with a closed vocabulary and {ctx.num_voices} synthetic voices; differences between "
        "mixers are mostly within the intervals, and the intervals cover test-item sampling only, with 2 seeds.",
        "- The synthetic tasks are stand-ins: speaker = eSpeak voice, emotion = prosody style, intent = "
        "sentence template, low-resource ASR = a small split of the same corpus. A random network's features "
        "keep much of the filterbank, which is often enough for voice and prosody.",
        "- Speed and memory: the tiny encoders on this CPU, one thread; the papers' figure is the base size on "
        "a GPU (`scripts/benchmark.py`, README 'Speed and memory against input length').",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ seeds in parallel
def seed_groups(seeds: List[int], jobs: int) -> List[List[int]]:
    """``seeds`` dealt round-robin into at most ``jobs`` non-empty groups, one per process."""
    groups = [seeds[i::max(1, jobs)] for i in range(min(max(1, jobs), len(seeds)))]
    return [g for g in groups if g]


def child_command(args, group: List[int]) -> List[str]:
    """This script for the seeds of ``group`` only: the same settings, no benchmark, no bar."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(Path(args.out).resolve()),
           "--seeds", *map(str, group), "--mixers", *args.mixers, "--data_folder", str(Path(args.data_folder).resolve()),
           "--threads", str(args.threads), "--jobs", "1", "--no_progress", "--skip_benchmark"]
    if args.quick:
        cmd.append("--quick")
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    return cmd


def run_seed_processes(args, seeds: List[int], runner: PieceRunner, out: Path) -> None:
    """One process of this script per group of seeds (``seed_groups``), their output in
    ``<out>/seeds_<seeds>.log``; the bar follows the pieces they finish. Pieces a process leaves
    unfinished are run (again) by the caller afterwards, one at a time."""
    procs = []
    for group in seed_groups(seeds, args.jobs):
        log = out / f"seeds_{'_'.join(map(str, group))}.log"
        with open(log, "a") as fh:
            procs.append((subprocess.Popen(child_command(args, group), cwd=REPO, stdout=fh,
                                           stderr=subprocess.STDOUT), log))
        runner.log(f"seeds {' '.join(map(str, group))}: a process of their own, log {log}")
    while any(p.poll() is None for p, _ in procs):
        time.sleep(5)
        if runner.bar is not None:
            runner.bar.n = sum(runner.finished(n) for n in runner.names)
            runner.bar.refresh()
    for p, log in procs:
        if p.returncode != 0:
            runner.log(f"a seed process ended with status {p.returncode} (see {log}); its unfinished pieces run now")


# ------------------------------------------------------------------ main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", default="results/reproduce_tiny", help="output folder (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks the pipeline in minutes")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 1000 1001")
    parser.add_argument("--mixers", nargs="+", default=list(MIXERS), choices=list(MIXERS))
    parser.add_argument("--steps", type=int, default=None, help="pre-training optimizer steps (default: the setting's)")
    parser.add_argument("--data_folder", "--data-folder", default="data/synthetic_corpus",
                        help="the synthetic corpus (made there if absent)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each recipe (default 1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds run in parallel, each in its own process of this script (default 1: one "
                             "piece at a time); 2 on a 2-core machine with --threads 1")
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--skip_benchmark", "--skip-benchmark", action="store_true")
    parser.add_argument("--report_only", "--report-only", action="store_true",
                        help="run nothing: write the report from the pieces finished so far (e.g. while the run "
                             "goes on in another process)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = json.loads(json.dumps(SETTINGS["quick" if args.quick else "full"]))
    if args.steps is not None:
        settings["steps"] = args.steps
    seeds = args.seeds or settings["seeds"]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run_all = load_run_all()
    recipes = [r for r in run_all.find_recipes() if recipe_key(r) in run_all.DEMO_RECIPES]
    tiny = load_hparams_file(str(TINY_YAML), {"output_folder": "/nonexistent"})
    data_folder = Path(args.data_folder).resolve()
    try:
        from brq_att_alt.benchmarking.report import machine_info

        info = machine_info("cpu")
        machine = (f"{info['cpu']}, {info['usable_cpus']} usable CPUs, {info['memory']}, torch {info['torch']}, "
                   f"load average at the report {info['load_average']}; recipes with {args.threads} thread(s), "
                   + ("one at a time" if args.jobs <= 1 else f"{args.jobs} at a time (one process per seed)"))
    except Exception as err:  # the report still gets written
        machine = f"(machine description unavailable: {err})"
    ctx = SimpleNamespace(out=out, settings=settings, seeds=seeds, mixers=args.mixers, threads=args.threads,
                          data_folder=data_folder, run_all=run_all, recipes=recipes, widths=None, machine=machine,
                          num_voices=dict(tiny["synthetic_corpus_options"]).get("num_speakers", "the corpus's"),
                          tiny_desc=f"{tiny['num_layers']} layers, d_ffn {tiny['d_ffn']}, {tiny['nhead']} heads, "
                                    f"kernel {tiny['kernel_size']}, {tiny['codebook_size']} codes",
                          command=shlex.join(["python", "scripts/reproduce_tiny.py", *[
                              a for a in (argv if argv is not None else sys.argv[1:])
                              if a not in ("--report_only", "--report-only")]]))
    ctx.probe_args = {seed: run_all.parse_args(
        ["--pretrained", "unused", "--tiny", "--output", str(out / "probes" / str(seed)), "--init_seed", str(seed),
         "--synthetic_folder", str(data_folder), "--threads", str(args.threads), "--jobs", "1",
         *[f"--set={k}={v}" for k, v in settings["probe_overrides"].items()]]) for seed in seeds}

    names = ["corpus", "widths"]
    for seed in seeds:
        for mixer in args.mixers:
            names.append(f"pretrain/{mixer}/{seed}")
            names += [f"probe/{mixer}/{seed}/{init}/{recipe_key(r)}" for init in INITS for r in recipes]
            names += [f"finetune/{mixer}/{seed}/{init}" for init in INITS]
    if not args.skip_benchmark:
        names.append("benchmark")
    runner = PieceRunner(out, names, progress=not (args.no_progress or args.report_only),
                         log=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.report_only:
        runner.close()
        ctx.widths = runner.record("widths")["result"] if runner.finished("widths") else None
        report = write_report(ctx, runner)
        print(f"report: {report}/README.md; {sum(runner.finished(n) for n in names)} of {len(names)} pieces finished")
        return 0
    try:
        corpus_options = dict(tiny["synthetic_corpus_options"])
        runner.run("corpus", lambda: {"folder": str(ensure_synthetic_corpus(data_folder, corpus_options))})
        ctx.widths = runner.run("widths", lambda: matched_widths(args.mixers))
        if ctx.widths is None:
            raise SystemExit("the widths piece failed: see " + str(runner.record_path("widths")))
        if args.jobs > 1 and len(seeds) > 1:
            run_seed_processes(args, seeds, runner, out)
        for seed in seeds:
            for mixer in args.mixers:
                if runner.run(f"pretrain/{mixer}/{seed}", lambda: pretrain_piece(ctx, mixer, seed)) is None:
                    continue  # its probes and fine-tunings need the run: they wait for the next start
                for init in INITS:
                    for recipe in recipes:
                        runner.run(f"probe/{mixer}/{seed}/{init}/{recipe_key(recipe)}",
                                   lambda: probe_piece(ctx, mixer, seed, init, recipe))
                for init in INITS:
                    runner.run(f"finetune/{mixer}/{seed}/{init}", lambda: finetune_piece(ctx, mixer, seed, init))
        if not args.skip_benchmark:
            if all(runner.finished(f"pretrain/{m}/{seeds[0]}") for m in args.mixers):
                runner.run("benchmark", lambda: benchmark_piece(ctx))
    finally:
        runner.close()
    report = write_report(ctx, runner)
    missing = [n for n in names if not runner.finished(n)]
    print((report / "reproduction.md").read_text())
    print(f"report: {report}/README.md; {len(names) - len(missing)} of {len(names)} pieces finished"
          + (f"; not finished: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''} (run the same command "
             "again to retry them)" if missing else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
