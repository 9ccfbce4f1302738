"""CSV files of the benchmark: the columns of its tables, writer and reader."""

import csv
import math
from pathlib import Path
from typing import Iterable, List, Sequence

RUN_COLUMNS = [
    "mixer", "label", "seconds", "frames", "batch_size", "run", "status", "time_s", "peak_mem_mib",
    "memory_method", "device", "dtype", "d_model", "num_layers", "encoder_params_m", "error",
]
SUMMARY_COLUMNS = [
    "mixer", "label", "seconds", "status", "n_runs",
    "time_mean_s", "time_ci_low_s", "time_ci_high_s",
    "mem_mean_mib", "mem_ci_low_mib", "mem_ci_high_mib",
    "baseline", "speedup_pct", "mem_saving_pct", "encoder_params_m",
]
TRAIN_COLUMNS = [
    "mixer", "label", "seconds", "batch_size", "status", "n_steps",
    "step_mean_s", "step_ci_low_s", "step_ci_high_s",
    "audio_s_per_s", "audio_s_per_s_ci_low", "audio_s_per_s_ci_high",
    "mem_mean_mib", "memory_method", "device", "dtype", "error",
]


def write_csv(path, rows: Iterable[dict], columns: Sequence[str]) -> Path:
    """Write ``rows`` (dicts) with exactly ``columns``; NaN and None become empty cells."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k])) else r[k])
                        for k in columns})
    return path


def read_csv(path) -> List[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
