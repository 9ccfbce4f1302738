"""Speed and memory benchmark of the BEST-RQ encoders, one per token mixer (the papers' Figure 1).

The public names of the modules below, re-exported. Each name is looked up in its own
module, so patch it there (``workers.measure_config``, not ``benchmarking.measure_config``).
"""

from ..csv_files import read_csv, write_csv
from .columns import RUN_COLUMNS, SUMMARY_COLUMNS, TRAIN_COLUMNS
from .inputs import DTYPES, FRAMES_PER_SECOND, N_MELS, PAD_MULTIPLE, num_frames
from .machine import available_memory_bytes, machine_info, machine_label
from .markdown import averages_markdown, exponents_markdown, summary_markdown, train_markdown
from .measure import measure_config, measure_train_step
from .memory import CpuPeakMemory, CudaPeakMemory, make_memory_meter, measure_peak_memory
from .models import (
    CONFIG_ALIASES, MIXER_SIZE_OPTIONS, build_model, encoder_config, encoder_parameters, load_model_config,
)
from .plot import PLOT_STYLE, plot_benchmark
from .runner import DEFAULT_LENGTHS, LONG_LENGTHS, QUICK_PRESET, BenchmarkOptions, run_benchmark
from .stats import (
    add_relative, average_savings, bootstrap_ci, fit_power_law, relative_saving, scaling_exponents, summarize,
    train_summary,
)
from .status import (
    FAILURES, OOM_MESSAGES, STATUS_ERROR, STATUS_OK, STATUS_OOM, STATUS_SKIPPED, STATUS_TIMEOUT,
    TimeLimitExceeded, classify_exception, classify_exit_code,
)
from .sweep import run_sweep
from .variants import BASELINE, QUADRATIC, VARIANTS, Variant
from .workers import BUILD_TIMEOUT_S, TASKS, run_in_process, run_isolated

__all__ = [
    "BASELINE", "BUILD_TIMEOUT_S", "CONFIG_ALIASES", "DEFAULT_LENGTHS", "DTYPES", "FAILURES",
    "FRAMES_PER_SECOND", "LONG_LENGTHS", "MIXER_SIZE_OPTIONS", "N_MELS", "OOM_MESSAGES", "PAD_MULTIPLE",
    "PLOT_STYLE", "QUADRATIC", "QUICK_PRESET", "RUN_COLUMNS", "STATUS_ERROR", "STATUS_OK", "STATUS_OOM",
    "STATUS_SKIPPED", "STATUS_TIMEOUT", "SUMMARY_COLUMNS", "TASKS", "TRAIN_COLUMNS", "VARIANTS",
    "BenchmarkOptions", "CpuPeakMemory", "CudaPeakMemory", "TimeLimitExceeded", "Variant", "add_relative",
    "available_memory_bytes", "average_savings", "averages_markdown", "bootstrap_ci", "build_model",
    "classify_exception", "classify_exit_code", "encoder_config", "encoder_parameters", "exponents_markdown",
    "fit_power_law", "load_model_config", "machine_info", "machine_label", "make_memory_meter",
    "measure_config", "measure_peak_memory", "measure_train_step", "num_frames", "plot_benchmark", "read_csv",
    "relative_saving", "run_benchmark", "run_in_process", "run_isolated", "run_sweep", "scaling_exponents",
    "summarize", "summary_markdown", "train_markdown", "train_summary", "write_csv",
]
