"""Column lists of the benchmark's CSV files."""

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
