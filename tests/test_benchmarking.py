"""Benchmark library: statistics, writers, failure handling (never timings)."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brq_att_alt import benchmarking as bm
from brq_att_alt.benchmarking import workers

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=7, dropout=0.1)


# --------------------------------------------------------------------------- statistics


def test_bootstrap_constant_data_has_zero_width():
    assert bm.bootstrap_ci([2.5] * 10) == (2.5, 2.5, 2.5)


def test_bootstrap_single_and_empty():
    assert bm.bootstrap_ci([4.0]) == (4.0, 4.0, 4.0)
    assert all(math.isnan(v) for v in bm.bootstrap_ci([]))
    assert bm.bootstrap_ci([1.0, float("nan"), 1.0]) == (1.0, 1.0, 1.0)


def test_bootstrap_mean_inside_ci_and_seeded():
    x = [1.0, 2.0, 4.0, 8.0, 3.0]
    mean, lo, hi = bm.bootstrap_ci(x, seed=3)
    assert mean == pytest.approx(np.mean(x))
    assert min(x) <= lo < mean < hi <= max(x)
    assert bm.bootstrap_ci(x, seed=3) == (mean, lo, hi)


def test_bootstrap_normal_sample_matches_normal_theory():
    x = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    mean, lo, hi = bm.bootstrap_ci(x, n_boot=20_000, seed=1)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert lo == pytest.approx(mean - half, abs=0.1 * half)
    assert hi == pytest.approx(mean + half, abs=0.1 * half)
    # a wider confidence gives a wider interval
    _, lo99, hi99 = bm.bootstrap_ci(x, confidence=0.99, n_boot=20_000, seed=1)
    assert lo99 < lo and hi99 > hi


@pytest.mark.parametrize("a", [1.0, 2.0, 1.5])
def test_power_law_fit_recovers_exponent(a):
    T = np.array([10, 20, 40, 80, 160, 600.0])
    fit_a, c, r2 = bm.fit_power_law(T, 0.003 * T**a)
    assert fit_a == pytest.approx(a, abs=1e-9)
    assert c == pytest.approx(0.003, rel=1e-6)
    assert r2 == pytest.approx(1.0)


def test_power_law_fit_needs_two_positive_points():
    assert math.isnan(bm.fit_power_law([10], [1.0])[0])
    assert math.isnan(bm.fit_power_law([10, 20], [1.0, 0.0])[0])  # zero dropped -> one point
    a, _, r2 = bm.fit_power_law([10, 20, 40], [1.0, 2.2, 3.9])
    assert 0.9 < a < 1.1 and r2 < 1.0


def _rows(mixer, seconds, times, mems, status="ok"):
    if status != "ok":
        return [dict(mixer=mixer, label=mixer.upper(), seconds=seconds, run="", status=status, time_s=None,
                     peak_mem_mib=None, batch_size=6)]
    return [dict(mixer=mixer, label=mixer.upper(), seconds=seconds, run=i + 1, status="ok", time_s=t,
                 peak_mem_mib=m, batch_size=6, memory_method="test") for i, (t, m) in enumerate(zip(times, mems))]


def _table():
    rows = []
    rows += _rows("mhsa", 20, [2.0, 2.0], [100.0, 100.0])
    rows += _rows("mhsa", 80, [10.0, 10.0], [400.0, 400.0])
    rows += _rows("mhsa", 160, [], [], status="oom")
    rows += _rows("pom", 20, [1.0, 1.0], [25.0, 25.0])
    rows += _rows("pom", 80, [2.0, 2.0], [100.0, 100.0])
    rows += _rows("pom", 160, [4.0, 4.0], [200.0, 200.0])
    rows += _rows("fastformer", 20, [3.0, 3.0], [50.0, 50.0])
    rows += _rows("fastformer", 80, [5.0, 5.0], [200.0, 200.0])
    rows += _rows("fastformer", 160, [10.0, 10.0], [400.0, 400.0])
    return rows


def test_relative_percentages_on_hand_made_table():
    summary = bm.summarize(_table(), baseline="mhsa")
    by = {(s["mixer"], s["seconds"]): s for s in summary}
    assert by[("mhsa", 20)]["speedup_pct"] == 0.0 and by[("mhsa", 20)]["mem_saving_pct"] == 0.0
    assert by[("pom", 20)]["speedup_pct"] == pytest.approx(50.0)
    assert by[("pom", 20)]["mem_saving_pct"] == pytest.approx(75.0)
    assert by[("fastformer", 20)]["speedup_pct"] == pytest.approx(-50.0)  # slower: negative
    assert by[("pom", 80)]["speedup_pct"] == pytest.approx(80.0)
    assert by[("fastformer", 80)]["mem_saving_pct"] == pytest.approx(50.0)
    # baseline out of memory at 160 s: no comparison, and the failure is kept
    assert by[("mhsa", 160)]["status"] == "oom" and by[("mhsa", 160)]["n_runs"] == 0
    assert math.isnan(by[("pom", 160)]["speedup_pct"])
    assert by[("pom", 160)]["time_mean_s"] == 4.0
    avg = {a["seconds"]: a for a in bm.average_savings(summary)}
    assert avg[20]["speedup_pct"] == pytest.approx(0.0)  # (50 - 50) / 2
    assert avg[20]["mem_saving_pct"] == pytest.approx(62.5)
    assert avg[80]["n_mixers"] == 2 and 160 not in avg
    assert bm.relative_saving(1.0, 0.0) != bm.relative_saving(1.0, 0.0)  # NaN


def test_scaling_exponents_and_markdown():
    summary = bm.summarize(_table(), baseline="mhsa")
    exps = bm.scaling_exponents(summary)
    assert exps["pom"]["n_points"] == 3 and 0.5 < exps["pom"]["a_time"] < 1.0
    assert exps["mhsa"]["a_time"] == pytest.approx(math.log(5) / math.log(4))
    md = bm.summary_markdown(summary)
    assert md.count("\n") == len(summary) + 1
    assert "**oom**" in md and "+50.0%" in md and "+75.0%" in md
    assert "MHSA" in bm.exponents_markdown(exps)


def test_summary_accepts_rows_read_back_from_csv(tmp_path):
    path = bm.write_csv(tmp_path / "runs.csv", bm.RUN_COLUMNS, _table())
    back = bm.summarize(bm.read_csv(path), baseline="mhsa")
    direct = bm.summarize(_table(), baseline="mhsa")
    for a, b in zip(back, direct):
        assert a["mixer"] == b["mixer"] and a["status"] == b["status"]
        for k in ("time_mean_s", "mem_mean_mib", "speedup_pct"):
            assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k])


# --------------------------------------------------------------------------- writers


def test_csv_writer_columns_and_empty_nans(tmp_path):
    summary = bm.summarize(_table(), baseline="mhsa")
    path = bm.write_csv(tmp_path / "sub" / "summary.csv", bm.SUMMARY_COLUMNS, summary)
    back = bm.read_csv(path)
    assert list(back[0]) == bm.SUMMARY_COLUMNS
    assert len(back) == len(summary)
    oom = next(r for r in back if r["status"] == "oom")
    assert oom["time_mean_s"] == "" and oom["speedup_pct"] == ""
    runs = bm.read_csv(bm.write_csv(tmp_path / "runs.csv", bm.RUN_COLUMNS, _table()))
    assert list(runs[0]) == bm.RUN_COLUMNS


def test_plot_writer_makes_png(tmp_path):
    summary = bm.summarize(_table(), baseline="mhsa")
    for log_scale in (False, True):
        path = bm.plot_benchmark(summary, tmp_path / f"plot{log_scale}.png", title="test", log_scale=log_scale)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# --------------------------------------------------------------------------- failures


def _fake_measure(fail_from, exc):
    calls = []

    def measure(spec, progress=lambda msg: None):
        calls.append(spec["seconds"])
        if spec["seconds"] >= fail_from:
            raise exc
        return {"times": [0.1] * spec["runs"], "mems": [1.0] * spec["runs"], "memory_method": "fake"}

    return measure, calls


def _spec(variant, seconds):
    return dict(model={}, seconds=seconds, batch_size=6, runs=3, warmup=1, device="cpu", dtype="fp32",
                time_limit=None, seed=0)


@pytest.mark.parametrize("exc, status", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), "oom"),
    (MemoryError(), "oom"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"), "oom"),
    (bm.TimeLimitExceeded("forward took 99 s"), "timeout"),
    (ValueError("a bug"), "error"),
])
def test_failure_is_a_row_and_longer_lengths_are_skipped(monkeypatch, tmp_path, exc, status):
    measure, calls = _fake_measure(40, exc)
    monkeypatch.setattr(workers, "measure_config", measure)
    rows = bm.run_sweep(["mhsa", "pom"], [80, 10, 40, 20], _spec, isolate=False)
    assert calls == [10, 20, 40] * 2  # shortest first; nothing runs after the failure
    for mixer in ("mhsa", "pom"):
        mine = [r for r in rows if r["mixer"] == mixer]
        assert [r["status"] for r in mine] == ["ok"] * 6 + [status, "skipped"]
        assert [r["seconds"] for r in mine if r["status"] != "ok"] == [40, 80]
        assert f"{status} at 40 s" in mine[-1]["error"]
    summary = bm.summarize(rows, baseline="mhsa")
    assert [s["status"] for s in summary if s["mixer"] == "pom"] == ["ok", "ok", status, "skipped"]
    if status == "oom":
        assert bm.plot_benchmark(summary, tmp_path / "failed.png").stat().st_size > 0


def test_worker_killed_by_the_os_is_oom():
    assert bm.classify_exit_code(-9)["status"] == "oom"
    assert bm.classify_exit_code(-11)["status"] == "error"
    assert bm.classify_exit_code(1)["status"] == "error"


def test_classify_exception():
    assert bm.classify_exception(RuntimeError("CUDA error: out of memory")) == "oom"
    assert bm.classify_exception(RuntimeError("shape mismatch")) == "error"
    assert bm.classify_exception(KeyError("x")) == "error"


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("variant", list(bm.VARIANTS))
def test_scaled_configs_build(variant):
    cfg = bm.encoder_config(variant, width_scale=0.25, num_layers=2, nhead=4)
    assert cfg["d_model"] % 8 == 0 and cfg["num_layers"] == 2
    # scaling keeps the parameter matching roughly (front end + Conformer, +-20% of MHSA's)
    ref = bm.encoder_parameters(bm.encoder_config("mhsa", width_scale=0.25, num_layers=2, nhead=4))
    assert abs(bm.encoder_parameters(cfg) / ref - 1) < 0.2
    if variant == "mhsa_sdpa":
        assert cfg["mixer_kwargs"] == {"implementation": "sdpa"}


def test_load_model_config_yaml(tmp_path):
    path = tmp_path / "pom.yaml"
    path.write_text("d_model: 64\nnum_encoder_layers: 3\nattention_type: pom\nnhead: 4\n"
                    "model: !new:brq_att_alt.model.BestRQModel\n  d_model: !ref <d_model>\n"
                    "output_folder: !PLACEHOLDER\n")
    cfg = bm.load_model_config(path)
    assert cfg == {"d_model": 64, "num_layers": 3, "mixer": "pom", "nhead": 4}


def test_measure_functions_run_in_process():
    spec = dict(model=dict(mixer="pom", **TINY), seconds=0.5, batch_size=2, runs=2, warmup=1, device="cpu",
                dtype="bf16", time_limit=None, seed=0, threads=1)
    for task in ("inference", "train"):
        res = bm.run_in_process(task, spec)
        assert res["status"] == "ok", res
        assert len(res["times"]) == len(res["mems"]) == 2 and min(res["mems"]) >= 0
    res = bm.run_in_process("inference", {**spec, "time_limit": 1e-9})
    assert res["status"] == "timeout"


@pytest.mark.slow
def test_cli_end_to_end_tiny(tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--quick", "--mixers", "mhsa", "pom",
           "--lengths", "1", "--runs", "2", "--batch-size", "1", "--d-model", "32", "--num-layers", "1",
           "--nhead", "2", "--d-ffn", "64", "--train-throughput", "1", "--train-steps", "1", "--n-boot", "200",
           "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("runs.csv", "summary.csv", "summary.md", "benchmark.png", "machine.txt", "train_throughput.csv",
                 "train_runs.csv"):
        assert (out / name).stat().st_size > 0, name
    runs = bm.read_csv(out / "runs.csv")
    assert {r["mixer"] for r in runs} == {"mhsa", "pom"} and {r["status"] for r in runs} == {"ok"}
    assert len(runs) == 4 and runs[0]["memory_method"].startswith("cpu_peak_rss")
    summary = bm.read_csv(out / "summary.csv")
    assert float(next(s for s in summary if s["mixer"] == "mhsa")["speedup_pct"]) == 0.0
    assert "| MHSA (RelPosMHAXL) | 1 |" in proc.stdout
    assert "cpu:" in (out / "machine.txt").read_text()
