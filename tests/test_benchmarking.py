"""Benchmark library: statistics, writers, failure handling, options (never timings)."""

import math
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brq_att_alt import benchmarking as bm
from brq_att_alt import sizes
from brq_att_alt.benchmarking import measure
from brq_att_alt.benchmarking.models import config_file_encoders
from brq_att_alt.csv_files import read_csv, write_csv
from helpers import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- statistics


def test_ci_constant_data_has_zero_width():
    assert bm.mean_ci([2.5] * 10) == (2.5, 2.5, 2.5)


def test_ci_single_and_empty():
    mean, lo, hi = bm.mean_ci([4.0])
    assert mean == 4.0 and math.isnan(lo) and math.isnan(hi)  # one run: no interval
    assert all(math.isnan(v) for v in bm.mean_ci([]))
    assert bm.mean_ci([1.0, float("nan"), 1.0]) == (1.0, 1.0, 1.0)


def test_ci_is_the_t_interval_and_deterministic():
    x = [1.0, 2.0, 4.0, 8.0, 3.0]
    mean, lo, hi = bm.mean_ci(x)
    assert mean == pytest.approx(np.mean(x))
    half = 2.7764451051977934 * np.std(x, ddof=1) / np.sqrt(len(x))  # t_{0.975, 4}
    assert lo == pytest.approx(mean - half, rel=1e-12) and hi == pytest.approx(mean + half, rel=1e-12)
    assert lo < mean < hi
    assert bm.mean_ci(x) == (mean, lo, hi)


@pytest.mark.parametrize("df, t975", [(1, 12.706204736174698), (2, 4.302652729749464), (4, 2.7764451051977934),
                                      (9, 2.2621571628540993), (30, 2.0422724563012373)])
def test_t_quantile_against_table(df, t975):
    assert bm.t_quantile(0.975, df) == pytest.approx(t975, rel=1e-10)
    assert bm.t_quantile(0.025, df) == pytest.approx(-t975, rel=1e-10)
    assert bm.t_quantile(0.5, df) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        bm.t_quantile(1.0, df)


def test_ci_equals_scipy_t_interval():
    import scipy.stats as stats
    rng = np.random.default_rng(4)
    for n in (2, 3, 4, 6, 10, 20, 101):
        x = rng.lognormal(0.0, 0.3, size=n)
        for confidence in (0.8, 0.9, 0.95, 0.99):
            lo, hi = stats.t.interval(confidence, n - 1, loc=x.mean(), scale=stats.sem(x))
            _, my_lo, my_hi = bm.mean_ci(x, confidence)
            assert (my_lo, my_hi) == pytest.approx((lo, hi), rel=1e-9)


def test_ci_coverage_on_normal_runs_seeded():
    """The stated coverage at the run counts the benchmark uses (2-10 runs), where a
    percentile bootstrap covers 49-90%."""
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10):
        x = rng.normal(1.0, 0.1, size=(4000, n))
        half = bm.t_quantile(0.975, n - 1) * x.std(axis=1, ddof=1) / np.sqrt(n)
        covered = np.abs(x.mean(axis=1) - 1.0) <= half
        assert 0.935 < covered.mean() < 0.965, (n, covered.mean())
        assert bm.mean_ci(x[0]) == pytest.approx((x[0].mean(), x[0].mean() - half[0], x[0].mean() + half[0]))


def test_ci_normal_sample_matches_normal_theory():
    x = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    mean, lo, hi = bm.mean_ci(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert lo == pytest.approx(mean - half, abs=0.1 * half)
    assert hi == pytest.approx(mean + half, abs=0.1 * half)
    # a wider confidence gives a wider interval
    _, lo99, hi99 = bm.mean_ci(x, confidence=0.99)
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
                     peak_mem_mib=None, batch_size=6, device="cpu", dtype="fp32")]
    return [dict(mixer=mixer, label=mixer.upper(), seconds=seconds, run=i + 1, status="ok", time_s=t,
                 peak_mem_mib=m, batch_size=6, memory_method="test", device="cpu", dtype="fp32")
            for i, (t, m) in enumerate(zip(times, mems))]


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
    avg = {a["seconds"]: a for a in bm.average_savings(summary, exclude=["mhsa"])}
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


def test_indicative_intervals_are_marked(tmp_path):
    rows = _rows("mhsa", 20, [2.0, 2.1], [1.0, 1.0]) + _rows("pom", 20, [1.0, 1.1, 1.2, 1.0, 1.1], [1.0] * 5)
    rows += _rows("fastformer", 20, [], [], status="oom")
    by = {s["mixer"]: s for s in bm.summarize(rows, baseline="mhsa")}
    assert bm.MIN_RUNS_FOR_CI == 5
    assert by["mhsa"]["ci_indicative"] is True and by["pom"]["ci_indicative"] is False
    assert by["fastformer"]["ci_indicative"] is None
    md = bm.summary_markdown(list(by.values()))
    mhsa_line, pom_line = (next(x for x in md.splitlines() if x.startswith(f"| {m} ")) for m in ("MHSA", "POM"))
    assert "†" in mhsa_line and "†" not in pom_line
    back = read_csv(write_csv(tmp_path / "s.csv", bm.SUMMARY_COLUMNS, by.values()))
    assert [r["ci_indicative"] for r in back] == ["True", "False", ""]
    train = bm.train_summary(rows)
    assert [t["ci_indicative"] for t in train] == [True, False, None]
    assert "†" in bm.train_markdown(train)


def test_summary_accepts_rows_read_back_from_csv(tmp_path):
    path = write_csv(tmp_path / "runs.csv", bm.RUN_COLUMNS, _table())
    back = bm.summarize(read_csv(path), baseline="mhsa")
    direct = bm.summarize(_table(), baseline="mhsa")
    for a, b in zip(back, direct):
        assert a["mixer"] == b["mixer"] and a["status"] == b["status"]
        for k in ("time_mean_s", "mem_mean_mib", "speedup_pct"):
            assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k])


# --------------------------------------------------------------------------- writers


def test_csv_writer_columns_and_empty_nans(tmp_path):
    summary = bm.summarize(_table(), baseline="mhsa")
    path = write_csv(tmp_path / "sub" / "summary.csv", bm.SUMMARY_COLUMNS, summary)
    back = read_csv(path)
    assert list(back[0]) == bm.SUMMARY_COLUMNS
    assert len(back) == len(summary)
    oom = next(r for r in back if r["status"] == "oom")
    assert oom["time_mean_s"] == "" and oom["speedup_pct"] == ""
    runs = read_csv(write_csv(tmp_path / "runs.csv", bm.RUN_COLUMNS, _table()))
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


SETTINGS = dict(batch_size=6, runs=3, warmup=1, device="cpu", dtype="fp32", time_limit=None, seed=0)


@pytest.mark.parametrize("exc, status", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), "oom"),
    (MemoryError(), "oom"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"), "oom"),
    (bm.TimeLimitExceeded("forward took 99 s"), "timeout"),
    (ValueError("a bug"), "error"),
])
def test_failure_is_a_row_and_longer_lengths_are_skipped(monkeypatch, tmp_path, exc, status):
    fake, calls = _fake_measure(40, exc)
    monkeypatch.setitem(measure.TASKS, "inference", fake)
    encoders = bm.variant_encoders(["mhsa", "pom"], num_layers=1, d_model=16, nhead=2, d_ffn=32)
    rows = bm.run_sweep(encoders, [80, 10, 40, 20], SETTINGS, isolate=False)
    assert calls == [10, 20, 40] * 2  # shortest first; nothing runs after the failure
    for mixer in ("mhsa", "pom"):
        mine = [r for r in rows if r["mixer"] == mixer]
        assert [r["status"] for r in mine] == ["ok"] * 6 + [status, "skipped"]
        assert [r["seconds"] for r in mine if r["status"] != "ok"] == [40, 80]
        assert f"{status} at 40 s" in mine[-1]["error"]
    assert {r["label"] for r in rows} == {"MHSA (RelPosMHAXL)", "PoM"} and all(r["d_model"] == 16 for r in rows)
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


def test_mixer_widths_scale_from_the_size_table_and_the_mixers_defaults():
    from brq_att_alt.mixers import resolved_mixer_options

    hyper = bm.encoder_config("hypermixing", width_scale=0.25, nhead=4)
    assert hyper["mixer_kwargs"] == {"hypernet_size": 512}  # HyperMixing's default 2048, x0.25
    summ = bm.encoder_config("summarymixing", width_scale=0.25, nhead=4)["mixer_kwargs"]
    assert summ["summary_hid_dim"] == [256]  # the mixer's default: [1024]
    assert summ["summary_out_dim"] is None  # the mixer's default: d_model (here 160)
    assert summ["local_proj_hid_dim"] == [128] and summ["local_proj_out_dim"] == 128  # the mixer's 512
    assert resolved_mixer_options("summarymixing", summ)["activation"] == "swish"
    assert bm.encoder_config("summarymixing") == sizes.model_config("summarymixing")  # no scaling: the table


def test_load_model_config_yaml(tmp_path):
    path = tmp_path / "pom.yaml"
    path.write_text("d_model: 64\nnum_encoder_layers: 3\nattention_type: pom\nnhead: 4\n"
                    "model: !new:brq_att_alt.model.BestRQModel\n  d_model: !ref <d_model>\n"
                    "output_folder: !PLACEHOLDER\n")
    cfg = bm.load_model_config(path)
    assert cfg == {"d_model": 64, "num_layers": 3, "mixer": "pom", "nhead": 4}


NEW_STYLE_YAML = """\
attention_type: pom
size_name: base
d_model: !apply:brq_att_alt.sizes.matched_d_model [!ref <attention_type>, !ref <size_name>]
num_layers: 2
nhead: 8
mixer_options:
    mhsa: {implementation: relpos}
    pom: {degree: 2, expansion: 1}
    summarymixing: {summary_out_dim: !ref <d_model>}
data_folder: !PLACEHOLDER
output_folder: !ref results/brq_<attention_type>_<size_name>
__not_run: !apply:os.mkdir [CANARY]
model: !new:brq_att_alt.model.BestRQModel
    mixer: !ref <attention_type>
    d_model: !ref <d_model>
    num_layers: !ref <num_layers>
    nhead: !ref <nhead>
    mixer_kwargs: !apply:brq_att_alt.mixers.mixer_options [!ref <mixer_options>, !ref <attention_type>]
"""


def test_load_model_config_resolves_package_functions(tmp_path, monkeypatch):
    """The paper YAMLs' d_model: !apply:brq_att_alt.sizes.matched_d_model [mixer, size] (issue 9)."""
    if not hasattr(sizes, "matched_d_model"):  # until the issue-9 change is merged
        monkeypatch.setattr(sizes, "matched_d_model", lambda mixer, size: sizes.D_MODEL[mixer][size], raising=False)
    path = tmp_path / "brq_pom.yaml"
    path.write_text(NEW_STYLE_YAML.replace("CANARY", str(tmp_path / "made")))
    cfg = bm.load_model_config(path)
    assert not (tmp_path / "made").exists()  # only this package's functions are applied
    assert cfg == {"mixer": "pom", "d_model": sizes.D_MODEL["pom"]["base"], "num_layers": 2, "nhead": 8,
                   "mixer_kwargs": {"degree": 2, "expansion": 1}}
    before = {k: v for k, v in bm.VARIANTS.items()}
    (enc,) = config_file_encoders([path], width_scale=0.5)
    assert enc.key == "brq_pom" and enc.label == "brq_pom (pom)" and enc.config["d_model"] == 240  # 488 x 0.5
    assert enc.config["mixer_kwargs"] == {"degree": 2, "expansion": 1}
    assert bm.VARIANTS == before  # no module table grows with the config files
    path.write_text("d_model: [1, 2]\nmixer: pom\n")
    with pytest.raises(ValueError, match="not plain values"):
        bm.load_model_config(path)


@pytest.mark.parametrize("yaml_file", sorted(p.name for p in (ROOT / "hparams").glob("brq_*.yaml")
                                             if p.name != "brq_tiny.yaml"))
def test_load_model_config_of_the_paper_yamls(yaml_file):
    """--config hparams/brq_<mixer>[_large].yaml gives the parameter-matched model of the size table."""
    cfg = bm.load_model_config(ROOT / "hparams" / yaml_file)
    size = "large" if yaml_file.endswith("_large.yaml") else "base"
    assert cfg["d_model"] == sizes.D_MODEL[cfg["mixer"]][size]
    assert isinstance(cfg["mixer_kwargs"], dict)
    assert bm.encoder_parameters(cfg) == bm.encoder_parameters(sizes.model_config(cfg["mixer"], size))


def test_measure_functions_run_in_process():
    spec = dict(model=dict(TINY_MODEL, mixer="pom", num_layers=1, dropout=0.1), seconds=0.5, batch_size=2, runs=2, warmup=1, device="cpu",
                dtype="bf16", time_limit=None, seed=0, threads=1)
    for task in ("inference", "train"):
        res = bm.run_in_process(task, spec)
        assert res["status"] == "ok", res
        assert len(res["times"]) == len(res["mems"]) == 2 and min(res["mems"]) >= 0
    res = bm.run_in_process("inference", {**spec, "time_limit": 1e-9})
    assert res["status"] == "timeout"


# --------------------------------------------------------------------------- interleaved mode, FLOPs, matmul rate


def test_matmul_bound_share_on_known_numbers():
    # 300 GFLOP at 150 GFLOP/s take 2 s when bound by matrix products: 2 s of 4 s is half.
    assert bm.matmul_bound_share(300e9, 150e9, 4.0) == pytest.approx(0.5)
    assert bm.matmul_bound_share(300e9, 150e9, 2.0) == pytest.approx(1.0)
    assert bm.matmul_bound_share(0.0, 150e9, 2.0) == 0.0
    for bad in ((300e9, 0.0, 2.0), (300e9, 150e9, 0.0), (math.nan, 150e9, 2.0)):
        assert math.isnan(bm.matmul_bound_share(*bad)), bad


def test_flop_count_of_a_tiny_model_against_a_hand_count():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = torch.randn(3, 8)
    assert bm.count_flops(lambda: mlp(x)) == 2 * 3 * 8 * 16 + 2 * 3 * 16 * 4  # ReLU and biases are not counted
    conv = torch.nn.Conv1d(6, 6, 5, groups=6)  # depthwise: 5 multiply-adds per output value
    assert bm.count_flops(lambda: conv(torch.randn(2, 6, 20))) == 2 * 2 * 6 * 16 * 5
    # The fused CPU attention is counted too (torch's counter misses it): q k^T and p v.
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    with torch.inference_mode():
        flops = bm.count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    assert flops == 2 * (2 * 1 * 2 * 5 * 4 * 5)
    # Backward of a depthwise convolution: input and weight gradients, each the forward's count
    # (torch's formula leaves the groups out of the weight gradient).
    x = torch.randn(2, 6, 20, requires_grad=True)
    assert bm.count_flops(lambda: conv(x).sum().backward()) == 3 * (2 * 2 * 6 * 16 * 5)
    probe, probe_flops = bm.matmul_probe(n=8)
    assert probe_flops == 2 * 8**3 == bm.count_flops(probe)


def test_interleaved_order_rotates_by_one_place_per_round():
    assert bm.interleaved_order(["a", "b", "c"], 4) == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"],
                                                        ["a", "b", "c"]]
    assert bm.interleaved_order(["a"], 2) == [["a"], ["a"]]
    assert bm.interleaved_order([], 2) == [[], []]


def test_run_interleaved_times_in_turn_and_records_failures(monkeypatch):
    from brq_att_alt.benchmarking import sweep

    calls = []

    def fake_prepare(spec):
        name = spec["model"]["mixer"]
        if name == "fastformer":
            raise ValueError("cannot build")
        w = torch.ones(4, 4)

        def call():
            calls.append(name)
            if name == "pom" and calls.count("pom") == 3:  # warm-up, round 1, then fails in round 2
                raise MemoryError()
            return w @ w

        return call

    def fake_probe(device="cpu", n=4):
        w = torch.ones(n, n)
        return (lambda: calls.append("matmul") or w @ w), 2 * n**3

    monkeypatch.setitem(measure.PREPARE, "inference", fake_prepare)
    monkeypatch.setattr(sweep, "matmul_probe", fake_probe)
    encoders = bm.variant_encoders(["mhsa", "fastformer", "pom"], num_layers=1, d_model=16, nhead=2, d_ffn=32)
    rows = bm.run_interleaved(encoders, 2.0, SETTINGS, rounds=3)
    # warm-ups (the first one counting FLOPs) in build order, then rounds rotating mhsa, pom, matmul
    assert calls == ["mhsa", "pom", "matmul",
                     "mhsa", "pom", "matmul",
                     "pom", "matmul", "mhsa",  # pom fails here and leaves the rotation
                     "matmul", "mhsa"]
    ok = [(r["round"], r["place"], r["mixer"]) for r in rows if r["status"] == "ok"]
    assert ok == [(1, 1, "mhsa"), (1, 2, "pom"), (1, 3, "matmul"), (2, 2, "matmul"), (2, 3, "mhsa"),
                  (3, 1, "matmul"), (3, 2, "mhsa")]
    failed = {r["mixer"]: r["status"] for r in rows if r["status"] != "ok"}
    assert failed == {"fastformer": "error", "pom": "oom"}
    assert {r["flops"] for r in rows if r["mixer"] == "mhsa"} == {2 * 4**3}
    summary = {s["mixer"]: s for s in bm.interleaved_summary(rows, baseline="mhsa")}
    assert summary["mhsa"]["n_rounds"] == 3 and summary["pom"]["status"] == "oom"
    assert summary["fastformer"]["status"] == "error" and "cannot build" in summary["fastformer"]["error"]


def _interleaved_rows():
    rows = []
    for mixer, times, flops in (("mhsa", [4.0, 5.0, 3.0], 300e9), ("pom", [1.5, 1.0, 2.5], 120e9),
                                ("matmul", [0.2, 0.1, 0.1], 16e9)):
        rows += [dict(mixer=mixer, label=mixer.upper(), seconds=80.0, batch_size=2 if mixer != "matmul" else "",
                      round=r + 1, place=1, status="ok", time_s=t, flops=flops, device="cpu", dtype="fp32")
                 for r, t in enumerate(times)]
    return rows


def test_interleaved_summary_on_hand_made_rows(tmp_path):
    best = {s["mixer"]: s for s in bm.interleaved_summary(_interleaved_rows(), baseline="mhsa")}
    assert best["matmul"]["matmul_gflop_per_s"] == pytest.approx(160.0)  # 16 GFLOP in 0.1 s
    assert best["mhsa"]["time_s"] == 3.0 and best["mhsa"]["time_median_s"] == 4.0
    assert best["mhsa"]["gflop_per_s"] == pytest.approx(100.0)
    assert best["mhsa"]["matmul_bound_share"] == pytest.approx(300 / 160 / 3.0)
    assert best["pom"]["matmul_bound_share"] == pytest.approx(120 / 160 / 1.0)
    assert best["pom"]["speedup_x"] == pytest.approx(3.0) and best["mhsa"]["speedup_x"] == pytest.approx(1.0)
    assert best["pom"]["audio_s_per_s"] == pytest.approx(160.0)  # 80 s x batch 2 in 1 s
    median = {s["mixer"]: s for s in bm.interleaved_summary(_interleaved_rows(), "mhsa", statistic="median")}
    assert median["pom"]["time_s"] == 1.5 and median["pom"]["speedup_x"] == pytest.approx(4.0 / 1.5)
    assert median["matmul"]["matmul_gflop_per_s"] == pytest.approx(160.0)
    with pytest.raises(ValueError, match="statistic"):
        bm.interleaved_summary(_interleaved_rows(), statistic="mean")
    table = bm.interleaved_markdown(list(best.values()), "MHSA")
    assert "| POM | 80 | 1 | 1.5 | 120 | 120 | 75% | 3.00x | ok |" in table
    assert table.splitlines()[-1].startswith("| MATMUL |")  # the rate comes last
    path = write_csv(tmp_path / "i.csv", bm.INTERLEAVED_COLUMNS, list(best.values()))
    again = {s["mixer"]: s for s in bm.interleaved_summary(
        [dict(r, seconds=str(r["seconds"])) for r in _interleaved_rows()], baseline="mhsa")}
    assert again["pom"]["speedup_x"] == pytest.approx(3.0) and path.stat().st_size > 0


def test_interleaved_benchmark_writes_its_files(tmp_path):
    opts = _script()["options_from_args"](_script()["parse_args"]([*TINY_ARGS, "--interleaved", "--rounds", "2",
                                                                   "--out", str(tmp_path), "--train-throughput",
                                                                   "0.5"]))
    assert opts.interleaved and opts.rounds == 2 and opts.statistic == "best"
    result = bm.run_benchmark(opts, log=lambda msg: None)
    assert [p.name for p in result["written"]] == ["interleaved_runs.csv", "interleaved.csv",
                                                   "train_interleaved_runs.csv", "train_interleaved.csv",
                                                   "summary.md", "machine.txt"]
    summary = read_csv(tmp_path / "interleaved.csv")
    assert [r["mixer"] for r in summary] == ["mhsa", "pom", "matmul"]
    assert all(r["status"] == "ok" and float(r["gflop"]) > 0 and r["n_rounds"] == "2" for r in summary)
    assert len(read_csv(tmp_path / "interleaved_runs.csv")) == 2 * 3
    assert "share of the matmul-bound time" in result["markdown"] and "audio s / s" in result["markdown"]


def test_profiling_op_classes_and_parts():
    from brq_att_alt.benchmarking import profiling
    from brq_att_alt.model import BestRQModel

    cases = {"aten::addmm": "matmul", "aten::bmm": "matmul", "aten::_slow_conv2d_forward": "convolution",
             "aten::native_layer_norm": "normalisation", "aten::silu_": "activation", "aten::copy_": "copy / layout",
             "aten::exp_": "element-wise", "aten::addcmul_": "element-wise", "aten::cumprod": "reduction",
             "aten::_softmax": "softmax", "aten::frobnicate": "other"}
    assert {k: profiling.op_category(k) for k in cases} == cases
    torch.manual_seed(0)
    model = BestRQModel("mamba", **dict(TINY_MODEL, codebook_size=16)).eval()
    parts = profiling.part_times(model, torch.randn(1, 40, 80))
    assert parts["mixer"] > 0 and parts["  of the mixer: Mamba selective scan"] > 0
    named = [v for k, v in parts.items() if k not in ("total", "  of the mixer: Mamba selective scan")]
    assert sum(named) == pytest.approx(parts["total"])  # the rests close the account


# --------------------------------------------------------------------------- options and the script


def _script():
    return runpy.run_path(str(ROOT / "scripts" / "benchmark.py"))


def test_script_options_come_from_benchmark_options():
    script = _script()
    parse, options = script["parse_args"], script["options_from_args"]
    assert options(parse([])) == bm.BenchmarkOptions()
    quick = options(parse(["--quick"]))
    assert quick == bm.make_options(quick=True)
    assert all(getattr(quick, k) == v for k, v in bm.QUICK_PRESET.items())
    assert options(parse(["--quick", "--runs", "7", "--time-limit", "0"])).runs == 7  # explicit wins
    assert options(parse(["--long"])).lengths == bm.LONG_LENGTHS
    assert options(parse(["--long", "--lengths", "3"])).lengths == [3.0]
    assert options(parse(["--isolate", "never", "--padding-mask"])).isolate is False
    assert options(parse(["--seconds", "80"])).lengths == [80.0]  # --seconds is --lengths
    inter = options(parse(["--interleaved", "--rounds", "5", "--statistic", "median"]))
    assert (inter.interleaved, inter.rounds, inter.statistic) == (True, 5, "median")
    with pytest.raises(TypeError, match="Unknown benchmark options"):
        bm.make_options(batchsize=2)


def test_quick_help_matches_the_preset():
    text = " ".join(_script()["quick_help"]().split())
    q = bm.QUICK_PRESET
    for part in (f"{q['num_layers']} layers", f"x{q['width_scale']:g}", f"{q['nhead']} heads",
                 " ".join(f"{x:g}" for x in q["lengths"]) + " s", f"batch {q['batch_size']}", f"{q['runs']} runs",
                 f"{q['warmup']} warm-up", f"{q['threads']} torch thread", f"time limit {q['time_limit']:g} s",
                 f"at {q['train_seconds']:g} s ({q['train_steps']} steps)", q["out"]):
        assert part in text, part
    assert len(q) == 12  # a new preset entry needs its words in quick_help (and here)


TINY_ARGS = ["--variants", "mhsa", "pom", "--lengths", "1", "--runs", "2", "--batch-size", "1", "--d-model", "32",
             "--num-layers", "1", "--nhead", "2", "--d-ffn", "64", "--device", "cpu", "--threads", "1"]


def test_outputs_written_before_the_plot(tmp_path):
    opts = _script()["options_from_args"](_script()["parse_args"]([*TINY_ARGS, "--isolate", "never",
                                                                   "--out", str(tmp_path)]))
    result = bm.run_benchmark(opts, log=lambda msg: None)
    assert [p.name for p in result["written"]] == ["runs.csv", "summary.csv", "summary.md", "machine.txt",
                                                   "benchmark.png"]
    assert "Student-t" in result["markdown"] and "Indicative only: 2 interval(s) from 2 run(s)" in result["markdown"]


def test_missing_matplotlib_skips_only_the_plot(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # import matplotlib... raises ImportError
    out = tmp_path / "bench"
    assert _script()["main"]([*TINY_ARGS, "--isolate", "never", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("runs.csv", "summary.csv", "summary.md", "machine.txt"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "benchmark.png").exists()
    assert [line for line in printed.splitlines() if "Plot skipped" in line and "matplotlib" in line] != []
    assert printed.count("Plot skipped") == 1
    assert "Wrote" in printed and "benchmark.png" not in printed.split("Wrote", 1)[1]


@pytest.mark.slow
def test_cli_end_to_end_tiny(tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--quick", "--mixers", "mhsa", "pom",
           "--lengths", "1", "--runs", "2", "--batch-size", "1", "--d-model", "32", "--num-layers", "1",
           "--nhead", "2", "--d-ffn", "64", "--train-throughput", "1", "--train-steps", "1",
           "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("runs.csv", "summary.csv", "summary.md", "benchmark.png", "machine.txt", "train_throughput.csv",
                 "train_runs.csv"):
        assert (out / name).stat().st_size > 0, name
    runs = read_csv(out / "runs.csv")
    assert {r["mixer"] for r in runs} == {"mhsa", "pom"} and {r["status"] for r in runs} == {"ok"}
    assert len(runs) == 4 and runs[0]["memory_method"].startswith("cpu_peak_rss")
    summary = read_csv(out / "summary.csv")
    assert float(next(s for s in summary if s["mixer"] == "mhsa")["speedup_pct"]) == 0.0
    assert "| MHSA (RelPosMHAXL) | 1 |" in proc.stdout
    assert "cpu:" in (out / "machine.txt").read_text()
