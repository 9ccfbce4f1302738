"""Confidence intervals over test items, and the pre-trained vs random-initialised comparison table.

A probe's test figure is a statistic of its test items: accuracy of the utterances, EER of
the verification trials, WER of the utterances (``brq_att_alt.wer.wer_bootstrap_ci``). Its
95% interval here is the percentile bootstrap over those items: the items are drawn with
replacement (as many as there are), the figure recomputed, ``n_boot`` times, and the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles kept. For the EER the
target and non-target trials are drawn separately (their counts stay fixed); trials that
share an utterance or a speaker are not independent, so that interval is optimistic. Every
interval is seeded (the same items give the same interval).

``comparison_rows`` pairs the figures of the same task / probe / metric measured on a
pre-trained encoder and on its random-initialised twin (``pretrained.random_twin``) and says,
per row, which is better and whether the two intervals overlap; ``write_comparison``
writes the rows as ``<name>.md`` (a Markdown table) and ``<name>.csv``.
"""

from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..csv_files import write_csv
from .verification import compute_eer

Interval = Tuple[float, float]


def _check(confidence: float, n_boot: int):
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def _quantiles(stats: np.ndarray, confidence: float) -> Interval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(items: Sequence, statistic: Callable[[np.ndarray], float], confidence: float = 0.95,
                 n_boot: int = 1000, seed: Optional[int] = 0) -> Tuple[float, float, float]:
    """(statistic(items), low, high): percentile bootstrap over the items (rows of ``items``
    as a numpy array), ``statistic`` taking such an array."""
    _check(confidence, n_boot)
    data = np.asarray(items)
    if data.shape[0] == 0:
        raise ValueError("bootstrap_ci needs at least one item")
    rng = np.random.default_rng(seed)
    n = data.shape[0]
    stats = np.array([statistic(data[rng.integers(0, n, size=n)]) for _ in range(n_boot)], dtype=np.float64)
    return float(statistic(data)), *_quantiles(stats, confidence)


def accuracy_ci(correct: Sequence[bool], confidence: float = 0.95, n_boot: int = 1000,
                seed: Optional[int] = 0) -> Tuple[float, float, float]:
    """(accuracy, low, high) as fractions from per-item correctness (1/0 or True/False);
    bootstrap over the items, vectorised."""
    _check(confidence, n_boot)
    c = np.asarray(correct, dtype=np.float64).ravel()
    if c.size == 0:
        raise ValueError("accuracy_ci needs at least one test item")
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, n_boot, 256):  # chunks bound the (n_boot, n) index matrix
        idx = rng.integers(0, c.size, size=(min(256, n_boot - start), c.size))
        stats.append(c[idx].mean(1))
    return float(c.mean()), *_quantiles(np.concatenate(stats), confidence)


def eer_ci(positive_scores: Sequence[float], negative_scores: Sequence[float], confidence: float = 0.95,
           n_boot: int = 1000, seed: Optional[int] = 0) -> Tuple[float, float, float]:
    """(EER, low, high) as fractions: the target and the non-target trials are each resampled
    with replacement (stratified bootstrap) and the EER (``verification.compute_eer``) recomputed."""
    _check(confidence, n_boot)
    pos = np.asarray(positive_scores, dtype=np.float64).ravel()
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    point, _ = compute_eer(pos, neg)  # also checks that both are non-empty and finite
    rng = np.random.default_rng(seed)
    stats = np.array([compute_eer(pos[rng.integers(0, pos.size, pos.size)],
                                  neg[rng.integers(0, neg.size, neg.size)])[0] for _ in range(n_boot)])
    return point, *_quantiles(stats, confidence)


# ------------------------------------------------------------------ the comparison table
INITS = ("pretrained", "random")
COLUMNS = ("task", "probe", "metric", "direction", "unit", "pretrained", "pretrained_low", "pretrained_high",
           "random", "random_low", "random_high", "difference", "better", "intervals_overlap")


def _interval(metric: Mapping) -> Optional[Interval]:
    ci = metric.get("ci95")
    return (float(ci[0]), float(ci[1])) if ci else None


def comparison_rows(results: Sequence[Mapping]) -> List[Dict[str, object]]:
    """One row per (task, probe, metric) from result entries ``{"task", "probe", "init":
    "pretrained"|"random", "metrics": {name: {"value", "direction", "unit", "ci95": [low, high]}}}``
    (a run that failed has ``metrics`` None). A row has both values and intervals (None when
    missing), ``difference`` (pre-trained - random), ``better`` ("pretrained", "random", "tie" or
    "" when a value is missing) by the metric's direction, and ``intervals_overlap`` (None when an
    interval is missing). Rows keep the order in which their task / probe / metric first appear."""
    rows: Dict[Tuple[str, str, str], Dict[str, object]] = {}
    for result in results:
        init = result["init"]
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        for name, metric in (result.get("metrics") or {}).items():
            key = (result["task"], result["probe"], name)
            row = rows.setdefault(key, {"task": key[0], "probe": key[1], "metric": name,
                                        "direction": metric.get("direction", ""), "unit": metric.get("unit", ""),
                                        **{f"{i}{s}": None for i in INITS for s in ("", "_low", "_high")}})
            row[init] = float(metric["value"]) if metric.get("value") is not None else None
            interval = _interval(metric)
            row[f"{init}_low"], row[f"{init}_high"] = interval if interval else (None, None)
    out = []
    for row in rows.values():
        p, r = row["pretrained"], row["random"]
        row["difference"] = p - r if p is not None and r is not None else None
        if row["difference"] is None or row["direction"] not in ("higher", "lower"):
            row["better"] = ""
        elif row["difference"] == 0:
            row["better"] = "tie"
        else:
            higher_wins = row["direction"] == "higher"
            row["better"] = "pretrained" if (row["difference"] > 0) == higher_wins else "random"
        bounds = [row[k] for k in ("pretrained_low", "pretrained_high", "random_low", "random_high")]
        row["intervals_overlap"] = (None if None in bounds else
                                    bool(bounds[0] <= bounds[3] and bounds[2] <= bounds[1]))
        out.append(row)
    return out


def headline_metric(names: Sequence[str]) -> str:
    """The metric that stands for a task / probe in a count of wins: the first WER with the
    n-gram LM (name ending in ``+LM``) if any, else the first metric that is not a minDCF."""
    names = list(names)
    with_lm = [n for n in names if n.endswith("+LM")]
    if with_lm:
        return with_lm[0]
    return next((n for n in names if not n.startswith("minDCF")), names[0])


def task_wins(rows: Sequence[Mapping]) -> Dict[str, int]:
    """Over the task / probe pairs of ``comparison_rows``, judged by their ``headline_metric``:
    {"tasks", "pretrained" (better), "apart" (better with the intervals apart), "random" (worse)}."""
    pairs: Dict[Tuple[str, str], List[Mapping]] = {}
    for row in rows:
        pairs.setdefault((row["task"], row["probe"]), []).append(row)
    out = {"tasks": len(pairs), "pretrained": 0, "apart": 0, "random": 0}
    for pair_rows in pairs.values():
        name = headline_metric([r["metric"] for r in pair_rows])
        row = next(r for r in pair_rows if r["metric"] == name)
        out["pretrained"] += row["better"] == "pretrained"
        out["apart"] += row["better"] == "pretrained" and row["intervals_overlap"] is False
        out["random"] += row["better"] == "random"
    return out


def _cell(value, low, high) -> str:
    if value is None:
        return "failed"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]" if low is not None else f"{value:.2f}"


def comparison_markdown(rows: Sequence[Mapping], title_pretrained: str = "pre-trained",
                        title_random: str = "random init") -> str:
    """The rows as a Markdown table: value [95% CI] per initialisation, the better one (**bold**
    where the intervals do not overlap), then a line counting the rows each side wins."""
    arrow = {"lower": "↓", "higher": "↑"}
    lines = [f"| Task | Probe | Metric | {title_pretrained} [95% CI] | {title_random} [95% CI] | better |",
             "|---|---|---|---:|---:|---|"]
    last = None
    for row in rows:
        metric = f"{row['metric']} ({row['unit']}) {arrow.get(row['direction'], '')}".replace(" ()", "").strip()
        better = row["better"] or "-"
        if row["better"] in INITS:
            better = ("pre-trained" if row["better"] == "pretrained" else "random init")
            better = f"**{better}**, intervals apart" if row["intervals_overlap"] is False else better
        task = row["task"] if row["task"] != last else ""
        last = row["task"]
        lines.append(f"| {task} | {row['probe']} | {metric} | "
                     f"{_cell(row['pretrained'], row['pretrained_low'], row['pretrained_high'])} | "
                     f"{_cell(row['random'], row['random_low'], row['random_high'])} | {better} |")
    wins = sum(r["better"] == "pretrained" for r in rows)
    apart = sum(r["better"] == "pretrained" and r["intervals_overlap"] is False for r in rows)
    losses = sum(r["better"] == "random" for r in rows)
    lines += ["", f"Pre-trained better on {wins} of {len(rows)} rows ({apart} with non-overlapping 95% intervals), "
                  f"random init better on {losses}."]
    if rows:
        t = task_wins(rows)
        lines.append(f"Per task (its first metric; ASR: the WER with the LM): pre-trained better on {t['pretrained']} "
                     f"of {t['tasks']} ({t['apart']} with non-overlapping 95% intervals), random init better on "
                     f"{t['random']}.")
    return "\n".join(lines) + "\n"


def write_comparison(rows: Sequence[Mapping], output: Path, name: str = "comparison") -> Tuple[Path, Path]:
    """``<output>/<name>.md`` (``comparison_markdown``) and ``<output>/<name>.csv`` (``COLUMNS``)."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    md = output / f"{name}.md"
    md.write_text(comparison_markdown(rows))
    fmt = {k: (lambda v: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))) for k in COLUMNS}
    csv_path = write_csv(output / f"{name}.csv", COLUMNS, [{k: fmt[k](row.get(k)) for k in COLUMNS} for row in rows])
    return md, Path(csv_path)


__all__ = ["COLUMNS", "INITS", "accuracy_ci", "bootstrap_ci", "comparison_markdown", "comparison_rows", "eer_ci",
           "write_comparison"]
