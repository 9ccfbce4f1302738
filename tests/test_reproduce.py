"""The reproduction's pieces: train-log curves, resumable pieces, seeds combined, and the
``scripts/reproduce_tiny.py`` driver resuming after a failure (pieces stubbed: no training)."""

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

from brq_att_alt.reproduce import PieceRunner, combine_seeds, curve_table, read_train_log

REPO = Path(__file__).resolve().parents[1]

LOG = """\
step: 10, epoch: 1, lr: 1.00e-04 - train loss: 6.00, train acc: 1.00e-01
epoch: 1, steps: 20, lr: 2.00e-04 - train loss: 5.50, train acc: 1.50e-01 - valid loss: 5.40, valid acc: 1.60e-01
step: 30, epoch: 2, lr: 3.00e-04 - train loss: 5.00, train acc: 2.00e-01
epoch: 2, steps: 40, lr: 4.00e-04 - train loss: 4.90, train acc: 2.10e-01 - valid loss: 4.80, valid acc: 2.20e-01
epoch: 2, steps: 40, lr: 4.00e-04 - train loss: 4.80, train acc: 2.20e-01 - valid loss: 4.70, valid acc: 2.30e-01
"""


def test_read_train_log_steps_epochs_and_the_last_line_of_a_repeated_epoch(tmp_path):
    (tmp_path / "train_log.txt").write_text(LOG)
    log = read_train_log(tmp_path)
    assert [s["step"] for s in log["steps"]] == [10, 30]
    assert log["steps"][1] == {"step": 30, "epoch": 2, "lr": 3e-4, "loss": 5.0, "acc": 0.2}
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]
    assert log["epochs"][1]["valid_acc"] == pytest.approx(0.23)  # the resumed epoch's line wins
    table = curve_table(log)
    assert "23.0%" in table and "4.700" in table
    with pytest.raises(FileNotFoundError, match="train log"):
        read_train_log(tmp_path / "missing")


def test_piece_runner_skips_finished_pieces_and_retries_failed_ones(tmp_path):
    calls = []

    def piece(name, fail=False):
        def fn():
            calls.append(name)
            if fail:
                raise RuntimeError("boom")
            return {"value": name}
        return fn

    names = ["a", "b", "c"]
    runner = PieceRunner(tmp_path, names, progress=False, log=lambda msg: None)
    assert runner.run("a", piece("a")) == {"value": "a"}
    assert runner.run("b", piece("b", fail=True)) is None
    assert runner.record("b")["status"] == "failed" and "boom" in runner.record("b")["error"]
    assert runner.run("c", piece("c")) == {"value": "c"}  # a failure does not stop the plan
    again = PieceRunner(tmp_path, names, progress=False, log=lambda msg: None)
    for name in names:
        again.run(name, piece(name))
    assert calls == ["a", "b", "c", "b"]  # only the failed piece ran again
    assert all(again.finished(n) for n in names)
    with pytest.raises(KeyError):
        again.record_path("unknown")
    with pytest.raises(ValueError):
        PieceRunner(tmp_path, ["a", "a"], progress=False)


def test_combine_seeds_mean_and_interval_from_the_runs_intervals():
    z = 1.959963984540054
    out = combine_seeds([10.0, 20.0], [(8.0, 12.0), (17.0, 23.0)])
    se = math.sqrt((4 / (2 * z)) ** 2 + (6 / (2 * z)) ** 2) / 2
    assert out["mean"] == 15.0 and out["min"] == 10.0 and out["max"] == 20.0 and out["seeds"] == 2
    assert out["low"] == pytest.approx(15.0 - z * se) and out["high"] == pytest.approx(15.0 + z * se)
    assert combine_seeds([1.0, 2.0], [(0.5, 1.5), None])["low"] is None  # a run without an interval
    with pytest.raises(ValueError):
        combine_seeds([], [])
    with pytest.raises(ValueError):
        combine_seeds([1.0], [(0.0, 2.0)], confidence=0.9)


def load_driver():
    spec = importlib.util.spec_from_file_location("reproduce_tiny", REPO / "scripts" / "reproduce_tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reproduction_driver_resumes_after_a_failed_piece_and_writes_the_report(tmp_path, monkeypatch):
    driver = load_driver()
    calls, fail = [], {"probe/mhsa/1000/random/SLURP_IC/BiLSTM"}

    def metric(value, low, high, direction="higher", unit="%"):
        return {"value": value, "ci95": [low, high], "direction": direction, "unit": unit}

    def pretrain(ctx, mixer, seed):
        calls.append(f"pretrain/{mixer}/{seed}")
        folder = ctx.out / "pretrain" / mixer / str(seed)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train_log.txt").write_text(LOG)
        return {"run": "x", "d_model": ctx.widths[mixer]["d_model"], "parameters": 1, "last_epoch": {"valid_acc": 0.3}}

    def probe(ctx, mixer, seed, init, recipe):
        name = f"probe/{mixer}/{seed}/{init}/{recipe.task}/{recipe.probe}"
        calls.append(name)
        if name in fail:
            raise RuntimeError("simulated kill")
        good = init == "pretrained"
        return {"metrics": {"accuracy": metric(80.0 if good else 40.0, *((75, 85) if good else (35, 45)))},
                "folder": "x"}

    def finetune(ctx, mixer, seed, init):
        calls.append(f"finetune/{mixer}/{seed}/{init}")
        return {"metrics": {"WER test-clean +LM": metric(30.0 if init == "pretrained" else 90.0, 25, 35, "lower")},
                "folder": "x"}

    monkeypatch.setattr(driver, "pretrain_piece", pretrain)
    monkeypatch.setattr(driver, "probe_piece", probe)
    monkeypatch.setattr(driver, "finetune_piece", finetune)
    monkeypatch.setattr(driver, "ensure_synthetic_corpus", lambda folder, options: folder)
    monkeypatch.setattr(driver, "matched_widths", lambda mixers: {m: {"d_model": 64, "parameters": 1000,
                                                                    "vs_reference": 0.0} for m in mixers})
    argv = ["--out", str(tmp_path), "--mixers", "mhsa", "pom", "--seeds", "1000", "1001", "--skip_benchmark",
            "--no_progress", "--data_folder", str(tmp_path / "corpus")]
    assert driver.main(argv) == 1  # one piece failed: the run says so
    first = list(calls)
    per_model = 1 + 2 * len(driver.load_run_all().DEMO_RECIPES) + 2
    assert len(first) == 4 * per_model
    calls.clear()
    assert driver.main(argv + ["--report_only"]) == 0 and calls == []  # runs nothing, writes the report
    total = 2 + 4 * per_model  # the corpus, the widths, then 2 mixers x 2 seeds
    assert f"pieces finished: {total - 1} of {total}" in (tmp_path / "report" / "README.md").read_text()
    assert "--report_only" not in (tmp_path / "report" / "README.md").read_text()
    calls.clear()
    fail.clear()
    assert driver.main(argv) == 0
    assert calls == ["probe/mhsa/1000/random/SLURP_IC/BiLSTM"]  # only the failed piece again
    rows = list(csv_rows(tmp_path / "report" / "reproduction.csv"))
    slurp = [r for r in rows if r["task"].startswith("Intent") and r["mixer"] == "mhsa" and r["init"] == "pretrained"]
    assert slurp and float(slurp[0]["mean"]) == 80.0 and slurp[0]["seeds"] == "2"
    text = (tmp_path / "report" / "README.md").read_text()
    assert "better on" in text and "**80.0" in (tmp_path / "report" / "reproduction.md").read_text()


def csv_rows(path):
    import csv

    with open(path, newline="") as fh:
        yield from csv.DictReader(fh)


def test_jobs_run_the_seeds_in_processes_of_their_own(tmp_path, monkeypatch):
    """--jobs 2: one child process per seed (stood in for by an in-process call of the same
    command line), then the parent finds every piece done and writes the report."""
    driver = load_driver()
    assert driver.seed_groups([1, 2, 3], 2) == [[1, 3], [2]] and driver.seed_groups([1], 4) == [[1]]
    ran, children = [], []

    def pretrain(ctx, mixer, seed):
        ran.append((mixer, seed))
        folder = ctx.out / "pretrain" / mixer / str(seed)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train_log.txt").write_text(LOG)
        return {"run": "x", "d_model": 64, "parameters": 1, "last_epoch": {}}

    class FakeProcess:
        def __init__(self, cmd, **kwargs):
            assert cmd[1].endswith("reproduce_tiny.py") and "--skip_benchmark" in cmd and "--jobs" in cmd
            children.append(cmd)
            self.returncode = driver.main(cmd[2:])

        def poll(self):
            return self.returncode

    monkeypatch.setattr(driver, "pretrain_piece", pretrain)
    monkeypatch.setattr(driver, "probe_piece", lambda *a: {"metrics": {}, "folder": "x"})
    monkeypatch.setattr(driver, "finetune_piece", lambda *a: {"metrics": {}, "folder": "x"})
    monkeypatch.setattr(driver, "ensure_synthetic_corpus", lambda folder, options: folder)
    monkeypatch.setattr(driver, "matched_widths", lambda mixers: {m: {"d_model": 64, "parameters": 1000,
                                                                    "vs_reference": 0.0} for m in mixers})
    monkeypatch.setattr(driver.subprocess, "Popen", FakeProcess)
    argv = ["--out", str(tmp_path), "--mixers", "pom", "--seeds", "1000", "1001", "--jobs", "2", "--skip_benchmark",
            "--no_progress", "--data_folder", str(tmp_path / "corpus")]
    assert driver.main(argv) == 0
    assert [c[c.index("--seeds") + 1] for c in children] == ["1000", "1001"]
    assert sorted(ran) == [("pom", 1000), ("pom", 1001)]  # each pre-training once, in its seed's process
    assert "2 at a time" in (tmp_path / "report" / "README.md").read_text()


def test_recipe_overrides_reach_only_their_recipe(tmp_path, monkeypatch):
    """The setting's recipe_overrides (e.g. the emotion task's folds) go to that recipe's command
    only; the overrides common to every probe go to each; the shared arguments stay unchanged."""
    from types import SimpleNamespace

    driver = load_driver()
    run_all = driver.load_run_all()
    recipes = {driver.recipe_key(r): r for r in run_all.find_recipes()}
    args = run_all.parse_args(["--pretrained", "unused", "--tiny", "--output", str(tmp_path), "--set=train_subset=16"])
    commands = []

    def run_one(job, a):
        commands.append(run_all.build_command(job.recipe, job.pretrained, tmp_path, a, job.language, job.init))
        return {"metrics": {"metrics": {"accuracy": {"value": 1.0}}}, "log": "x"}

    monkeypatch.setattr(run_all, "run_one", run_one)
    ctx = SimpleNamespace(out=tmp_path, probe_args={1: args}, run_all=run_all, settings=driver.SETTINGS["full"])
    for key in ("IEMOCAP_ER/ECAPA", "VoxCeleb1_SV/Xvector"):
        driver.probe_piece(ctx, "mhsa", 1, "pretrained", recipes[key])
    iemocap, vox = commands
    assert "--folds=[1,2]" in iemocap and "--number_of_epochs=10" in iemocap
    assert not any(c.startswith("--folds") for c in vox)
    assert "--train_subset=16" in iemocap and "--train_subset=16" in vox
    assert args.set == ["train_subset=16"]
    assert "IEMOCAP_ER/ECAPA folds=[1,2]" in driver.overrides_text(driver.SETTINGS["full"])


def test_table_cells_keep_unitless_figures_and_the_report_states_the_pieces_span(tmp_path):
    driver = load_driver()
    assert driver._cell({"mean": 18.61, "low": 17.04, "high": 20.1, "unit": "%"}) == "18.6 [17.0, 20.1]"
    assert driver._cell({"mean": 0.0099, "low": 0.0098, "high": 0.01, "unit": ""}) == "0.0099 [0.0098, 0.0100]"
    assert driver._cell(None) == "-"
    runner = PieceRunner(tmp_path, ["a", "b", "c"], progress=False, log=lambda msg: None)
    assert driver.pieces_span(runner) is None
    runner.run("a", lambda: {})
    runner.run("b", lambda: {})
    for name, end, seconds in (("a", 1000.0, 100.0), ("b", 1600.0, 300.0)):  # b ran from 1300 s to 1600 s
        path = runner.record_path(name)
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "seconds": seconds}))
        os.utime(path, (end, end))
    assert driver.pieces_span(runner) == {"start": 900.0, "end": 1600.0, "piece_seconds": 400.0}
    assert ": 12 min of wall time (7 min of the pieces' own times" in driver._span_text(driver.pieces_span(runner))
