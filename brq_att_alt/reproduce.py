"""Pre-training curves from train logs, and the resumable pieces of the laptop-scale reproduction.

Training curves
---------------
A pre-training run's ``train_log.txt`` (``training.FaultTolerantBrain`` and ``train.py``)
holds a step line every ``log_interval_steps`` optimizer steps and a line per epoch::

    step: 60, epoch: 1, lr: 9.21e-04 - train loss: 4.67, train acc: 2.46e-01
    epoch: 1, steps: 78, lr: 8.01e-04 - train loss: 5.14, train acc: 2.12e-01 - valid loss: 4.56, valid acc: 2.26e-01

``read_train_log`` parses both kinds, ``curve_table`` prints the per-epoch figures and
``plot_pretraining`` draws loss and masked-frame accuracy against optimizer steps (the
step lines' training figures as lines, the per-epoch validation figures as markers), one
colour per run, with matplotlib's Agg canvas (no pyplot state)::

    python -m brq_att_alt.reproduce curves results/brq_mhsa_tiny/1000 --out curves.png

Resumable pieces
----------------
``PieceRunner`` runs named pieces of work (a pre-training, a probe, a fine-tuning ...) one
after the other with a progress bar; each finished piece leaves ``<out>/pieces/<name>.json``
(its result, written atomically) and is not run again: a killed reproduction, started again,
continues with the first unfinished piece. A piece that raises is recorded as failed (its
error in the JSON, ``status: failed``) and is tried again at the next start.
"""

import argparse
import json
import math
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

PathLike = Union[str, Path]

_FIELD = re.compile(r"(?P<key>[A-Za-z_ ]+?):\s*(?P<value>[-+0-9.eE]+|nan|inf)\s*(?:,|$)")


def _fields(part: str) -> Dict[str, float]:
    """``"train loss: 4.67, train acc: 2.46e-01"`` -> {"train loss": 4.67, "train acc": 0.246}."""
    return {m.group("key").strip(): float(m.group("value")) for m in _FIELD.finditer(part.strip())}


def read_train_log(path: PathLike) -> Dict[str, List[Dict[str, float]]]:
    """The step and epoch lines of a pre-training ``train_log.txt`` (a run folder is also accepted).

    Returns ``{"steps": [{"step", "epoch", "lr", "loss", "acc"}...], "epochs": [{"epoch",
    "steps", "lr", "train_loss", "train_acc", "valid_loss", "valid_acc"}...]}`` (a figure absent
    from a line is absent from its dict). A resumed run can log an epoch again: the last line of
    an epoch (and of a step) wins. FileNotFoundError names the file when it is missing.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "train_log.txt"
    if not path.is_file():
        raise FileNotFoundError(f"No train log {path}: give a pre-training run folder (train.py's output_folder) "
                                "or its train_log.txt")
    steps: Dict[int, Dict[str, float]] = {}
    epochs: Dict[int, Dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = [p for p in line.split(" - ")]
        if len(parts) < 2:
            continue
        meta = _fields(parts[0])
        stats = {}
        for part in parts[1:]:
            stats.update(_fields(part))
        if "step" in meta:
            entry = {"step": meta["step"], "epoch": meta.get("epoch"), "lr": meta.get("lr"),
                     "loss": stats.get("train loss"), "acc": stats.get("train acc")}
            steps[int(meta["step"])] = {k: v for k, v in entry.items() if v is not None}
        elif "epoch" in meta and "steps" in meta:
            entry = {"epoch": meta["epoch"], "steps": meta["steps"], "lr": meta.get("lr"),
                     "train_loss": stats.get("train loss"), "train_acc": stats.get("train acc"),
                     "valid_loss": stats.get("valid loss"), "valid_acc": stats.get("valid acc")}
            epochs[int(meta["epoch"])] = {k: v for k, v in entry.items() if v is not None}
    return {"steps": [steps[k] for k in sorted(steps)], "epochs": [epochs[k] for k in sorted(epochs)]}


def curve_table(log: Mapping[str, List[Mapping[str, float]]]) -> str:
    """The per-epoch figures of ``read_train_log`` as a fixed-width text table (accuracies in %)."""
    head = f"{'epoch':>5} {'steps':>6} {'train loss':>10} {'train acc':>9} {'valid loss':>10} {'valid acc':>9}"
    lines = [head]

    def num(entry, key, pct=False):
        v = entry.get(key)
        return "-" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.3f}")

    for e in log["epochs"]:
        lines.append(f"{int(e['epoch']):>5} {int(e['steps']):>6} {num(e, 'train_loss'):>10} "
                     f"{num(e, 'train_acc', True):>9} {num(e, 'valid_loss'):>10} {num(e, 'valid_acc', True):>9}")
    return "\n".join(lines)


_COLOURS = {"mhsa": "black", "hypermixing": "tab:blue", "fastformer": "tab:orange", "summarymixing": "tab:green",
            "mamba": "tab:red", "pom": "tab:purple"}


def plot_pretraining(logs: Mapping[str, Mapping[str, List[Mapping[str, float]]]], path: PathLike,
                     title: Optional[str] = None) -> Path:
    """Loss and masked-frame accuracy against optimizer steps for each run of ``logs``
    ({label: ``read_train_log`` result}): the step lines' training figures as thin lines,
    the per-epoch validation figures as markers joined by a line. ImportError without matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    extra = iter(["tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"] * 10)
    for label, log in logs.items():
        colour = _COLOURS.get(label.split()[0], None) or next(extra)
        steps = log["steps"]
        epochs = [e for e in log["epochs"] if "valid_loss" in e]
        for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
            points = [(s["step"], s[key] * (100 if key == "acc" else 1)) for s in steps if key in s]
            if points:
                ax.plot(*zip(*points), "-", color=colour, alpha=0.45, lw=1, label=f"{label} train")
            valid = [(e["steps"], e[f"valid_{key}"] * (100 if key == "acc" else 1)) for e in epochs
                     if f"valid_{key}" in e]
            if valid:
                ax.plot(*zip(*valid), "o-", color=colour, ms=3.5, lw=1.6, label=f"{label} valid")
    ax_loss.set_ylabel("masked-frame cross-entropy")
    ax_acc.set_ylabel("masked-frame accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("optimizer step")
        ax.grid(True, alpha=0.3)
    handles, labels = ax_loss.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, max(len(labels), 1)), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    rows = math.ceil(len(labels) / 6) if labels else 0
    fig.tight_layout(rect=(0, 0.06 + 0.05 * rows, 1, 0.93 if title else 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    return path


def print_curves(runs: Sequence[PathLike], out: Optional[PathLike], labels: Optional[Sequence[str]] = None,
                 title: Optional[str] = None, file=None) -> Optional[Path]:
    """Print each run's ``curve_table`` and, with ``out``, plot them all (``plot_pretraining``); when
    matplotlib is missing, one line says so and the tables are still printed. Returns the PNG or None."""
    file = file or sys.stdout
    logs = {}
    for i, run in enumerate(runs):
        label = labels[i] if labels else _run_label(run)
        logs[label] = read_train_log(run)
        print(f"Pre-training {label} ({run}):\n{curve_table(logs[label])}\n", file=file)
    if out is None:
        return None
    try:
        png = plot_pretraining(logs, out, title)
    except ImportError:
        print(f"matplotlib is not installed: no plot ({out}); pip install matplotlib to get it", file=file)
        return None
    print(f"Pre-training curves -> {png}", file=file)
    return png


def _run_label(run: PathLike) -> str:
    """The mixer of a run (its ``save/brq_model.json``), else the folder name."""
    run = Path(run)
    for candidate in (run / "save" / "brq_model.json", run / "brq_model.json"):
        try:
            return json.loads(candidate.read_text())["mixer"]
        except (OSError, KeyError, ValueError):
            continue
    return run.name


# ------------------------------------------------------------------ resumable pieces
def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class PieceRunner:
    """Run named pieces once each, with a progress bar; see the module doc.

    ``names``: every piece of the plan, in order (the bar's total; the finished ones are
    counted at the start). ``run(name, fn)`` returns ``fn()``'s result (a JSON-serialisable
    dict), or the recorded one when ``<out>/pieces/<name>.json`` says the piece finished.
    """

    def __init__(self, out: PathLike, names: Sequence[str], progress: bool = True, log: Callable[[str], None] = print):
        self.folder = Path(out) / "pieces"
        self.names = list(names)
        if len(set(self.names)) != len(self.names):
            raise ValueError("piece names must be unique")
        self.log = log
        self.bar = None
        done = sum(self.finished(n) for n in self.names)
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=len(self.names), initial=done, unit="piece", dynamic_ncols=True)
        if done:
            self.log(f"{done} of {len(self.names)} pieces already finished in {self.folder}: skipped")

    def record_path(self, name: str) -> Path:
        if name not in self.names:
            raise KeyError(f"{name!r} is not a piece of this plan")
        return self.folder / (re.sub(r"[^A-Za-z0-9_.+-]", "_", name) + ".json")

    def record(self, name: str) -> Optional[dict]:
        path = self.record_path(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def finished(self, name: str) -> bool:
        record = self.record(name)
        return record is not None and record.get("status") == "ok"

    def run(self, name: str, fn: Callable[[], dict]) -> Optional[dict]:
        """``fn()`` unless the piece has finished; its result (None if it failed: the error is logged
        and recorded, and the next pieces still run)."""
        record = self.record(name)
        if record is not None and record.get("status") == "ok":
            return record["result"]
        if self.bar is not None:
            self.bar.set_description(name)
        start = time.time()
        try:
            result = fn()
        except Exception as err:  # a failed piece is recorded and retried at the next start
            _atomic_write(self.record_path(name), json.dumps(
                {"name": name, "status": "failed", "seconds": round(time.time() - start, 1),
                 "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}, indent=2))
            self.log(f"piece {name} FAILED ({type(err).__name__}: {err}); it is retried at the next start")
            if self.bar is not None:
                self.bar.update(1)
            return None
        _atomic_write(self.record_path(name), json.dumps(
            {"name": name, "status": "ok", "seconds": round(time.time() - start, 1), "result": result}, indent=2))
        if self.bar is not None:
            self.bar.update(1)
        return result

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ seeds -> one figure
Z95 = 1.959963984540054


def combine_seeds(values: Sequence[float], intervals: Sequence[Optional[Sequence[float]]],
                  confidence: float = 0.95) -> Dict[str, Optional[float]]:
    """The mean over seeds of one metric and its interval.

    ``values``: the metric of each seed's run; ``intervals``: each run's 95% interval over its
    test items (None when the run has none). The mean's interval treats the runs as independent
    estimates with normal errors: each run's standard error is its interval's width / (2 x 1.96),
    the mean's is sqrt(sum se_i^2) / n, and the interval is mean +- 1.96 x that (test-item
    sampling only: the seeds' own spread is ``min`` / ``max``, shown beside it). ``low`` / ``high``
    are None when a run has no interval. ``confidence`` must be 0.95 (the runs' intervals are).
    """
    if confidence != 0.95:
        raise ValueError("combine_seeds combines 95% intervals only")
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("combine_seeds needs at least one value")
    mean = sum(vals) / len(vals)
    out: Dict[str, Optional[float]] = {"mean": mean, "low": None, "high": None, "min": min(vals), "max": max(vals),
                                       "seeds": len(vals)}
    if len(intervals) == len(vals) and all(ci is not None and len(ci) == 2 for ci in intervals):
        se = math.sqrt(sum(((hi - lo) / (2 * Z95)) ** 2 for lo, hi in intervals)) / len(vals)
        out["low"], out["high"] = mean - Z95 * se, mean + Z95 * se
    return out


# ------------------------------------------------------------------ command line
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brq_att_alt.reproduce",
                                     description="Pre-training curves of one or more runs (module doc).")
    sub = parser.add_subparsers(dest="command", required=True)
    curves = sub.add_parser("curves", help="print the per-epoch table of each run and plot them in one PNG")
    curves.add_argument("runs", nargs="+", help="pre-training output folders (or their train_log.txt)")
    curves.add_argument("--out", default=None, help="PNG to write (default: none, tables only)")
    curves.add_argument("--labels", nargs="+", default=None, help="one label per run (default: its mixer)")
    curves.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        parser.error("--labels needs one label per run")
    try:
        print_curves(args.runs, args.out, args.labels, args.title)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
