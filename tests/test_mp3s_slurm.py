"""The MP3S grid as a SLURM job array (recipes/MP3S/run_all.py --slurm / --run_task / --collect),
checked without SLURM: the job list, the sbatch command (dry run, and a stand-in sbatch), the
array task script run by hand, the table collected from the finished runs."""

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import MP3S, REPO_ROOT, load_script

run_all = load_script(MP3S / "run_all.py")
SBATCH = REPO_ROOT / "scripts" / "slurm" / "mp3s_array.sbatch"
SPLITS = "{train: [train-clean-100], valid: [dev-clean], test: [test-clean]}"


def fake_pretrained(root: Path, mixer: str) -> Path:
    """A folder that names its mixer the way run_all.py reads it (no weights: nothing runs)."""
    (root / "save").mkdir(parents=True)
    (root / "save" / "brq_model.json").write_text(json.dumps({"mixer": mixer}))
    return root


def test_dry_run_writes_the_job_list_and_the_array_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-sbatch-here"))  # no SLURM needed
    runs = [fake_pretrained(tmp_path / "a", "mhsa"), fake_pretrained(tmp_path / "b", "pom")]
    out = tmp_path / "grid"
    argv = ["--pretrained", *map(str, runs), "--output", str(out), "--slurm", "--dry_run", "--max_parallel", "4",
            "--sbatch_arg=--partition=gpu", "--sbatch_arg=--time=02:00:00", "--device", "cuda:0",
            "--real", "SLURP_IC=/data/SLURP"]
    assert run_all.main(argv) == 0
    printed = capsys.readouterr().out
    listing = json.loads((out / "slurm" / "jobs.json").read_text())
    recipes = run_all.find_recipes()
    n_per_checkpoint = len(recipes) + sum(r.task == "CommonVoice_ASR" for r in recipes)  # Common Voice: cy and eu
    assert listing["labels"] == ["mhsa", "pom"] and len(listing["jobs"]) == 2 * n_per_checkpoint
    # the jobs are the ones a local run makes, with the same command lines
    args = run_all.parse_args(argv)
    labels, jobs = run_all.plan(args)
    for record, job in zip(listing["jobs"], jobs):
        recipe, language, label, pretrained = job[:4]
        out_dir = out.resolve() / label / recipe.task / recipe.probe / (language or "")
        assert record["out_dir"] == str(out_dir)
        assert record["cmd"] == [str(c) for c in run_all.build_command(recipe, pretrained, out_dir, args, language)[1:]]
        assert (record["task"], record["probe"], record["language"], record["label"]) == \
            (recipe.task, recipe.probe, language, label)
    slurp = [r for r in listing["jobs"] if r["task"] == "SLURP_IC"]
    assert all("--dataset=real" in r["cmd"] and "--data_folder=/data/SLURP" in r["cmd"] for r in slurp)
    assert all("--device=cuda:0" in r["cmd"] for r in listing["jobs"])
    assert [r["language"] for r in listing["jobs"] if r["task"] == "CommonVoice_ASR"][:2] == ["cy", "eu"]
    # the sbatch command: one array task per job, throttled, the template and the job list
    line = next(line for line in printed.splitlines() if line.startswith("sbatch "))
    cmd = shlex.split(line)
    assert f"--array=0-{2 * n_per_checkpoint - 1}%4" in cmd
    assert "--partition=gpu" in cmd and "--time=02:00:00" in cmd
    assert cmd[-2:] == [str(SBATCH), str(out.resolve() / "slurm" / "jobs.json")]
    assert f"--export=ALL,BRQ_REPO={REPO_ROOT}" in cmd
    assert not (out / "slurm" / "submitted.txt").exists()
    # without --dry_run and without sbatch: one clear error
    assert run_all.main(argv[:argv.index("--dry_run")] + argv[argv.index("--dry_run") + 1:]) == 2
    assert "sbatch not found" in capsys.readouterr().err


def test_submission_through_sbatch(tmp_path, capsys, monkeypatch):
    """A stand-in sbatch on PATH records its arguments and answers a job id, as --parsable does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "sbatch_args.txt"
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\necho "4242;cluster"\n')
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run = fake_pretrained(tmp_path / "a", "mamba")
    out = tmp_path / "grid"
    assert run_all.main(["--pretrained", str(run), "--output", str(out), "--slurm", "--tasks", "SLURP_IC"]) == 0
    sent = record.read_text().splitlines()
    assert "--array=0-1" in sent and "--parsable" in sent and sent[-1] == str(out.resolve() / "slurm" / "jobs.json")
    assert (out / "slurm" / "submitted.txt").read_text().startswith("4242\n")
    assert "submitted job array 4242" in capsys.readouterr().out


def test_argument_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_all.parse_args(["--output", str(tmp_path)])  # --pretrained needed to run or submit
    with pytest.raises(SystemExit):
        run_all.parse_args(["--pretrained", "x", "--dry_run"])  # --dry_run without --slurm
    with pytest.raises(SystemExit, match="no job list"):
        run_all.main(["--output", str(tmp_path / "nothing"), "--collect"])


@pytest.mark.slow
def test_array_tasks_run_by_hand_then_collect(tmp_path, tiny_corpus, tiny_pretrained):
    """The sbatch script run by bash as SLURM would run array tasks 0 and 1, then --collect."""
    out = tmp_path / "grid"
    assert run_all.main(["--pretrained", str(tiny_pretrained), "--tiny", "--tasks", "SLURP_IC", "--output", str(out),
                         "--synthetic_folder", str(tiny_corpus), "--set", f"synthetic_splits={SPLITS}",
                         "--set", "number_of_epochs=1", "--slurm", "--dry_run"]) == 0
    jobs_file = out / "slurm" / "jobs.json"
    jobs = json.loads(jobs_file.read_text())["jobs"]
    assert [j["probe"] for j in jobs] == ["BiLSTM", "linear"]
    # before any task ran: the table says failed, the exit status 1
    assert run_all.main(["--output", str(out), "--collect"]) == 1
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "SLURM_SUBMIT_DIR": str(REPO_ROOT), "PYTHON": sys.executable}
    env.pop("BRQ_REPO", None)
    proc = subprocess.run(["bash", str(SBATCH), str(jobs_file)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (Path(jobs[1]["out_dir"]) / "mp3s_metrics.json").is_file()
    assert not (Path(jobs[0]["out_dir"]) / "mp3s_metrics.json").exists()
    # one task finished: the other is reported, exit status 1
    assert run_all.main(["--output", str(out), "--collect"]) == 1
    assert run_all.main(["--run_task", str(jobs_file), "0"]) == 0  # what array task 0 runs
    assert run_all.main(["--run_task", str(jobs_file), "7"]) == 2
    assert run_all.main(["--output", str(out), "--collect"]) == 0
    with open(out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["task"], r["probe"], r["metric"]) for r in table] == [
        ("Intent classification SLURP", "BiLSTM", "accuracy"), ("Intent classification SLURP", "linear", "accuracy")]
    for row, job in zip(table, jobs):
        value = json.loads((Path(job["out_dir"]) / "mp3s_metrics.json").read_text())["metrics"]["accuracy"]["value"]
        assert float(row["mhsa"]) == pytest.approx(value, abs=0.01)
    # the script refuses to run outside an array task
    env.pop("SLURM_ARRAY_TASK_ID")
    proc = subprocess.run(["bash", str(SBATCH), str(jobs_file)], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "not an array task" in proc.stderr
