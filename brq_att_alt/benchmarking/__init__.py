"""Speed and memory benchmark of the BEST-RQ encoders, one per token mixer (the papers' Figure 1).

Modules by role, data flowing down the list:

* ``models``: what is measured (variants, sizes, config files, input shapes);
* ``measure``: how one configuration is measured (timed calls, memory meters, failure classes);
* ``sweep``: the order of the configurations and where each runs (this process or a fresh one);
* ``stats``: means, Student-t intervals, relative savings, scaling exponents;
* ``report``: CSV columns, Markdown tables, the figure, the machine description;
* ``runner``: the options (every default) and ``run_benchmark``.

Below: the names ``scripts/benchmark.py`` and the tests use.
"""

from .measure import (
    TimeLimitExceeded, classify_exception, classify_exit_code, count_flops, matmul_bound_share, matmul_probe,
)
from .models import DTYPES, VARIANTS, encoder_config, encoder_parameters, load_model_config, variant_encoders
from .report import (
    INTERLEAVED_COLUMNS, RUN_COLUMNS, SUMMARY_COLUMNS, exponents_markdown, interleaved_markdown, plot_benchmark,
    summary_markdown, train_markdown,
)
from .runner import LONG_LENGTHS, QUICK_PRESET, BenchmarkOptions, make_options, run_benchmark
from .stats import (
    MIN_RUNS_FOR_CI, STATISTICS, average_savings, fit_power_law, interleaved_summary, mean_ci, relative_saving,
    scaling_exponents, summarize, t_quantile, train_summary,
)
from .sweep import interleaved_order, run_in_process, run_interleaved, run_sweep

__all__ = [
    "DTYPES", "INTERLEAVED_COLUMNS", "LONG_LENGTHS", "MIN_RUNS_FOR_CI", "QUICK_PRESET", "RUN_COLUMNS", "STATISTICS",
    "SUMMARY_COLUMNS", "VARIANTS", "BenchmarkOptions", "TimeLimitExceeded", "average_savings", "classify_exception",
    "classify_exit_code", "count_flops", "encoder_config", "encoder_parameters", "exponents_markdown",
    "fit_power_law", "interleaved_markdown", "interleaved_order", "interleaved_summary", "load_model_config",
    "make_options", "matmul_bound_share", "matmul_probe", "mean_ci", "plot_benchmark", "relative_saving",
    "run_benchmark", "run_in_process", "run_interleaved", "run_sweep", "scaling_exponents", "summarize",
    "summary_markdown", "t_quantile", "train_markdown", "train_summary", "variant_encoders",
]
