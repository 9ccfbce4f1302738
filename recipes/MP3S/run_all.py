#!/usr/bin/env python3
"""Run every MP3S task and probe on pre-trained checkpoint(s) and write one results table.

    python recipes/MP3S/run_all.py --pretrained results/brq_mhsa_tiny/1000 --tiny
    python recipes/MP3S/run_all.py --pretrained RUN_A RUN_B --output results/mp3s \
        --real LibriSpeech_ASR=/data/LibriSpeech --real VoxCeleb1_SV=/data/VoxCeleb1 \
        --real CommonVoice_ASR=/data/cv-corpus-11.0-2022-09-21 --real SLURP_IC=/data/SLURP \
        --real IEMOCAP_ER=/data/IEMOCAP_full_release --lm_path /data/4-gram.arpa

Each recipe runs in its own process (``python <Task>/<probe>/train.py <yaml> ...``)
with ``--output_folder <output>/<mixer label>/<Task>/<probe>``; its log goes to
``driver.log`` there and its final numbers to ``mp3s_metrics.json``. The table
(``results.md`` + ``results.csv`` in ``--output``) has one row per task / probe /
metric and one column per checkpoint (named by its mixer), as the papers' Table 1.

Every ``<Task>/<probe>/hparams/*.yaml`` is a recipe (its probe is the YAML's ``probe_name``);
rows follow the tasks of Table 1, the probes of a task by name. ``--tiny`` overrides
epochs, data subsets and probe sizes (``TINY`` below) so that
the whole grid runs on a CPU in minutes (e.g. from the demo checkpoint of
``hparams/brq_tiny.yaml``); the numbers then only show that everything runs.
Tasks without ``--real`` use the synthetic corpus (``data/synthetic_corpus``).

On a SLURM cluster the grid runs as a job array, one array task per recipe::

    python recipes/MP3S/run_all.py --pretrained RUN_A RUN_B --output results/mp3s --real ... \
        --device cuda:0 --slurm [--max_parallel 10] [--sbatch_arg=--partition=gpu]
    python recipes/MP3S/run_all.py --output results/mp3s --collect     # the table, once it is done

``--slurm`` writes the job list ``<output>/slurm/jobs.json`` (each recipe's command line
and folder) and submits ``scripts/slurm/mp3s_array.sbatch`` with ``sbatch --array``;
array task ``i`` runs job ``i`` (``run_all.py --run_task JOBS i``: the same process, logs
and ``mp3s_metrics.json`` as a local run). ``--dry_run`` writes the job list and prints
the ``sbatch`` command without submitting (no SLURM needed). ``--collect`` builds
``results.md`` / ``results.csv`` from the finished runs of the job list; a recipe that
has not finished shows as ``failed`` and is listed with its log.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

from brq_att_alt.csv_files import write_csv
from brq_att_alt.pretrained import CONFIG_NAME, find_save_folder
from brq_att_alt.probes.compare import COLUMNS as COMPARISON_COLUMNS
from brq_att_alt.probes.compare import comparison_markdown, comparison_rows
from brq_att_alt.probes.training import METRICS_FILE

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SBATCH_TEMPLATE = REPO_ROOT / "scripts" / "slurm" / "mp3s_array.sbatch"
JOBS_FILE = Path("slurm") / "jobs.json"  # inside --output
RANDOM_SUFFIX = "-random"  # column of a checkpoint's random-initialised twin (--random_twin)

# Tasks in the order of the papers' Table 1, with their row titles
TASK_NAMES = {
    "LibriSpeech_ASR": "ASR LibriSpeech", "CommonVoice_ASR": "ASR CommonVoice",
    "VoxCeleb1_SV": "Speaker verification VoxCeleb1", "SLURP_IC": "Intent classification SLURP",
    "IEMOCAP_ER": "Emotion recognition IEMOCAP",
}

# --tiny: what every recipe and each (task, probe_name) gets; the tests use this table too.
# Sized for minutes on a CPU with a tiny pre-trained encoder and the synthetic corpus: data
# subsets, small probes, hidden states cached after the first epoch (probe epochs then skip
# the encoder), a higher learning rate than MP3S's for the few epochs.
TINY_COMMON = {"number_of_epochs": 15, "train_subset": 384, "valid_subset": 64, "cache_hidden": True,
               "batch_size": 16, "test_batch_size": 16, "lr": 0.002}
TINY_ECAPA = {"ecapa_channels": "[64,64,64,64,192]", "ecapa_attention_channels": 16, "ecapa_se_channels": 16,
              "emb_dim": 32}
# speaker verification on the synthetic corpus: 12 voices held out for the trials, whole utterances
# (no 3 s crops, which would forbid the cache; the synthetic utterances are 1-7 s long)
TINY_SV = {"train_subset": 576, "crop_seconds": "null",
           "synthetic_options": "{num_test_speakers: 12, train_splits: [train-clean-100, train-clean-360, "
                                "train-other-500], valid_splits: [dev-clean], test_splits: [test-clean, test-other]}"}
# low-resource ASR on the synthetic corpus: 96 training utterances. Characters instead of MP3S's 100 BPE
# units and batches of 4 (MP3S's CV batch size) instead of 16. Measured with the demo's checkpoint
# (pre-trained with brq_tiny.yaml's dropout 0.1; the demo's, without dropout, gives 93.4% vs 100%): with
# BPE both twins stayed on the blank-only CTC output (WER 100%; BiLSTM with batches of 16 or 4, linear
# with 16); characters with batches of 4 left it (BiLSTM 91.8% vs 100% WER, linear 98.4% vs 100%)
TINY_CV = {"token_type": "char", "batch_size": 4, "number_of_epochs": 30, "test_subset": 128, "beam_size": 8}
# The demo's probes (DEMO_RECIPES) train as long as its 10 minutes allow: with the same checkpoint the
# LibriSpeech and SLURP BiLSTMs still improved on the validation set after 20 and 15 epochs (35 and 25
# now); the IEMOCAP ECAPA folds' validation accuracy (24 items a fold) only wavers after about 5 (8 now;
# test accuracy 62.5% vs 62.5% random with 8, 63.5% vs 69.8% with 12, 68.8% vs 69.8% with 20)
TINY = {
    ("LibriSpeech_ASR", "BiLSTM"): {"lstm_hidden": 64, "number_of_epochs": 35, "test_subset": 128, "beam_size": 8,
                                    "lm_order": 3},
    ("LibriSpeech_ASR", "ContextNet"): {"contextnet_blocks": 2, "contextnet_channels": "[64,64]", "contextnet_out": 64,
                                        "contextnet_layers": 2, "number_of_epochs": 20, "test_subset": 128,
                                        "beam_size": 8, "lm_order": 3},
    ("CommonVoice_ASR", "linear"): {"dnn_neurons": 128, **TINY_CV},
    ("CommonVoice_ASR", "BiLSTM"): {"lstm_hidden": 64, **TINY_CV},
    ("VoxCeleb1_SV", "Xvector"): {"xvector_channels": "[64,64,64,64,128]", "emb_dim": 32, "classifier_neurons": 32,
                                  **TINY_SV},
    ("VoxCeleb1_SV", "ECAPA"): {**TINY_ECAPA, **TINY_SV},
    ("SLURP_IC", "linear"): {"number_of_epochs": 30, "test_subset": 128},
    ("SLURP_IC", "BiLSTM"): {"lstm_hidden": 64, "number_of_epochs": 25, "test_subset": 128},
    ("IEMOCAP_ER", "linear"): {"number_of_epochs": 30, "folds": "[1,2,3,4]"},
    ("IEMOCAP_ER", "ECAPA"): {**TINY_ECAPA, "number_of_epochs": 8, "folds": "[1,2,3,4]"},
}
# One probe per task, the one that can read the cue the synthetic labels are made of, for the
# demo and scripts/reproduce_tiny.py (--recipes): words in order for ASR (both tasks) and intent
# (BiLSTM; the frame-wise linear probe of low-resource ASR stays near 98% WER), pitch range and
# rate for the prosody style (ECAPA's attentive statistics), the cheaper probe of speaker
# verification (X-vector)
DEMO_RECIPES = ("LibriSpeech_ASR/BiLSTM", "CommonVoice_ASR/BiLSTM", "VoxCeleb1_SV/Xvector", "SLURP_IC/BiLSTM",
                "IEMOCAP_ER/ECAPA")


class Job(NamedTuple):
    """One recipe run: the recipe, its Common Voice language (else None), the table column
    (``label``), the pre-training run, and the encoder's initialisation: ``pretrained``, or
    ``random`` for the run's random-initialised twin (``--random_twin``)."""

    recipe: "Recipe"
    language: Optional[str]
    label: str
    pretrained: str
    init: str = "pretrained"


class Recipe(NamedTuple):
    """One MP3S recipe: its task folder, its probe (the YAML's ``probe_name``) and its YAML."""

    task: str
    probe: str
    yaml: Path

    @property
    def script(self) -> Path:
        """``<Task>/<probe>/train.py`` (a link to the task's entry point)."""
        return self.yaml.parents[1] / "train.py"


def probe_name(yaml_file: Path) -> str:
    """The top-level ``probe_name`` of a recipe YAML (read as text: nothing is instantiated)."""
    match = re.search(r"^probe_name:\s*([^\s#]+)", Path(yaml_file).read_text(encoding="utf-8"), re.M)
    if match is None:
        raise ValueError(f"{yaml_file} has no top-level probe_name")
    return match.group(1)


def find_recipes() -> List[Recipe]:
    """Every ``<Task>/<probe>/hparams/*.yaml``: tasks in Table 1 order, probes by name."""
    found = [Recipe(task, probe_name(y), y) for task in TASK_NAMES
             for y in sorted((HERE / task).glob("*/hparams/*.yaml"))]
    return sorted(found, key=lambda r: (list(TASK_NAMES).index(r.task), r.probe.lower()))


def checkpoint_label(path: str) -> str:
    """The checkpoint's mixer (from brq_model.json), else the folder name."""
    try:
        return json.loads((find_save_folder(path) / CONFIG_NAME).read_text())["mixer"]
    except (OSError, KeyError, ValueError):
        return Path(path).name


def build_command(recipe: Recipe, pretrained, out_dir, args, language=None, init="pretrained"):
    task = recipe.task
    cmd = [sys.executable, str(recipe.script), str(recipe.yaml), f"--pretrained_path={pretrained}",
           f"--output_folder={out_dir}"]
    overrides = {}
    if args.tiny:
        overrides.update(TINY_COMMON)
        overrides.update(TINY[(task, recipe.probe)])
    if task in args.real:
        overrides.update({"dataset": "real", "data_folder": args.real[task]})
    elif args.synthetic_folder:
        overrides["data_folder"] = args.synthetic_folder
    if language is not None:
        overrides["language"] = language
    if task == "LibriSpeech_ASR" and args.lm_path:
        overrides["lm_path"] = args.lm_path
    if init != "pretrained":
        overrides.update({"encoder_init": init, "encoder_init_seed": args.init_seed})
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = value
    cmd += [f"--{k}={v}" for k, v in overrides.items()]
    if args.device:
        cmd.append(f"--device={args.device}")
    return cmd


def job_folder(output, job: Job) -> Path:
    """``<output>/<label>/<Task>/<probe>[/<language>]``: where a job's recipe writes."""
    return Path(output) / job.label / job.recipe.task / job.recipe.probe / (job.language or "")


def run_one(job: Job, args):
    out_dir = job_folder(args.output, job)
    cmd = build_command(job.recipe, job.pretrained, out_dir, args, job.language, job.init)
    return run_recipe_command(job_record(job, out_dir, cmd, args.threads))


def job_record(job: Job, out_dir: Path, cmd: List[str], threads) -> dict:
    """One recipe run as plain data (what ``<output>/slurm/jobs.json`` lists): ``cmd`` without the
    interpreter (the one running the job is used)."""
    return {"task": job.recipe.task, "probe": job.recipe.probe, "language": job.language, "label": job.label,
            "init": job.init, "out_dir": str(out_dir), "cmd": [str(c) for c in cmd[1:]], "threads": threads}


def run_recipe_command(record: dict) -> dict:
    """Run one recipe (``job_record``) in its own process, log in ``driver.log``; its result entry."""
    out_dir = Path(record["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, *record["cmd"]]
    env = dict(os.environ)
    if record.get("threads"):
        env["OMP_NUM_THREADS"] = str(record["threads"])
        env["MKL_NUM_THREADS"] = str(record["threads"])
    (out_dir / METRICS_FILE).unlink(missing_ok=True)
    start = time.time()
    with open(out_dir / "driver.log", "w") as log:
        log.write(" ".join(cmd) + "\n\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.time() - start
    result = collected_result(record, seconds)
    if proc.returncode != 0:
        result["metrics"] = None
    status = "ok" if result["metrics"] else f"FAILED (exit {proc.returncode}, see {out_dir / 'driver.log'})"
    print(f"[{record['label']}] {run_name(record)}: {status} in {seconds:.0f} s", flush=True)
    return result


def run_name(record: dict) -> str:
    return f"{record['task']}/{record['probe']}" + (f"/{record['language']}" if record["language"] else "")


def collected_result(record: dict, seconds=None) -> dict:
    """The result entry of a job from its folder: ``metrics`` from ``mp3s_metrics.json`` (None if absent)."""
    out_dir = Path(record["out_dir"])
    metrics = None
    if (out_dir / METRICS_FILE).is_file():
        metrics = json.loads((out_dir / METRICS_FILE).read_text())
    return {"task": record["task"], "probe": record["probe"], "language": record["language"],
            "label": record["label"], "init": record.get("init", "pretrained"), "metrics": metrics,
            "seconds": seconds, "log": str(out_dir / "driver.log")}


def task_title(task, language):
    return TASK_NAMES[task] + (f" ({language})" if language else "")


def write_tables(results, labels, output: Path):
    """results.csv (long) + results.md (Table 1 layout: rows task/probe/metric, columns mixers)."""
    rows, index = [], {}
    # successful runs define the rows; a failed run shows as "failed" in its column,
    # or as a "(failed)" row when no checkpoint gave that task / probe any metric
    ordered = sorted(enumerate(results), key=lambda ir: (ir[1]["metrics"] is None, ir[0]))
    positions = {}
    for i, r in ordered:
        title = task_title(r["task"], r["language"])
        metric_items = (r["metrics"] or {}).get("metrics")
        if not metric_items:
            if any(k[:2] == (title, r["probe"]) for k in index):
                continue
            metric_items = {"(failed)": {"value": None, "direction": ""}}
        for metric, m in metric_items.items():
            key = (title, r["probe"], metric)
            if key not in index:
                index[key] = {"task": title, "probe": r["probe"], "metric": metric,
                              "direction": m.get("direction", ""), "unit": m.get("unit", "")}
                positions[key] = (i, len(positions))
            index[key][r["label"]] = m.get("value")
    first_seen = {}
    for key, (i, _) in positions.items():  # keep the order of the runs (first run of each row)
        first_seen[key[:2]] = min(first_seen.get(key[:2], i), i)
    rows = [index[k] for k in sorted(index, key=lambda k: (first_seen[k[:2]], positions[k][1]))]
    write_csv(output / "results.csv", ["task", "probe", "metric", "direction", "unit"] + labels,
              [{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows])
    arrow = {"lower": "↓", "higher": "↑"}
    lines = ["| Task | Probe | Metric | " + " | ".join(labels) + " |",
             "|---|---|---|" + "---:|" * len(labels)]
    last_task = None
    for row in rows:
        cells = []
        for label in labels:
            v = row.get(label)
            cells.append("failed" if v is None else f"{v:.2f}")
        task = row["task"] if row["task"] != last_task else ""
        last_task = row["task"]
        metric = f"{row['metric']} ({row['unit']}) {arrow.get(row['direction'], '')}".replace(" ()", "")
        lines.append(f"| {task} | {row['probe']} | {metric} | " + " | ".join(cells) + " |")
    (output / "results.md").write_text("\n".join(lines) + "\n")
    return output / "results.md", output / "results.csv"


def write_comparisons(results, labels, output: Path) -> Optional[Path]:
    """With random-initialised twins among ``results``: ``comparison.md`` / ``comparison.csv`` in
    ``output``, one table per pre-trained checkpoint (``probes.compare``: value [95% CI] of the
    pre-trained encoder and of its twin, row by row). None (nothing written) without twins."""
    twins = {label: label + RANDOM_SUFFIX for label in labels if label + RANDOM_SUFFIX in labels}
    if not twins:
        return None
    sections, csv_rows = [], []
    for label, twin in twins.items():
        entries = []
        for r in results:
            if r["label"] in (label, twin):
                metrics = (r["metrics"] or {}).get("metrics") or {}
                entries.append({"task": task_title(r["task"], r["language"]), "probe": r["probe"],
                                "init": "pretrained" if r["label"] == label else "random", "metrics": metrics})
        rows = comparison_rows(entries)
        table = comparison_markdown(rows, title_pretrained=f"{label} pre-trained",
                                    title_random=f"{label} random init")
        sections.append(table if len(twins) == 1 else f"## {label}\n\n{table}")
        fmt = lambda v: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
        csv_rows += [{"checkpoint": label, **{k: fmt(row.get(k)) for k in COMPARISON_COLUMNS}} for row in rows]
    md = output / "comparison.md"
    md.write_text("\n".join(sections))
    write_csv(output / "comparison.csv", ["checkpoint", *COMPARISON_COLUMNS], csv_rows)
    return md


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", nargs="+", default=None,
                        help="pre-training output folder(s) (one table column each)")
    parser.add_argument("--output", default="results/mp3s")
    parser.add_argument("--tiny", action="store_true", help="tiny CPU setting (minutes for the grid)")
    parser.add_argument("--tasks", nargs="+", default=None, choices=sorted(TASK_NAMES),
                        help="default: every task")
    parser.add_argument("--probes", nargs="+", default=None, help="only these probe names")
    parser.add_argument("--recipes", nargs="+", default=None, metavar="TASK/PROBE",
                        help="only these recipes, e.g. SLURP_IC/BiLSTM, or 'demo': the one probe per task of the "
                             "demo (DEMO_RECIPES); with --tasks / --probes: all must match")
    parser.add_argument("--random_twin", "--random-twin", action="store_true",
                        help="also probe every checkpoint's random-initialised twin (the same architecture, "
                             f"weights drawn with --init_seed; column <mixer>{'-random'}) and write comparison.md / "
                             "comparison.csv: pre-trained vs random init with 95%% intervals")
    parser.add_argument("--init_seed", "--init-seed", type=int, default=0,
                        help="seed of the random-initialised twins' weights (default 0)")
    parser.add_argument("--cv_languages", nargs="+", default=None, choices=["cy", "eu"],
                        help="Common Voice languages (default cy eu; cy only with --tiny)")
    parser.add_argument("--real", action="append", default=[], metavar="TASK=FOLDER",
                        help="use the real dataset in FOLDER for TASK (repeatable)")
    parser.add_argument("--synthetic_folder", default=None, help="synthetic corpus folder (default the YAMLs')")
    parser.add_argument("--lm_path", default=None, help="n-gram LM for LibriSpeech (the official 4-gram ARPA)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override passed to every recipe (repeatable)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="recipes run in parallel (default 1; 2 with --tiny)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP threads per recipe (default: 1 with --tiny, else unchanged)")
    parser.add_argument("--device", default=None, help="e.g. cuda:0")
    slurm = parser.add_argument_group("SLURM job array (module doc)")
    slurm.add_argument("--slurm", action="store_true",
                       help=f"submit the recipes as a job array of {SBATCH_TEMPLATE.relative_to(REPO_ROOT)}")
    slurm.add_argument("--dry_run", "--dry-run", action="store_true",
                       help="with --slurm: write the job list and print the sbatch command, submit nothing")
    slurm.add_argument("--max_parallel", "--max-parallel", type=int, default=None,
                       help="with --slurm: at most this many array tasks at once (sbatch --array=...%%N)")
    slurm.add_argument("--sbatch_arg", "--sbatch-arg", action="append", default=[], metavar="ARG",
                       help="with --slurm: an sbatch option, e.g. --sbatch_arg=--partition=gpu (repeatable)")
    slurm.add_argument("--collect", action="store_true",
                       help="build the results table from the runs of <output>/slurm/jobs.json")
    slurm.add_argument("--run_task", "--run-task", nargs=2, metavar=("JOBS", "INDEX"), default=None,
                       help="run job INDEX of the job list JOBS (what each array task does)")
    args = parser.parse_args(argv)
    if args.run_task is None and not args.collect and not args.pretrained:
        parser.error("--pretrained is required (except with --collect or --run_task)")
    if (args.dry_run or args.max_parallel or args.sbatch_arg) and not args.slurm:
        parser.error("--dry_run, --max_parallel and --sbatch_arg go with --slurm")
    if args.max_parallel is not None and args.max_parallel < 1:
        parser.error("--max_parallel must be >= 1")
    real = {}
    for item in args.real:
        task, sep, folder = item.partition("=")
        if not sep or task not in TASK_NAMES:
            parser.error(f"--real takes TASK=FOLDER with TASK in {sorted(TASK_NAMES)}, got {item!r}")
        real[task] = folder
    args.real = real
    known = {f"{r.task}/{r.probe}" for r in find_recipes()}
    if args.recipes and "demo" in args.recipes:
        args.recipes = [r for r in args.recipes if r != "demo"] + list(DEMO_RECIPES)
    for name in args.recipes or []:
        if name not in known:
            parser.error(f"--recipes: unknown recipe {name!r}; known: {sorted(known)}")
    if args.threads is None and args.tiny:
        args.threads = 1
    if args.jobs is None:
        args.jobs = 2 if args.tiny else 1
    if args.cv_languages is None:
        args.cv_languages = ["cy"] if args.tiny else ["cy", "eu"]
    return args


def selected(recipe: Recipe, args) -> bool:
    """Whether ``--tasks``, ``--probes`` and ``--recipes`` (each when given) all keep the recipe."""
    return not (args.tasks and recipe.task not in args.tasks or args.probes and recipe.probe not in args.probes
                or args.recipes and f"{recipe.task}/{recipe.probe}" not in args.recipes)


def plan(args):
    """(column labels, jobs): one ``Job`` per checkpoint x recipe x Common Voice language; with
    ``--random_twin`` each checkpoint's random-initialised twin too (column ``<label>-random``)."""
    labels, jobs = [], []
    for pretrained in args.pretrained:
        label = checkpoint_label(pretrained)
        while label in labels:
            label += "'"
        inits = {label: "pretrained"}
        if getattr(args, "random_twin", False):
            inits[label + RANDOM_SUFFIX] = "random"
        labels += list(inits)
        for recipe in find_recipes():
            if not selected(recipe, args):
                continue
            for language in (args.cv_languages if recipe.task == "CommonVoice_ASR" else [None]):
                for column, init in inits.items():  # twins side by side: with --jobs 2 they run together
                    jobs.append(Job(recipe, language, column, str(Path(pretrained).resolve()), init))
    return labels, jobs


# ------------------------------------------------------------------ SLURM
def write_job_list(args, labels, jobs) -> Path:
    """``<output>/slurm/jobs.json``: the column labels and every job's record (``job_record``), in order."""
    output = Path(args.output).resolve()
    records = []
    for job in jobs:
        out_dir = job_folder(output, job)
        records.append(job_record(job, out_dir, build_command(job.recipe, job.pretrained, out_dir, args, job.language,
                                                              job.init), args.threads))
    path = output / JOBS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"output": str(output), "labels": labels, "jobs": records}, indent=2))
    return path


def sbatch_command(jobs_file: Path, count: int, args) -> List[str]:
    """The ``sbatch`` command line of the job array: one array task per job of ``jobs_file``."""
    array = f"0-{count - 1}" + (f"%{args.max_parallel}" if args.max_parallel else "")
    logs = jobs_file.parent / "%x-%A_%a.out"
    return ["sbatch", "--parsable", f"--array={array}", f"--output={logs}",
            f"--export=ALL,BRQ_REPO={REPO_ROOT}", *args.sbatch_arg, str(SBATCH_TEMPLATE), str(jobs_file)]


def submit(args, labels, jobs) -> int:
    if not jobs:
        print("error: no recipe matches --tasks / --probes", file=sys.stderr)
        return 2
    jobs_file = write_job_list(args, labels, jobs)
    cmd = sbatch_command(jobs_file, len(jobs), args)
    print(f"{len(jobs)} recipes listed in {jobs_file}")
    if args.dry_run:
        print("dry run, not submitted:\n" + shlex.join(cmd))
        return 0
    if shutil.which("sbatch") is None:
        print("error: sbatch not found: submit from a SLURM login node, or use --dry_run to write the job "
              f"list only (then: {shlex.join(cmd)})", file=sys.stderr)
        return 2
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"error: sbatch failed (exit {proc.returncode}): {proc.stderr.strip()}", file=sys.stderr)
        return 2
    job_id = proc.stdout.strip().split(";")[0]
    (jobs_file.parent / "submitted.txt").write_text(f"{job_id}\n{shlex.join(cmd)}\n")
    print(f"submitted job array {job_id}; when it is done: python {Path(__file__).relative_to(REPO_ROOT)} "
          f"--output {args.output} --collect")
    return 0


def read_job_list(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: no job list {path}: write it with --slurm (--dry_run to only write it)")
    return json.loads(path.read_text())


def run_task(jobs_file, index) -> int:
    """Run job ``index`` of the job list (an array task); 0 if it wrote its metrics."""
    jobs = read_job_list(Path(jobs_file))["jobs"]
    if not 0 <= int(index) < len(jobs):
        print(f"error: job {index} is not in {jobs_file} ({len(jobs)} jobs)", file=sys.stderr)
        return 2
    return 0 if run_recipe_command(jobs[int(index)])["metrics"] else 1


def collect(output: Path) -> int:
    """The results table of the runs of ``<output>/slurm/jobs.json`` (unfinished ones: failed)."""
    listing = read_job_list(output / JOBS_FILE)
    results = [collected_result(record) for record in listing["jobs"]]
    md, csv_path = write_tables(results, listing["labels"], output)
    (output / "runs.json").write_text(json.dumps({"total_seconds": None, "runs": results}, indent=2))
    print(md.read_text())
    comparison = write_comparisons(results, listing["labels"], output)
    if comparison is not None:
        print(comparison.read_text())
    missing = [r for r in results if not r["metrics"]]
    for i, r in enumerate(results):
        if not r["metrics"]:
            print(f"not finished: job {i} [{r['label']}] {run_name(r)} (see {r['log']})")
    print(f"{len(results) - len(missing)} of {len(results)} recipes finished -> {md}, {csv_path}")
    return 1 if missing else 0


def main(argv=None):
    args = parse_args(argv)
    if args.run_task is not None:
        return run_task(*args.run_task)
    output = Path(args.output)
    if args.collect:
        return collect(output)
    output.mkdir(parents=True, exist_ok=True)
    labels, jobs = plan(args)
    if args.slurm:
        return submit(args, labels, jobs)
    start = time.time()
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        results = list(pool.map(lambda job: run_one(job, args), jobs))
    total = time.time() - start
    md, csv_path = write_tables(results, labels, output)
    (output / "runs.json").write_text(json.dumps({"total_seconds": total, "runs": results}, indent=2))
    print(md.read_text())
    comparison = write_comparisons(results, labels, output)
    if comparison is not None:
        print(comparison.read_text())
    print(f"{len(results)} recipes in {total:.0f} s -> {md}, {csv_path}"
          + (f", {comparison}" if comparison is not None else ""))
    failed = [r for r in results if not r["metrics"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
